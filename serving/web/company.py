"""What the pages read from the raw contract tables (``Settings.data_dir``): revenue metrics, usage, deals.

Everything is as of a date the caller passes (the served snapshot's), never the clock.
Company-wide results are computed once per (folder state, date) and kept: the leadership
page then costs a dictionary look-up. DuckDB connections are not shared between threads,
so each query opens its own cursor (under a lock) and runs it beside other threads' queries.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ibis
import numpy as np
import pandas as pd

from features.config import Settings
from features.contract import EXPANSION_KINDS
from features.deals import open_deals_at
from features.io import DataSource, open_data
from features.metrics import MetricTables, period_metrics


def _months_back(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 - months
    return dt.date(index // 12, index % 12 + 1, 1)


def quarter_bounds(day: dt.date) -> tuple[dt.date, dt.date]:
    """First and last day of the calendar quarter holding ``day``."""
    first = dt.date(day.year, (day.month - 1) // 3 * 3 + 1, 1)
    nxt = _months_back(first, -3)
    return first, nxt - dt.timedelta(days=1)


@dataclass
class CompanyData:
    """The raw tables of one data folder, opened lazily; None-safe when no folder is configured."""

    data_dir: Path | None
    stage_order: tuple[str, ...] = Settings.model_fields["opportunity_stages"].default  # the setting in force
    _source: DataSource | None = None
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _cache: dict[tuple, Any] = field(default_factory=dict)
    _locks: dict[tuple, threading.Lock] = field(default_factory=dict)

    @property
    def available(self) -> bool:
        return self.data_dir is not None and Path(self.data_dir).is_dir()

    def has(self, table: str) -> bool:
        return self.available and self.source().has(table)

    def has_pipeline(self) -> bool:
        """True when the optional ``opportunities`` table exists and holds at least one deal."""
        if not self.has("opportunities"):
            return False
        return bool(self.cached("pipeline_rows", dt.date.min,
                                 lambda: int(self.query("SELECT count(*) AS n FROM opportunities")["n"].iloc[0])))

    def source(self) -> DataSource:
        if self._source is None:
            self._source = open_data(self.data_dir)  # type: ignore[arg-type]
        return self._source

    def _state(self) -> float:
        """Changes whenever a file of the folder is replaced (the cache key)."""
        return max((e.stat().st_mtime for e in os.scandir(self.data_dir)), default=0.0)  # type: ignore[arg-type]

    def cached(self, name: str, as_of: dt.date, compute: Any) -> Any:
        """``compute()``, once per (name, date, state of the folder); one lock per key, so a long computation
        (every account's usage) never holds up a short one (the recent wins)."""
        key = (name, as_of, self._state())
        if key not in self._cache:
            with self._lock:
                lock = self._locks.setdefault(key, threading.Lock())
            with lock:
                if key not in self._cache:
                    self._cache[key] = compute()
        return self._cache[key]

    def query(self, sql: str, params: list | None = None) -> pd.DataFrame:
        """Rows of one SQL query over the tables; each call has its own cursor (made under the lock), so
        queries of several threads run side by side."""
        with self._lock:
            cursor = self.source().con.cursor()
        try:
            return cursor.execute(sql, params or []).df()
        finally:
            cursor.close()

    # leadership --------------------------------------------------------------------------------
    def revenue(self, as_of: dt.date) -> dict[str, Any]:
        """NRR and GRR over the trailing 12 months at each of the last 12 month ends, last month's rates,
        and expansion ARR added in the quarter to date."""
        return self.cached("revenue", as_of, lambda: self._revenue(as_of))

    def _revenue(self, as_of: dt.date) -> dict[str, Any]:
        with self._lock:
            tables = MetricTables.from_source(self.source())
            ttm = period_metrics(tables, "ttm", start=_months_back(as_of, 22), end=as_of)
            months = period_metrics(tables, "month", start=_months_back(as_of, 11), end=as_of)
        q_start, q_end = quarter_bounds(as_of)
        in_quarter = months[pd.to_datetime(months["period_start"]).dt.date >= q_start]
        return {
            "ttm": ttm[["period_end", "nrr_pct", "grr_pct", "nrr_band", "starting_mrr"]].tail(12).reset_index(drop=True),
            "last_month": months.iloc[-1].to_dict() if len(months) else None,
            "quarter": (q_start, q_end),
            "expansion_arr_qtd": float(in_quarter["expansion_mrr"].sum() * 12) if len(in_quarter) else 0.0,
            "months_in_quarter_done": len(in_quarter),
        }

    def movements(self, as_of: dt.date, months: int = 12) -> pd.DataFrame:
        """MRR movements (expansion, contraction, churn, ...) of every account in the ``months`` up to ``as_of``,
        from the one definition in :mod:`features.movements`; columns account_id, date, movement, arr_delta."""
        def load() -> pd.DataFrame:
            from features.movements import movements

            if not self.has("subscriptions"):
                return pd.DataFrame(columns=["account_id", "date", "movement", "arr_delta"])
            start = _months_back(as_of, months - 1)
            with self._lock:
                con = self.source().ibis()
                products = con.table("products") if self.source().has("products") else None
                mv = movements(con.table("subscriptions"), products)
                mv = mv.filter((mv.date >= start) & (mv.date <= as_of))
                frame = mv.select("account_id", "date", "movement", arr_delta=mv.mrr_delta * 12).execute()
            return frame.assign(account_id=frame["account_id"].astype(str))

        return self.cached(f"movements{months}", as_of, load)

    # names -----------------------------------------------------------------------------------
    def names(self) -> dict[str, str]:
        """Each account's display name (the contract's ``accounts.name``), by account id; empty without data."""
        if not self.has("accounts"):
            return {}

        def load() -> dict[str, str]:
            frame = self.query("SELECT CAST(account_id AS VARCHAR) AS account_id, CAST(name AS VARCHAR) AS name "
                               "FROM accounts WHERE name IS NOT NULL")
            return dict(zip(frame["account_id"], frame["name"], strict=True))

        return self.cached("names", dt.date.min, load)

    # account page ------------------------------------------------------------------------------
    def usage(self, account_id: str, as_of: dt.date, months: int = 12) -> pd.DataFrame:
        """Events per calendar month and the monthly quota in force at each month end (null: unlimited).

        Read for every account at once, once per snapshot date (one scan of ``usage_daily``), so an
        account page costs a dictionary look-up."""
        empty = pd.DataFrame(columns=["month", "events", "usage_limit"])
        if not (self.has("usage_daily") and self.has("subscriptions")):
            return empty
        frame, accounts = self.cached(f"usage{months}", as_of, lambda: self._usage_all(as_of, months))
        lo, hi = np.searchsorted(accounts, account_id, "left"), np.searchsorted(accounts, account_id, "right")
        return frame.iloc[lo:hi].reset_index(drop=True) if hi > lo else empty

    def _usage_all(self, as_of: dt.date, months: int) -> tuple[pd.DataFrame, np.ndarray]:
        start = _months_back(as_of, months - 1)
        sql = """
            WITH m AS (
              SELECT CAST(account_id AS VARCHAR) AS account_id, date_trunc('month', CAST(date AS DATE)) AS month,
                     SUM(events) AS events
              FROM usage_daily WHERE CAST(date AS DATE) BETWEEN ? AND ? GROUP BY 1, 2),
            l AS (
              SELECT m.account_id, m.month, SUM(s.usage_limit) AS usage_limit
              FROM m JOIN subscriptions s ON CAST(s.account_id AS VARCHAR) = m.account_id
                AND CAST(s.valid_from AS DATE) <= last_day(m.month)
                AND (s.valid_to IS NULL OR CAST(s.valid_to AS DATE) > last_day(m.month))
              GROUP BY 1, 2)
            SELECT m.account_id, m.month, m.events, l.usage_limit FROM m LEFT JOIN l USING (account_id, month)
            ORDER BY m.account_id, m.month"""
        frame = self.query(sql, [start, as_of])
        # sorted as numpy compares strings, so an account's months are found by binary search
        frame = frame.sort_values(["account_id", "month"], kind="stable", key=lambda c: c.astype(str) if c.name ==
                                  "account_id" else c).reset_index(drop=True)
        accounts = frame["account_id"].to_numpy(dtype=str)
        return frame[["month", "events", "usage_limit"]], accounts

    # pipeline ----------------------------------------------------------------------------------
    def open_opportunities(self, as_of: dt.date) -> pd.DataFrame:
        """Open expansion opportunities at ``as_of`` with their latest stage (empty without the table)."""
        return self.cached("open_opps", as_of, lambda: self._open_opportunities(as_of))

    def _open_opportunities(self, as_of: dt.date) -> pd.DataFrame:
        """The one definition of an open deal (:func:`features.deals.open_deals`), run on the folder's tables."""
        columns = ["opportunity_id", "account_id", "kind", "amount", "expected_close_date", "owner", "stage",
                   "stage_entered_at", "stage_rank", "days_in_stage"]
        if not self.has_pipeline():
            return pd.DataFrame(columns=columns)
        with self._lock:
            con = self.source().ibis()
            stages = (con.table("opportunity_stages") if self.has("opportunity_stages") else ibis.memtable(
                pd.DataFrame({"opportunity_id": pd.Series(dtype="string"), "stage": pd.Series(dtype="string"),
                              "entered_at": pd.Series(dtype="datetime64[us]")})))
            frame = open_deals_at(con.table("opportunities"), stages, [as_of], self.stage_order, con)
        frame["account_id"] = frame["account_id"].astype(str)
        return frame[columns]

    def recent_wins(self, as_of: dt.date, days: int = 90) -> pd.DataFrame:
        """Expansions closed in the ``days`` before ``as_of``: won expansion deals when the pipeline table
        exists, else the expansion movements of the subscription history. Columns: account_id, date, amount_arr, kind."""
        return self.cached(f"wins{days}", as_of, lambda: self._recent_wins(as_of, days))

    def _recent_wins(self, as_of: dt.date, days: int) -> pd.DataFrame:
        start = pd.Timestamp(as_of) - pd.Timedelta(days=days - 1)
        end = pd.Timestamp(as_of) + pd.Timedelta(days=1)
        if self.has_pipeline():
            kinds = ", ".join(f"'{k}'" for k in EXPANSION_KINDS)
            sql = f"""SELECT account_id, CAST(closed_at AS DATE) AS date, amount AS amount_arr, kind FROM opportunities
                      WHERE outcome = 'won' AND kind IN ({kinds}) AND closed_at >= ? AND closed_at < ?
                      ORDER BY closed_at DESC"""
            frame = self.query(sql, [start, end])
        elif self.has("subscriptions"):
            from features.movements import movements

            with self._lock:
                con = self.source().ibis()
                products = con.table("products") if self.source().has("products") else None
                mv = movements(con.table("subscriptions"), products)
                mv = mv.filter((mv.movement == "expansion") & (mv.date >= start.date()) & (mv.date <= as_of))
                frame = mv.select("account_id", "date", amount_arr=mv.mrr_delta * 12,
                                  kind=mv.expansion_kind).order_by(mv.date.desc()).execute()
        else:
            return pd.DataFrame(columns=["account_id", "date", "amount_arr", "kind"])
        frame["account_id"] = frame["account_id"].astype(str)
        return frame
