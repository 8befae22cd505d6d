"""The generated company in the raw shapes of the tools CS teams run (``expansion generate --raw ...``).

Reads a contract folder the generator wrote and writes, under ``<out>/raw/<source>/``, the
tables a warehouse connector (Fivetran schema) would hold for it, so that
``expansion import`` can be tested end to end against a company whose truth is known:

* stripe: ``customer`` (CRM id in ``metadata.salesforce_id``), ``product``, ``price`` (catalog
  prices flagged in metadata, plus the negotiated per-seat price of every period: enterprise
  accounts billed yearly, the rest monthly), ``subscription_history`` (one subscription per
  customer), ``subscription_item`` in history mode (one version per period,
  ``_fivetran_end`` 1 ms before the next start), ``invoice`` (amounts in cents).
* salesforce: ``account`` (``account_number`` = the contract id, custom fields
  ``segment_c``, ``region_c``, ``customer_since_c``, ``fiscal_year_start_month_c``), ``user``
  (the CSMs), ``opportunity`` / ``opportunity_history`` when the company has opportunities.
* segment: ``tracks`` (one row per event: ``events`` rows per usage row, spread over
  ``active_users`` users; streamed per group of accounts, so memory stays bounded), ``groups`` (group id = the contract id).

The mapping that joins them back is written to ``<out>/raw/import-map.toml``.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

RAW_SOURCES = ("stripe", "salesforce", "segment")
OPEN_END = pd.Timestamp("9999-12-31 23:59:59")
MAP_TOML = """# How the raw exports join: written by expansion generate --raw
[identity]
account_id = "account_number"   # the contract's account_id is Salesforce's AccountNumber

[stripe]
match = "metadata.salesforce_id"  # Stripe customers carry the Salesforce account id in metadata
to = "id"

[segment]
match = "id"                      # the group id ...
to = "account_number"             # ... is the AccountNumber
"""


def _read(folder: Path, table: str) -> pd.DataFrame:
    path = folder / f"{table}.parquet"
    if not path.exists():
        return pd.DataFrame()
    return pq.read_table(path).to_pandas()


def _write(folder: Path, name: str, frame: pd.DataFrame) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), folder / f"{name}.parquet", compression="zstd")


def _sf_id(prefix: str, n: np.ndarray) -> list[str]:
    return [f"{prefix}{i:012d}AAA" for i in n]


def salesforce(contract: Path, out: Path) -> dict[str, str]:
    """Write the Salesforce tables; return contract account_id -> Salesforce id."""
    a = _read(contract, "accounts")
    sf_ids = _sf_id("001", np.arange(len(a)))
    opp_owners = _read(contract, "opportunities").get("owner", pd.Series(dtype=object))
    owners = sorted(set(a["csm_owner"].dropna()) | set(opp_owners.dropna()))
    user_ids = dict(zip(owners, _sf_id("005", np.arange(len(owners)))))
    segment_words = {"smb": "SMB", "mid_market": "Mid-Market", "enterprise": "Enterprise"}
    channel_words = {"direct": "Direct", "partner": "Partner", "self_serve": "Self Serve"}
    _write(out, "account", pd.DataFrame({
        "id": sf_ids, "account_number": a["account_id"], "name": a["name"], "industry": a["industry"],
        "region_c": a["region"], "segment_c": a["segment"].map(segment_words), "number_of_employees": a["employees"],
        "account_source": a["acquisition_channel"].map(channel_words),
        "customer_since_c": pd.to_datetime(a["customer_since"]).dt.strftime("%Y-%m-%d"),
        "fiscal_year_start_month_c": a["fiscal_year_start_month"].astype("Int64"),
        "owner_id": a["csm_owner"].map(user_ids), "is_deleted": False, "_fivetran_active": True,
    }))
    _write(out, "user", pd.DataFrame({"id": list(user_ids.values()), "name": list(user_ids.keys()), "is_active": True}))
    ids = dict(zip(a["account_id"], sf_ids))
    _opportunities(contract, out, ids, user_ids)
    return ids


def _opportunities(contract: Path, out: Path, ids: dict[str, str], user_ids: dict[str, str]) -> None:
    o = _read(contract, "opportunities")
    if o.empty:
        return
    kind_words = {"expansion": "Expansion", "cross_sell": "Cross-sell", "upsell": "Upsell", "renewal": "Renewal",
                  "new_business": "New Business"}
    opp_ids = dict(zip(o["opportunity_id"], _sf_id("006", np.arange(len(o)))))
    stages = _read(contract, "opportunity_stages")
    last_stage = stages.sort_values("entered_at").groupby("opportunity_id")["stage"].last() if not stages.empty else pd.Series(dtype=str)
    current = pd.DataFrame({
        "id": o["opportunity_id"].map(opp_ids), "account_id": o["account_id"].map(ids),
        "type": o["kind"].map(kind_words), "amount": o["amount"], "created_date": o["created_at"],
        "close_date": pd.to_datetime(o["closed_at"]).fillna(pd.to_datetime(o["expected_close_date"])),
        "is_closed": o["outcome"] != "open", "is_won": o["outcome"] == "won",
        "stage_name": o["opportunity_id"].map(last_stage), "owner_id": o["owner"].map(user_ids), "is_deleted": False,
    })
    _write(out, "opportunity", current)
    if not stages.empty:
        s = stages.sort_values(["opportunity_id", "entered_at"])
        nxt = s.groupby("opportunity_id")["entered_at"].shift(-1)
        _write(out, "opportunity_history", pd.DataFrame({
            "id": s["opportunity_id"].map(opp_ids), "stage_name": s["stage"], "_fivetran_start": s["entered_at"],
            "_fivetran_end": (nxt - pd.Timedelta(milliseconds=1)).fillna(OPEN_END), "_fivetran_active": nxt.isna(),
        }))


def stripe(contract: Path, out: Path, sf_ids: dict[str, str]) -> None:
    """Write the Stripe tables: customers, catalog and negotiated prices, item versions, invoices."""
    a, s, p, pay = (_read(contract, t) for t in ("accounts", "subscriptions", "products", "payments"))
    cus = {acc: f"cus_{i:010x}" for i, acc in enumerate(a["account_id"])}
    _write(out, "customer", pd.DataFrame({
        "id": a["account_id"].map(cus), "name": a["name"], "currency": "usd", "created": pd.to_datetime(a["customer_since"]),
        "metadata": [json.dumps({"salesforce_id": sf_ids[x]}) for x in a["account_id"]], "is_deleted": False,
    }))
    _write(out, "product", pd.DataFrame({"id": sorted(p["product_id"].unique()), "name": sorted(p["product_id"].unique())}))
    catalog = pd.DataFrame({
        "id": "price_list_" + p["product_id"] + "_" + p["plan"], "product_id": p["product_id"], "nickname": p["plan"],
        "currency": "usd", "unit_amount": (p["list_price_per_seat"] * 100).round().astype("int64"),
        "unit_amount_decimal": [repr(float(round(v * 100, 10))) for v in p["list_price_per_seat"]],
        "recurring_interval": "month", "recurring_interval_count": 1, "type": "recurring",
        "metadata": [json.dumps({"catalog": "true", "tier_rank": int(r), **({} if pd.isna(u) else {"usage_limit": float(u)})})
                     for r, u in zip(p["tier_rank"], p["usage_limit"])],
    })
    yearly = s["account_id"].map(a.set_index("account_id")["segment"]).eq("enterprise").to_numpy()
    months = np.where(yearly, 12, 1)
    cents = np.round(s["mrr"].to_numpy() * 100).astype(np.int64)
    decimal = [repr(float(c * m / q)) for c, m, q in zip(cents, months, s["seats"].to_numpy())]
    key = pd.DataFrame({"product_id": s["product_id"], "plan": s["plan"], "d": decimal, "y": yearly})
    price_id = "price_" + pd.Series(pd.factorize(key.apply(tuple, axis=1))[0], index=s.index).map("{:07d}".format)
    negotiated = pd.DataFrame({
        "id": price_id, "product_id": s["product_id"], "nickname": s["plan"], "currency": "usd",
        "unit_amount": [int(round(float(d))) for d in decimal], "unit_amount_decimal": decimal,
        "recurring_interval": np.where(yearly, "year", "month"), "recurring_interval_count": 1, "type": "recurring",
        "metadata": "{}",
    }).drop_duplicates("id")
    _write(out, "price", pd.concat([catalog, negotiated], ignore_index=True))
    sub = {acc: f"sub_{i:010x}" for i, acc in enumerate(a["account_id"])}
    current = s.groupby("account_id")["valid_to"].apply(lambda v: v.isna().any())
    ended = s.groupby("account_id")["valid_to"].max()
    _write(out, "subscription_history", pd.DataFrame({
        "id": a["account_id"].map(sub), "customer_id": a["account_id"].map(cus),
        "start_date": pd.to_datetime(a["customer_since"]),
        "status": a["account_id"].map(current).map({True: "active", False: "canceled"}).fillna("canceled"),
        "ended_at": pd.to_datetime(a["account_id"].map(ended)).where(~a["account_id"].map(current).fillna(False).astype(bool)),
        "_fivetran_active": True, "metadata": "{}",
    }))
    start = pd.to_datetime(s["valid_from"])
    end = pd.to_datetime(s["valid_to"])
    _write(out, "subscription_item", pd.DataFrame({
        "id": "si_" + s["account_id"].map(cus).str[4:] + "_" + s["product_id"], "subscription_id": s["account_id"].map(sub),
        "price_id": price_id, "quantity": s["seats"], "created": start,
        "_fivetran_start": start, "_fivetran_end": (end - pd.Timedelta(milliseconds=1)).fillna(OPEN_END),
        "_fivetran_active": end.isna(),
        "metadata": [json.dumps({k: v for k, v in (("usage_limit", None if pd.isna(u) else float(u)), ("renewal_date", None if pd.isna(r) else str(r)[:10])) if v is not None})
                     for u, r in zip(s["usage_limit"], s["renewal_date"])],
    }))
    paid = pay["paid_at"].notna()
    _write(out, "invoice", pd.DataFrame({
        "id": pay["invoice_id"], "customer_id": pay["account_id"].map(cus), "currency": "usd",
        "due_date": pd.to_datetime(pay["due_date"]), "amount_due": (pay["amount"] * 100).round().astype("int64"),
        "amount_paid": ((pay["amount"] * 100).round().astype("int64")).where(paid, 0),
        "status": np.where(paid, "paid", "uncollectible"), "paid": paid,
        "status_transitions_paid_at": pay["paid_at"],
    }))


TRACKS_PER_PART = 1_000_000  # events per tracks part: bounds the memory of one COPY whatever the company's size


def _account_chunks(con: duckdb.DuckDBPyConnection, usage: str, limit: int) -> list[list[str]]:
    """Accounts grouped, in id order, so that each group's events stay under ``limit`` (one account may exceed it)."""
    totals = con.execute(f"SELECT account_id, sum(events) FROM read_parquet('{usage}') GROUP BY 1 ORDER BY 1").fetchall()
    chunks, current, size = [], [], 0
    for account, events in totals:
        if current and size + int(events) > limit:
            chunks.append(current)
            current, size = [], 0
        current.append(account)
        size += int(events)
    return chunks + ([current] if current else [])


def segment(contract: Path, out: Path, part_events: int = TRACKS_PER_PART) -> int:
    """Write ``tracks`` (one row per event) and ``groups``; return the number of track rows.

    Events are produced per group of accounts and streamed into one Parquet file batch by
    batch, so memory stays bounded however big the company: no query holds more than about
    ``part_events`` events.
    """
    out.mkdir(parents=True, exist_ok=True)
    usage = str(contract / "usage_daily.parquet").replace("'", "''")
    con = duckdb.connect()
    n, writer = 0, None
    try:
        # one thread: rows come out in the window's order, so the file is the same on every run
        con.execute("SET threads = 1")
        con.execute("SET memory_limit = '512MB'")
        for part, accounts in enumerate(_account_chunks(con, usage, part_events)):
            con.execute("CREATE OR REPLACE TEMP TABLE chunk AS SELECT unnest(?::VARCHAR[]) AS account_id", [accounts])
            batches = con.sql(f"""
                WITH rows AS (
                    SELECT row_number() OVER (ORDER BY account_id, date, feature_key) AS r,
                           account_id, date, feature_key, events, active_users
                    FROM read_parquet('{usage}') WHERE account_id IN (SELECT account_id FROM chunk)
                )
                SELECT 'msg_{part}_' || r || '_' || k AS id,
                       account_id || '-u' || (k % active_users) AS user_id,
                       NULL::VARCHAR AS anonymous_id,
                       account_id AS context_group_id,
                       feature_key AS event,
                       replace(feature_key, '_', ' ') AS event_text,
                       CAST(date AS TIMESTAMP) + INTERVAL 9 HOUR + to_seconds(k % 28800) AS timestamp
                FROM rows, range(events) AS t(k)
            """).to_arrow_reader(1 << 20)
            for batch in batches:
                if writer is None:
                    writer = pq.ParquetWriter(out / "tracks.parquet", batch.schema, compression="zstd")
                writer.write_batch(batch)
                n += batch.num_rows
    finally:
        if writer is not None:
            writer.close()
        con.close()
    a = _read(contract, "accounts")
    _write(out, "groups", pd.DataFrame({"id": "grp_" + a["account_id"], "group_id": a["account_id"], "name": a["name"]}))
    return int(n)


def write_raw(contract: str | Path, out: str | Path, sources: tuple[str, ...] = RAW_SOURCES) -> dict[str, Path]:
    """Write the raw exports of ``sources`` for the contract folder ``contract`` under ``out``; return their folders."""
    contract, out = Path(contract), Path(out)
    unknown = [s for s in sources if s not in RAW_SOURCES]
    if unknown:
        raise ValueError(f"raw shapes: unknown source(s) {', '.join(unknown)} (known: {', '.join(RAW_SOURCES)})")
    folders = {s: out / s for s in sources}
    sf_ids = salesforce(contract, folders.get("salesforce", out / ".unused-salesforce")) if "salesforce" in sources else \
        dict(zip(_read(contract, "accounts")["account_id"], _sf_id("001", np.arange(len(_read(contract, "accounts"))))))
    if "stripe" in sources:
        stripe(contract, folders["stripe"], sf_ids)
    if "segment" in sources:
        segment(contract, folders["segment"])
    (out / "import-map.toml").write_text(MAP_TOML)
    return folders
