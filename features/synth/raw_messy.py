"""The messy company's raw exports (``expansion generate --messy --raw ...``): billing as Stripe really holds it.

Rewrites the Stripe and Salesforce tables ``raw_shapes`` wrote so that the importers meet
what real billing exports hold, while the contract folder stays the truth they must give
back:

* trials: the version before the first paid one carries the paid price, and the
  subscription says ``trial_start`` / ``trial_end`` (the contract row is MRR 0);
* nested discounts: a ``discount`` JSON object (with its ``coupon``) on some subscriptions,
  their prices raised so that the discounted amount is the contract's MRR;
* tiered prices (graduated ``tiers`` JSON) on some versions, metered prices (billed from
  ``invoice_line_item``) on some add-on versions;
* several currencies: some customers billed in EUR or GBP at fixed rates, with the rates
  file (``raw/rates.csv``: date, currency, rate in USD) that converts them back;
* Salesforce: a ``website`` per account (the two accounts sharing a name share a domain) and
  deals whose account is gone.

Every choice is drawn from ``RawMessyConfig``'s rates with a seeded generator.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

RATES = {"eur": 1.08, "gbp": 1.27}  # USD per unit, fixed over the window


@dataclass(frozen=True)
class RawMessyConfig:
    """Rates of the raw exports' mess (shares of subscriptions, versions or customers)."""

    discount_share: float = 0.15  # subscriptions with a nested forever coupon
    discount_percent_off: float = 20.0
    tiered_share: float = 0.15  # versions with 6+ seats priced by graduated tiers
    metered_share: float = 0.3  # add-on versions of 2+ complete months billed as metered usage
    foreign_currency_share: float = 0.15  # customers billed in EUR or GBP
    orphan_deals: int = 2  # Salesforce opportunities whose account is gone


def _read(folder: Path, name: str) -> pd.DataFrame:
    return pq.read_table(folder / f"{name}.parquet").to_pandas()


def _write(folder: Path, name: str, frame: pd.DataFrame) -> None:
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), folder / f"{name}.parquet", compression="zstd")


def mess_raw(contract: Path, raw: Path, seed: int, cfg: RawMessyConfig = RawMessyConfig()) -> None:
    """Rewrite the raw exports under ``raw`` (written by ``raw_shapes.write_raw`` from ``contract``) in place."""
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, 77])))
    if (raw / "stripe").is_dir():
        _stripe(contract, raw / "stripe", raw, rng, cfg)
    if (raw / "salesforce").is_dir():
        _salesforce(contract, raw / "salesforce", rng, cfg)


def _stripe(contract: Path, folder: Path, raw: Path, rng: np.random.Generator, cfg: RawMessyConfig) -> None:
    s = pq.read_table(contract / "subscriptions.parquet").to_pandas()
    items, prices, subs = _read(folder, "subscription_item"), _read(folder, "price"), _read(folder, "subscription_history")
    customers, invoices = _read(folder, "customer"), _read(folder, "invoice")
    prices = prices.set_index("id", drop=False)
    items["price_id"] = items["price_id"].astype(object)
    items["quantity"] = items["quantity"].astype("Int64")
    # each version gets its own price row, so that rewriting one never touches another
    own = prices.loc[items["price_id"]].reset_index(drop=True)
    own["id"] = [f"{p}_v{k}" for k, p in enumerate(items["price_id"])]
    items["price_id"] = own["id"].to_numpy()
    trial_end = _trials(s, items, own)
    subs["trial_start"] = subs["id"].map({k: v[0] for k, v in trial_end.items()})
    subs["trial_end"] = subs["id"].map({k: v[1] for k, v in trial_end.items()})
    subs = _discounts(subs, items, own, rng, cfg, set(trial_end))
    _tiered(items, own, rng, cfg)
    lines = _metered(s, items, own, rng, cfg)
    currency = _currencies(customers, rng, cfg)
    sub_currency = subs["customer_id"].map(currency)
    item_currency = items["subscription_id"].map(dict(zip(subs["id"], sub_currency))).fillna("usd")
    own["currency"] = item_currency.to_numpy()
    _convert(own, item_currency.to_numpy())
    invoices["currency"] = invoices["customer_id"].map(currency).fillna("usd")
    for col in ("amount_due", "amount_paid"):
        invoices[col] = [int(round(v / RATES.get(c, 1.0))) for v, c in zip(invoices[col], invoices["currency"])]
    if not lines.empty:
        lines["currency"] = lines["subscription_id"].map(dict(zip(subs["id"], sub_currency))).fillna("usd")
        lines["amount"] = [int(round(v / RATES.get(c, 1.0))) for v, c in zip(lines["amount"], lines["currency"])]
        _write(folder, "invoice_line_item", lines)
    customers["currency"] = customers["id"].map(currency)
    catalog = prices[prices["id"].str.startswith("price_list_")]
    _write(folder, "price", pd.concat([catalog, own], ignore_index=True).astype({"unit_amount": "Int64"}))
    for name, frame in (("subscription_item", items), ("subscription_history", subs), ("customer", customers),
                        ("invoice", invoices)):
        _write(folder, name, frame)
    start = pd.to_datetime(s["valid_from"]).min().strftime("%Y-%m-%d")
    pd.DataFrame({"date": [start] * len(RATES), "currency": list(RATES), "rate": list(RATES.values())}).to_csv(
        raw / "rates.csv", index=False)


def _trials(s: pd.DataFrame, items: pd.DataFrame, own: pd.DataFrame) -> dict[str, tuple]:
    """Trial versions carry the paid version's price; return subscription id -> (trial start, trial end)."""
    out = {}
    nxt = s.groupby(["account_id", "product_id"])["valid_from"].shift(-1)
    first = s.groupby("account_id")["valid_from"].transform("min") == s["valid_from"]
    trial = (s["mrr"] == 0) & first & nxt.notna() & (pd.to_datetime(nxt) == pd.to_datetime(s["valid_to"]))
    for k in np.flatnonzero(trial.to_numpy()):
        paid = np.flatnonzero(((s["account_id"] == s["account_id"].iat[k]) & (s["product_id"] == s["product_id"].iat[k])
                               & (s["valid_from"] == nxt.iat[k])).to_numpy())
        if not len(paid):
            continue
        for col in ("unit_amount", "unit_amount_decimal", "recurring_interval"):
            own.at[k, col] = own.at[int(paid[0]), col]
        out[items["subscription_id"].iat[k]] = (pd.Timestamp(s["valid_from"].iat[k]), pd.Timestamp(s["valid_to"].iat[k]))
    return out


def _discounts(subs: pd.DataFrame, items: pd.DataFrame, own: pd.DataFrame, rng: np.random.Generator,
               cfg: RawMessyConfig, trials: set) -> pd.DataFrame:
    """A nested forever coupon on some subscriptions; their versions' prices raised to match."""
    pool = [x for x in subs["id"] if x not in trials]
    chosen = set(rng.choice(pool, int(round(cfg.discount_share * len(pool))), replace=False)) if pool else set()
    keep = 1 - cfg.discount_percent_off / 100
    rows = items["subscription_id"].isin(chosen).to_numpy()
    decimal = own["unit_amount_decimal"].astype(float)
    own.loc[rows, "unit_amount_decimal"] = [repr(float(v / keep)) for v in decimal[rows]]
    own.loc[rows, "unit_amount"] = [int(round(v / keep)) for v in decimal[rows]]
    subs["discount"] = [json.dumps({"id": f"di_{k}", "start": str(st)[:10], "end": None,
                                    "coupon": {"id": "co_loyal", "percent_off": cfg.discount_percent_off,
                                               "duration": "forever", "valid": True}})
                        if x in chosen else None for k, (x, st) in enumerate(zip(subs["id"], subs["start_date"]))]
    return subs


def _tiered(items: pd.DataFrame, own: pd.DataFrame, rng: np.random.Generator, cfg: RawMessyConfig) -> None:
    """Graduated tiers that charge a version's quantity exactly its per-unit amount."""
    own["billing_scheme"], own["tiers_mode"], own["tiers"] = "per_unit", None, None
    q = items["quantity"].to_numpy()
    rows = np.flatnonzero((q >= 6) & (rng.random(len(q)) < cfg.tiered_share))
    for k in rows:
        d = float(own.at[k, "unit_amount_decimal"])
        first = d * 1.2
        rest = (q[k] * d - 5 * first) / (q[k] - 5)
        own.at[k, "billing_scheme"], own.at[k, "tiers_mode"] = "tiered", "graduated"
        own.at[k, "tiers"] = json.dumps([{"up_to": 5, "unit_amount_decimal": repr(float(first)), "flat_amount": None},
                                         {"up_to": None, "unit_amount_decimal": repr(float(rest)), "flat_amount": None}])
        own.at[k, "unit_amount"], own.at[k, "unit_amount_decimal"] = None, None


def _metered(s: pd.DataFrame, items: pd.DataFrame, own: pd.DataFrame, rng: np.random.Generator,
             cfg: RawMessyConfig) -> pd.DataFrame:
    """Some add-on versions billed as metered usage: one invoice line per month, the version's monthly amount."""
    own["recurring_usage_type"] = "licensed"
    start, end = pd.to_datetime(s["valid_from"]), pd.to_datetime(s["valid_to"])
    last = start.max()
    long = (s["product_id"] != "core") & (own["recurring_interval"] == "month") & (own["billing_scheme"] == "per_unit") \
        & ((end.fillna(last) - start).dt.days >= 62) & (s["mrr"] > 0)
    rows = np.flatnonzero(long.to_numpy() & (rng.random(len(s)) < cfg.metered_share))
    lines = []
    for k in rows:
        cents = int(round(float(s["mrr"].iat[k]) * 100))
        own.at[k, "recurring_usage_type"] = "metered"
        own.at[k, "unit_amount"], own.at[k, "unit_amount_decimal"] = 1, "1.0"  # one cent per unit
        items.at[k, "quantity"] = None
        day = start.iat[k]
        stop = end.iat[k] if pd.notna(end.iat[k]) else last
        n = 0
        while day + pd.DateOffset(months=1) <= stop:
            nxt = day + pd.DateOffset(months=1)
            lines.append({"id": f"il_{k}_{n}", "invoice_id": f"in_{k}_{n}", "subscription_id": items["subscription_id"].iat[k],
                          "subscription_item_id": items["id"].iat[k], "price_id": own.at[k, "id"], "quantity": cents,
                          "amount": cents, "period_start": day, "period_end": nxt, "proration": False, "type": "subscription"})
            day, n = nxt, n + 1
    return pd.DataFrame(lines)


def _currencies(customers: pd.DataFrame, rng: np.random.Generator, cfg: RawMessyConfig) -> dict[str, str]:
    codes = np.where(rng.random(len(customers)) < cfg.foreign_currency_share, rng.choice(list(RATES), len(customers)), "usd")
    return dict(zip(customers["id"], codes))


def _convert(own: pd.DataFrame, currency: np.ndarray) -> None:
    """Per-unit amounts and tiers from USD into each version's currency."""
    rate = np.array([RATES.get(c, 1.0) for c in currency])
    foreign = np.flatnonzero(rate != 1.0)
    for k in foreign:
        if own.at[k, "recurring_usage_type"] == "metered":
            continue  # metered amounts are converted on the invoice lines
        if own.at[k, "billing_scheme"] == "tiered":
            tiers = json.loads(own.at[k, "tiers"])
            for t in tiers:
                t["unit_amount_decimal"] = repr(float(t["unit_amount_decimal"]) / float(rate[k]))
            own.at[k, "tiers"] = json.dumps(tiers)
            continue
        d = float(own.at[k, "unit_amount_decimal"]) / float(rate[k])
        own.at[k, "unit_amount_decimal"], own.at[k, "unit_amount"] = repr(d), int(round(d))


def _salesforce(contract: Path, folder: Path, rng: np.random.Generator, cfg: RawMessyConfig) -> None:
    account = _read(folder, "account")
    slug = account["name"].str.lower().str.replace(r"[^a-z0-9]+", "-", regex=True).str.strip("-").str[:40]
    account["website"] = "https://www." + slug.where(slug != "", "example") + ".example.com"
    _write(folder, "account", account)
    if cfg.orphan_deals < 1 or not (folder / "opportunity.parquet").exists():
        return
    opp = _read(folder, "opportunity")
    gone = opp.head(cfg.orphan_deals).copy()
    gone["id"] = [f"006GONE{k:011d}" for k in range(len(gone))]
    gone["account_id"] = [f"001GONE{k:011d}" for k in range(len(gone))]
    _write(folder, "opportunity", pd.concat([opp, gone], ignore_index=True))
