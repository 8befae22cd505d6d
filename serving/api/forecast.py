"""``POST /forecast``: the stored forecasts (``expansion forecast`` writes them), shaped for the leadership page.

The service answers from the forecast store rather than computing: a forecast needs a
year of labelled history that the serving snapshot does not hold, and every figure a page
shows should be the one that was stored and will be tracked against what happened.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from features.config import Settings
from serving.store.forecasts import ForecastStore


class ForecastRequest(BaseModel):
    """Which stored forecast: the newest, or the newest made at or before ``as_of``; optionally one group."""

    model_config = ConfigDict(extra="forbid")
    as_of: dt.date | None = Field(None, description="Newest forecast made on or before this date (default: the newest).")
    group: str | None = Field(None, min_length=1, max_length=100, description="'all' or a segment (default: every group).")


class Figure(BaseModel):
    """One measure of one group: the point forecast and its 80 % and 95 % intervals."""

    group: str
    measure: str = Field(description="expansion_arr, contraction_arr, churned_arr (currency / year) or nrr_pct.")
    forecast: float
    low80: float | None
    high80: float | None
    low95: float | None
    high95: float | None
    starting_arr: float
    method: str = Field("model", description="Which forecast serves: model, naive_last, naive_mean4 or blend (the lowest "
                        "error on the company's own past cut-offs; the naive mean of four until every one has a record).")
    past_error_pts: float | None = Field(None, description="The method's median absolute past error, in points of "
                                         "starting ARR (NRR points for nrr_pct).")
    past_cutoffs: int | None = Field(None, description="How many past cut-offs that error rests on.")
    bias_pts: float | None = Field(None, description="The method's median signed past error (positive: above the actual).")
    interval_basis: str | None = Field(None, description="What the interval rests on: the track record, or a floor while it is short.")


class ForecastResponse(BaseModel):
    """The stored forecast: run, cut-off, horizon, models, and every figure; ``found`` false when none is stored."""

    found: bool
    run_id: str | None = None
    as_of: str | None = None
    horizon_days: int | None = None
    models: dict[str, str] = Field(default_factory=dict)
    interval_method: str = "the served method's own past errors, floored while few (see docs/training.md)"
    figures: list[Figure] = Field(default_factory=list)


def stored_forecast(where: str | Settings, request: ForecastRequest) -> ForecastResponse:
    """The newest stored forecast matching ``request`` in the store ``where`` names (a URI, or settings: the product
    store); ``found: false`` when it holds none."""
    if isinstance(where, str) and where.startswith("sqlite:///") and not Path(where.removeprefix("sqlite:///")).is_file():
        return ForecastResponse(found=False)
    store = ForecastStore(where)
    try:
        rows = store.read()
    finally:
        store.close()
    if rows.empty:
        return ForecastResponse(found=False)
    rows = rows.assign(as_of=pd.to_datetime(rows["as_of"]).dt.date)
    if request.as_of is not None:
        rows = rows.loc[rows["as_of"] <= request.as_of]
    if rows.empty:
        return ForecastResponse(found=False)
    newest = rows.sort_values(["as_of", "stored_at"]).iloc[-1]
    run = rows.loc[rows["run_id"] == newest["run_id"]]
    if request.group is not None:
        run = run.loc[run["group_name"] == request.group]
    figures = [Figure(group=r["group_name"], measure=r["measure"], forecast=r["forecast"], low80=r["low80"],
                      high80=r["high80"], low95=r["low95"], high95=r["high95"], starting_arr=r["starting_arr"],
                      method=_text(r.get("method")) or "model", past_error_pts=_number(r.get("past_error_pts")),
                      past_cutoffs=_number(r.get("past_cutoffs"), int), bias_pts=_number(r.get("bias_pts")),
                      interval_basis=_text(r.get("interval_basis")))
               for r in run.to_dict("records")]
    return ForecastResponse(found=True, run_id=str(newest["run_id"]), as_of=newest["as_of"].isoformat(),
                            horizon_days=int(newest["horizon_days"]), models=json.loads(newest["models"]), figures=figures)


def _number(value: object, kind: type = float) -> float | int | None:
    return kind(value) if value is not None and pd.notna(value) else None


def _text(value: object) -> str | None:
    return str(value) if value is not None and pd.notna(value) else None
