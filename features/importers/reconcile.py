"""The reconciliation ``--report`` prints: what each source read, kept and left out (with the reason and the first
ids), every coerced value, and MRR by month from the imported subscriptions against the invoice totals by month.

MRR of a month = the MRR in force on its last day; invoice total of a month = the amounts of the invoices due in
it (in the reporting currency). The two differ by design where billing is not monthly (a yearly invoice is one
month's total and twelve months' MRR), by discounts of one invoice, prorations and usage billed in arrears: the
table is there to be read, not to be zero.
"""

from __future__ import annotations

import pandas as pd

from features.importers.shapes import SourceTables


def mrr_by_month(subs: pd.DataFrame, ends: pd.DatetimeIndex | None = None) -> pd.Series:
    """Total MRR in force on the last day of every month (``ends``; default from the first period's month to the last
    change's)."""
    if subs.empty:
        return pd.Series(dtype=float)
    if ends is None:
        start = pd.to_datetime(subs["valid_from"]).min()
        last = max(pd.to_datetime(subs["valid_from"]).max(),
                   pd.to_datetime(subs["valid_to"]).max() if subs["valid_to"].notna().any() else start)
        ends = pd.date_range(start, last + pd.offsets.MonthEnd(0), freq="ME")
    vf = pd.to_datetime(subs["valid_from"]).to_numpy()
    vt = pd.to_datetime(subs["valid_to"]).fillna(pd.Timestamp("2262-01-01")).to_numpy()
    mrr = subs["mrr"].astype(float).to_numpy()
    values = [float(mrr[(vf <= d) & (vt > d)].sum()) for d in ends.to_numpy()]
    return pd.Series(values, index=ends.strftime("%Y-%m"), dtype=float).round(2)


def invoices_by_month(payments: pd.DataFrame | None) -> pd.Series:
    if payments is None or payments.empty:
        return pd.Series(dtype=float)
    month = pd.to_datetime(payments["due_date"]).dt.strftime("%Y-%m")
    return payments["amount"].astype(float).groupby(month).sum().round(2)


def reconciliation(read: dict[str, SourceTables], tables: dict[str, pd.DataFrame]) -> dict:
    """Per source (layout, rows read/kept per table, drops, coerced values, fallbacks), and MRR against invoices by month."""
    sources = {}
    for name, got in read.items():
        ledger = got.ledger
        sources[name] = {
            "layout": got.layout,
            "tables": ledger.rows if ledger else {},
            "dropped": ledger.dropped if ledger else [],
            "coerced": ledger.coerced if ledger else [],
            "said": ledger.said if ledger else [],
        }
    months = pd.DataFrame({"mrr": mrr_by_month(tables.get("subscriptions", pd.DataFrame())),
                           "invoiced": invoices_by_month(tables.get("payments"))})
    months["difference"] = (months["invoiced"] - months["mrr"]).round(2)
    accounts = tables.get("accounts")
    subs = tables.get("subscriptions")
    usage = tables.get("usage_daily")
    ids = set(accounts["account_id"]) if accounts is not None else set()
    matched = {
        "crm_accounts": len(ids),
        "with_billing": len(ids & set(subs["account_id"])) if subs is not None else 0,
        "with_usage": len(ids & set(usage["account_id"])) if usage is not None else 0,
    }
    return {"sources": sources, "accounts": matched,
            "mrr_vs_invoices": months.reset_index(names="month").astype(object).where(months.reset_index(names="month").notna(), None)
            .to_dict("records")}
