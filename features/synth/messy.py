"""A messy company (``expansion generate --messy``): the generated company with what real exports hold.

Everything here is a documented rate or count in ``MessyConfig``; every draw comes from the
block's own ``STREAM_MESSY`` stream (or, for the days every account shares, from one stream
of the seed), so a messy company is byte-identical per seed like a clean one. The simulation
itself stays the clean one: the messy mode reshapes accounts before it (ids, names, owners,
accounts days or weeks old) and the tables after it, block by block, so memory stays flat.
What the company "truly" earns is read back from the subscriptions it wrote
(``features.synth.truth``), which already carry every trial, pause and cancellation below.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, fields

import numpy as np
import pandas as pd
import pyarrow as pa

from features.synth import messy_revenue as revenue
from features.synth.accounts import AccountBlock
from features.synth.timeline import Timeline, add_months

STREAM_MESSY = 6
GLOBAL_BLOCK = 2**31  # the stream of draws every block shares (outage days)


@dataclass(frozen=True)
class MessyConfig:
    """Every rate of the messy mode. Shares are of a block's accounts unless said otherwise."""

    ownerless_share: float = 0.36  # accounts without a CSM owner (csm_owner null)
    salesforce_id_share: float = 0.25  # ids as 18-character Salesforce ids ("001...")
    hubspot_id_share: float = 0.2  # ids as numeric HubSpot ids
    stripe_id_share: float = 0.2  # ids as Stripe customer ids ("cus_...")
    awkward_ids: int = 7  # per block: ids with quotes, <>, &, /, \, %, #, unicode, one of 200 characters
    awkward_names: int = 6  # per block: names with the same characters
    shared_name_pairs: int = 1  # per block: two accounts with one name (and one web domain in raw exports)
    newborn_share: float = 0.02  # accounts that start 1..newborn_max_days days before the as-of date
    newborn_max_days: int = 45
    reactivation_monthly: float = 0.03  # a churned account's monthly chance to come back (clean: 0.004)
    trial_share: float = 0.3  # of accounts starting inside the window: a trial at MRR 0 before paying
    trial_days: int = 14
    midmonth_share: float = 0.6  # of MRR changes: moved off the anniversary day to a day inside the month
    same_day_cancel_share: float = 0.01  # accounts whose only subscription ends the day after it starts
    pause_share: float = 0.01  # paying accounts that pause (MRR 0 on every product) for pause_days
    pause_days: int = 45
    usage_only_share: float = 0.01  # accounts with usage and no subscription at all (free users)
    silent_share: float = 0.02  # paying accounts with no usage at all
    bot_share: float = 0.01  # accounts with bot-like spikes: bot_days days at bot_factor x their events
    bot_days: int = 2
    bot_factor: float = 40.0
    outage_days: int = 3  # consecutive days with no events for anyone (a tracking outage), 35-90 days back
    last_day_loaded_share: float = 0.15  # share of the as-of day's usage rows loaded (late-arriving data)
    missing_tables: tuple[str, ...] = ("surveys",)  # optional tables not exported at all
    empty_tables: tuple[str, ...] = ("activities",)  # optional tables exported with no rows
    orphan_deals: int = 0  # opportunities whose account is gone (validate refuses these: see docs)

    def describe(self) -> list[tuple[str, object]]:
        """(parameter, value) pairs, for the command's summary."""
        return [(f.name, getattr(self, f.name)) for f in fields(self)]


_AWKWARD_IDS = ('q"uote\'s-{i}', "<b>bold</b>-{i}", "A&B/C\\D-{i}", "Zürich-Ωμέγα-東京-{i}", "50% off #{i}?",
                "  spaced {i} ", "long-{i}")
_AWKWARD_NAMES = ("O'Brien & Søns <GmbH> \"Quoted\"", "Back\\slash / Slash Ltd", "東京トレーディング株式会社",
                  "Café Ünïcode 🚀 Co", "<script>alert('x')</script> Inc", "Long " + "Name " * 40)
_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _base(n: int, width: int, alphabet: str = _B62) -> str:
    out = ""
    for _ in range(width):
        n, r = divmod(n, len(alphabet))
        out = alphabet[r] + out
    return out


def _long_id(i: int) -> str:
    tail = f"-{i}"
    return ("long-" + "x" * 200)[: 200 - len(tail)] + tail


def account_ids(rng: np.random.Generator, first_index: int, n: int, cfg: MessyConfig) -> np.ndarray:
    """Ids in the styles of real tools, unique by construction (each one encodes the global index)."""
    idx = first_index + np.arange(n)
    u = rng.random(n)
    cuts = np.cumsum([cfg.salesforce_id_share, cfg.hubspot_id_share, cfg.stripe_id_share])
    ids = []
    for i, x in zip(idx, u):
        if x < cuts[0]:
            ids.append("001" + _base(int(i) * 7919 + 104729, 12) + "AAE")
        elif x < cuts[1]:
            ids.append(str(5_000_000_000 + int(i) * 37))
        elif x < cuts[2]:
            ids.append("cus_" + _base(int(i) * 15485863 + 982451653, 14))
        else:
            ids.append(f"ACC-{int(i):06d}")
    awkward = rng.choice(n, min(cfg.awkward_ids, n), replace=False)
    for k, row in enumerate(awkward):
        i = int(idx[row])
        ids[row] = _long_id(i) if _AWKWARD_IDS[k % len(_AWKWARD_IDS)] == "long-{i}" else \
            _AWKWARD_IDS[k % len(_AWKWARD_IDS)].format(i=i)
    return np.array(ids, dtype=object)


def reshape_accounts(b: AccountBlock, timeline: Timeline, rng: np.random.Generator, cfg: MessyConfig) -> np.ndarray:
    """Owners, names and accounts days or weeks old, in place; return the messy ids (applied after the tables)."""
    n = b.n
    first_index = int(b.account_id[0][4:])
    ids = account_ids(rng, first_index, n, cfg)
    owned = [o if o is not None else f"csm-{int(k):03d}" for o, k in zip(b.csm_owner, rng.integers(0, 120, n))]
    drop = rng.random(n) < cfg.ownerless_share
    b.csm_owner = [None if d else o for o, d in zip(owned, drop)]
    for k, row in enumerate(rng.choice(n, min(cfg.awkward_names, n), replace=False)):
        b.name[row] = _AWKWARD_NAMES[k % len(_AWKWARD_NAMES)] + f" {first_index + int(row)}"
    for _ in range(cfg.shared_name_pairs if n >= 2 else 0):
        a, c = rng.choice(n, 2, replace=False)
        b.name[c] = b.name[a]
    newborn = np.flatnonzero(rng.random(n) < cfg.newborn_share)
    ages = rng.integers(1, cfg.newborn_max_days + 1, len(newborn))
    last_month = timeline.total_months - 1
    for row, age in zip(newborn, ages):
        day = timeline.as_of - dt.timedelta(days=int(age))
        day = day.replace(day=min(day.day, 28))
        back = (timeline.as_of.year - day.year) * 12 + timeline.as_of.month - day.month
        if back > last_month:
            continue
        b.start_month[row] = last_month - back
        b.day[row] = day.day
    return ids


def outage_days(seed: int, timeline: Timeline, cfg: MessyConfig) -> list[dt.date]:
    """The days of the tracking outage: consecutive, 35 to 90 days before the as-of date, inside the window."""
    from features.synth.timeline import block_rng

    if cfg.outage_days < 1:
        return []
    rng = block_rng(seed, GLOBAL_BLOCK, STREAM_MESSY)
    first = timeline.as_of - dt.timedelta(days=int(rng.integers(35, 91)))
    if first < timeline.window_start:
        return []
    return [first + dt.timedelta(days=k) for k in range(cfg.outage_days)]


def _pick(rng: np.random.Generator, pool: np.ndarray, share: float, taken: set) -> list:
    """A share of ``pool`` (at least one when the share is positive and the pool not empty), not already taken."""
    pool = np.array([p for p in pool if p not in taken], dtype=object)
    if share <= 0 or not len(pool):
        return []
    k = max(1, int(round(share * len(pool))))
    chosen = list(rng.choice(pool, min(k, len(pool)), replace=False))
    taken.update(chosen)
    return chosen


def mess_block(tables: dict[str, pa.Table], ids: np.ndarray, b: AccountBlock, timeline: Timeline,
               rng: np.random.Generator, cfg: MessyConfig, outage: list[dt.date]) -> dict[str, pa.Table]:
    """The block's tables with trials, mid-month changes, cancellations, pauses and messy usage; then the messy ids."""
    as_of = pd.Timestamp(timeline.as_of)
    window_start = pd.Timestamp(timeline.window_start)
    subs = tables["subscriptions"].to_pandas()
    acc = tables["accounts"].to_pandas()
    usage = tables["usage_daily"].to_pandas()
    for col in ("valid_from", "valid_to", "renewal_date"):
        subs[col] = pd.to_datetime(subs[col])
    acc["customer_since"] = pd.to_datetime(acc["customer_since"])
    usage["date"] = pd.to_datetime(usage["date"])
    first_start = subs.groupby("account_id")["valid_from"].min()
    current = subs.loc[subs["valid_to"].isna() & (subs["mrr"] > 0), "account_id"].unique()
    taken: set = set()
    used = usage["account_id"].unique()
    usage_only = _pick(rng, np.intersect1d(used, first_start.index[first_start < as_of - pd.Timedelta(days=60)]),
                       cfg.usage_only_share, taken)
    subs = subs[~subs["account_id"].isin(usage_only)]
    new_in_window = first_start.index[(first_start >= window_start) & (first_start < as_of - pd.Timedelta(days=30))]
    cancel = _pick(rng, new_in_window, cfg.same_day_cancel_share, taken)
    subs = revenue.same_day_cancellations(subs, cancel)
    trials = _pick(rng, first_start.index[first_start >= window_start], cfg.trial_share, taken)
    subs, acc = revenue.trials(subs, acc, trials, cfg.trial_days)
    subs = revenue.midmonth(subs, rng, cfg.midmonth_share, as_of)
    old = first_start.index[first_start < as_of - pd.Timedelta(days=240)]
    paused = _pick(rng, np.intersect1d(current, old), cfg.pause_share, taken)
    subs, pauses = revenue.pauses(subs, paused, rng, as_of, cfg.pause_days)
    usage = _mess_usage(usage, rng, cfg, taken, current, pauses, outage, as_of)
    tables = dict(tables)
    tables["subscriptions"] = _subs_table(subs.sort_values(["account_id", "product_id", "valid_from"]))
    tables["accounts"] = pa.Table.from_pandas(acc.assign(customer_since=acc["customer_since"].dt.date),
                                              preserve_index=False)
    tables["usage_daily"] = pa.Table.from_pandas(usage.assign(date=usage["date"].dt.date), preserve_index=False)
    return _rename(tables, dict(zip(b.account_id, ids)))


def _subs_table(subs: pd.DataFrame) -> pa.Table:
    out = subs.copy()
    for col in ("valid_from", "valid_to", "renewal_date"):
        out[col] = out[col].dt.date
    return pa.Table.from_pandas(out, preserve_index=False)


def _mess_usage(usage: pd.DataFrame, rng: np.random.Generator, cfg: MessyConfig, taken: set, paying: np.ndarray,
                pauses: dict, outage: list[dt.date], as_of: pd.Timestamp) -> pd.DataFrame:
    """Silent paying accounts, bot spikes, the pauses, the outage and a partly loaded last day."""
    silent = _pick(rng, np.intersect1d(paying, usage["account_id"].unique()), cfg.silent_share, taken)
    keep = ~usage["account_id"].isin(silent)
    for account, (p, q) in pauses.items():
        keep &= ~((usage["account_id"] == account) & (usage["date"] >= p) & (usage["date"] < q))
    keep &= ~usage["date"].isin(pd.to_datetime(outage))
    last = usage["date"] == as_of
    keep &= ~last | (rng.random(len(usage)) < cfg.last_day_loaded_share)
    usage = usage[keep].reset_index(drop=True)
    bots = _pick(rng, usage["account_id"].unique(), cfg.bot_share, taken)
    for account in bots:
        days = usage.loc[(usage["account_id"] == account) & (usage["date"] < as_of), "date"].unique()
        if len(days):
            spike = rng.choice(days, min(cfg.bot_days, len(days)), replace=False)
            hit = (usage["account_id"] == account) & usage["date"].isin(spike)
            usage.loc[hit, "events"] = (usage.loc[hit, "events"] * cfg.bot_factor).round().astype("int64")
    return usage


def _rename(tables: dict[str, pa.Table], mapping: dict[str, str]) -> dict[str, pa.Table]:
    """Every ``account_id`` column mapped from the clean ids to the messy ones."""
    out = {}
    for name, table in tables.items():
        if "account_id" in table.column_names and table.num_rows:
            col = table.column("account_id").to_pandas().map(mapping)
            table = table.set_column(table.column_names.index("account_id"), "account_id", pa.array(col, pa.string()))
        out[name] = table
    return out


def orphan_deals(cfg: MessyConfig, timeline: Timeline) -> pa.Table | None:
    """Opportunities of accounts that are gone from ``accounts`` (deleted in the CRM, the deal left behind)."""
    if cfg.orphan_deals < 1:
        return None
    day = pd.Timestamp(add_months(timeline.as_of, -1))
    n = cfg.orphan_deals
    return pa.table({
        "opportunity_id": pa.array([f"O-GONE-{k:04d}" for k in range(n)], pa.string()),
        "account_id": pa.array([f"deleted-account-{k:04d}" for k in range(n)], pa.string()),
        "kind": pa.array(["expansion"] * n, pa.string()),
        "amount": pa.array([1200.0 * (k + 1) for k in range(n)], pa.float64()),
        "created_at": pa.array([day.to_pydatetime()] * n, pa.timestamp("us")),
        "expected_close_date": pa.array([(day + pd.Timedelta(days=60)).date()] * n, pa.date32()),
        "closed_at": pa.array([None] * n, pa.timestamp("us")),
        "outcome": pa.array(["open"] * n, pa.string()),
        "owner": pa.array([None] * n, pa.string()),
    })


def drop_tables(out, rows: dict[str, int], cfg: MessyConfig) -> dict[str, int]:  # noqa: ANN001 - a Path
    """Remove the optional tables said to be missing and empty the ones said to be empty; rows per table left."""
    from features.contract import TABLES
    from features.synth.writer import contract_schema
    import pyarrow.parquet as pq

    for name in (*cfg.missing_tables, *cfg.empty_tables):
        if TABLES[name].required:
            raise ValueError(f"messy mode: {name} is a required table; only optional tables may be missing or empty")
    rows = dict(rows)
    for name in cfg.missing_tables:
        (out / f"{name}.parquet").unlink(missing_ok=True)
        rows.pop(name, None)
    for name in cfg.empty_tables:
        pq.write_table(contract_schema(name).empty_table(), out / f"{name}.parquet")
        rows[name] = 0
    return rows
