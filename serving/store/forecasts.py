"""Every forecast kept in the product store (:mod:`serving.store`), for ``expansion forecast --track``.

One table, ``forecasts``, one row per (run_id, group, measure): the as-of date, the horizon,
the point forecast and its 80 % and 95 % interval ends, the model versions and when it was
stored, and the sd of the forecast's own uncalibrated draws (``draw_sd``: the next forecasts read
their interval calibration from past forecasts' errors over it, ``training.forecast_calibration``;
a table written before that column existed gets it, empty, on the next write).
The run id is deterministic (cut-off, horizon, model versions), and a run's rows are
replaced in one transaction, so storing the same forecast twice changes nothing and a failed
write leaves the previous rows whole (the conventions of ``serving.sinks.sql``). Each row also says
which method served (``method``), its median past error in points of starting ARR over how
many past cut-offs, its bias and what its interval rests on.

A second table, ``forecast_record``, keeps the newest backtest's forecasts by cut-off, group,
measure and method beside what happened (``expansion forecast --backtest`` replaces it per
horizon): the live forecast chooses its method on it (``training.forecast_choice``).
"""

from __future__ import annotations

import datetime as dt
import json
import pandas as pd
import sqlalchemy as sa

from features.config import Settings
from serving.store import OnStore, Store
from training.forecast import MEASURES

TABLE = "forecasts"
RECORD = "forecast_record"  # the backtest's forecasts by cut-off and method: what the live forecast chooses on


class ForecastStore(OnStore):
    """Forecasts in the product store: a URI (``sqlite:///PATH`` or ``postgresql://...``), a store or settings."""

    def __init__(self, where: str | Store | Settings, *, table_prefix: str = "") -> None:
        super().__init__(where, table_prefix=table_prefix)
        self.table, self.record = self.store.table(TABLE), self.store.table(RECORD)

    def write(self, run_id: str, as_of: dt.date, horizon_days: int, table: pd.DataFrame, models: dict[str, str],
              stored_at: dt.datetime) -> int:
        """Replace the rows of ``run_id`` with ``table`` (one row per group) in one transaction; return rows written."""
        rows = []
        for r in table.to_dict("records"):
            for m in MEASURES:
                rows.append({"run_id": run_id, "group_name": r["group"], "measure": m, "as_of": as_of,
                             "horizon_days": int(horizon_days), "forecast": float(r[m]),
                             "low80": _float_or_none(r[f"{m}_low80"]), "high80": _float_or_none(r[f"{m}_high80"]),
                             "low95": _float_or_none(r[f"{m}_low95"]), "high95": _float_or_none(r[f"{m}_high95"]),
                             "starting_arr": float(r["starting_arr"]), "draw_sd": _float_or_none(r.get(f"{m}_draw_sd")),
                             "models": json.dumps(models, sort_keys=True),
                             "stored_at": stored_at, "method": r.get(f"{m}_method", "model"),
                             "past_error_pts": _float_or_none(r.get(f"{m}_past_error_pts")),
                             "past_cutoffs": _int_or_none(r.get(f"{m}_past_cutoffs")),
                             "bias_pts": _float_or_none(r.get(f"{m}_bias_pts")),
                             "interval_basis": r.get(f"{m}_interval"),
                             "model_forecast": _float_or_none(r.get(f"{m}_model", r[m]))})
        self.store.ensure()  # a table of an earlier version gets its newer columns (serving.store.migrate)
        with self.engine.begin() as conn:
            conn.execute(sa.delete(self.table).where(self.table.c.run_id == run_id))
            conn.execute(sa.insert(self.table), rows)
        return len(rows)

    def read(self) -> pd.DataFrame:
        """Every stored forecast row (empty frame when nothing was stored)."""
        with self.engine.connect() as conn:
            if not sa.inspect(conn).has_table(self.table.name):
                return pd.DataFrame(columns=[c.name for c in self.table.columns])
            have = {c["name"] for c in sa.inspect(conn).get_columns(self.table.name)}
            cols = [c for c in self.table.columns if c.name in have]  # a table of an earlier version lacks newer columns
            frame = pd.read_sql(sa.select(*cols).order_by(self.table.c.as_of, self.table.c.group_name), conn)
            return frame.reindex(columns=[c.name for c in self.table.columns])


    def write_record(self, horizon_days: int, record: pd.DataFrame, stored_at: dt.datetime) -> int:
        """Replace the backtest record of ``horizon_days`` with ``record`` (``training.forecast_choice.TRACK`` rows)."""
        rows = [{"horizon_days": int(horizon_days), "cutoff": pd.Timestamp(r["cutoff"]).date(), "group_name": r["group"],
                 "measure": r["measure"], "method": r["method"], "forecast": _float_or_none(r["forecast"]),
                 "actual": _float_or_none(r["actual"]), "starting_arr": _float_or_none(r["starting_arr"]),
                 "stored_at": stored_at} for r in record.to_dict("records")]
        self.store.ensure()
        with self.engine.begin() as conn:
            conn.execute(sa.delete(self.record).where(self.record.c.horizon_days == int(horizon_days)))
            if rows:
                conn.execute(sa.insert(self.record), rows)
        return len(rows)

    def read_record(self, horizon_days: int) -> pd.DataFrame:
        """The stored backtest record of ``horizon_days`` as ``TRACK`` rows (empty when no backtest was stored)."""
        cols = ["cutoff", "group", "measure", "method", "forecast", "actual", "starting_arr"]
        with self.engine.connect() as conn:
            if not sa.inspect(conn).has_table(self.record.name):
                return pd.DataFrame(columns=cols)
            frame = pd.read_sql(sa.select(self.record).where(self.record.c.horizon_days == int(horizon_days)), conn)
        frame = frame.rename(columns={"group_name": "group"})
        frame["cutoff"] = pd.to_datetime(frame["cutoff"])
        return frame[cols]


def _float_or_none(value: object) -> float | None:
    return float(value) if value is not None and pd.notna(value) else None


def _int_or_none(value: object) -> int | None:
    return int(value) if value is not None and pd.notna(value) else None


def track(stored: pd.DataFrame, actual: pd.DataFrame, data_end: dt.date) -> pd.DataFrame:
    """Past forecasts whose horizon has passed by ``data_end`` beside what happened, and whether each interval held it.

    ``actual`` has ``as_of``, ``group`` and one column per measure (``training.forecast_job.actuals_at``).
    """
    if stored.empty:
        return stored
    s = stored.assign(as_of=pd.to_datetime(stored["as_of"]).dt.date)
    due = s.loc[[a + dt.timedelta(days=int(h)) <= data_end for a, h in zip(s["as_of"], s["horizon_days"])]]
    if due.empty or actual.empty:
        return due.iloc[0:0]
    long = actual.melt(id_vars=["as_of", "group"], value_vars=list(MEASURES), var_name="measure", value_name="actual")
    long = long.rename(columns={"group": "group_name"})
    out = due.merge(long, on=["as_of", "group_name", "measure"], how="inner")
    out["error_pct"] = 100 * (out["forecast"] - out["actual"]) / out["actual"].where(out["actual"] != 0)
    out["in80"] = (out["low80"] <= out["actual"]) & (out["actual"] <= out["high80"])
    out["in95"] = (out["low95"] <= out["actual"]) & (out["actual"] <= out["high95"])
    return out
