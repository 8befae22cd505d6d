"""The model-health page (data scientists and CS leaders): the realised track record, month by month, per model.

Reads what ``expansion monitor`` stored (``serving.store.monitoring``): for the expansion and the
churn model, per scored month, the champion, the shadow challenger and the rule-based baseline
(readiness for expansion, churn risk for churn) measured on the same accounts
once the horizon passed, each with its 90 % interval and positive count; the trend of
realised ROC-AUC against what the champion's pooled backtest promised; calibration (observed
rate against the band the probabilities predicted); and the alarms sent. Pure view-building
over the store; the route lives in ``serving.web.app``.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from serving.store.monitoring import MonitoringStore
from serving.web.charts import line_chart
from serving.web.state import WebState

ALL = "(all)"
#: The models in the order the page shows them, with what their positives are called.
MODELS = (("expansion", "Expansions"), ("churn", "Churns"))
SHOWN = (("roc_auc", "ROC-AUC"), ("lift_top_decile", "lift, top decile"), ("precision_top_book", "precision, CSM top 20 %"))


def _figure(rows: pd.DataFrame, scorer: str, metric: str) -> dict[str, float] | None:
    hit = rows[(rows["scorer"] == scorer) & (rows["metric"] == metric)]
    if not len(hit):
        return None
    r = hit.iloc[0]
    return {"value": r["value"], "low": r["low"], "high": r["high"], "positives": r["positives"], "rows": r["rows"],
            "version": r.get("version")}


def month_lines(track: pd.DataFrame) -> list[dict[str, Any]]:
    """One entry per scored month, newest first: figures per scorer, the gain, calibration and the versions."""
    overall = track[track["segment"] == ALL]
    out = []
    for month, rows in sorted(overall.groupby("month"), key=lambda kv: kv[0], reverse=True):
        line: dict[str, Any] = {"month": month, "metrics": []}
        auc = _figure(rows, "champion", "roc_auc") or _figure(rows, "baseline", "roc_auc")
        line["accounts"] = int(auc["rows"]) if auc else None
        line["positives"] = int(auc["positives"]) if auc else None
        for metric, label in SHOWN:
            line["metrics"].append({
                "label": label, "champion": _figure(rows, "champion", metric), "shadow": _figure(rows, "shadow", metric),
                "baseline": _figure(rows, "baseline", metric), "gain": _figure(rows, "champion - baseline", metric),
                "promise": _figure(rows, "backtest promise", metric)})
        champion = _figure(rows, "champion", "roc_auc")
        shadow = _figure(rows, "shadow", "roc_auc")
        line["champion_version"] = champion["version"] if champion else None
        line["shadow_version"] = shadow["version"] if shadow else None
        calib = rows[rows["scorer"] == "champion"].set_index("metric")["value"]
        if "observed_rate" in calib.index:
            side = calib.get("calibration_outside", 0.0)
            line["calibration"] = {"observed": calib["observed_rate"], "predicted": calib.get("predicted_rate"),
                                   "low": calib.get("band_low"), "high": calib.get("band_high"),
                                   "status": "red" if side else "green", "ece": calib.get("ece")}
        out.append(line)
    return out


def trend_chart(track: pd.DataFrame, name: str = "expansion") -> str | None:
    """Realised ROC-AUC per month of one model's record: champion, baseline and shadow, against the backtest's promise."""
    auc = track[(track["segment"] == ALL) & (track["metric"] == "roc_auc")]
    if not len(auc):
        return None
    months = sorted(auc["month"].unique())
    series = {}
    for scorer in ("champion", "shadow", "baseline"):  # the baseline takes the muted colour
        values = auc[auc["scorer"] == scorer].set_index("month")["value"].reindex(months)
        if values.notna().any():
            series[scorer] = values.tolist()
    promise = auc[auc["scorer"] == "backtest promise"]
    reference = (float(promise["value"].iloc[-1]), "backtest promise") if len(promise) else None
    return line_chart(months, series, f"Realised ROC-AUC per scored month ({name})", "ROC-AUC", reference=reference)


def health_view(state: WebState) -> dict[str, Any]:
    """Everything the model-health page shows, as a dictionary for its template: one section per monitored model."""
    store = MonitoringStore(state.settings)
    try:
        track = store.read_track()
        alarms = store.read_alarms()
    finally:
        store.close()
    models = []
    for name, positives in MODELS:
        mine = track[track["model_name"] == name] if len(track) else track
        if len(mine):
            models.append({"name": name, "positives": positives, "months": month_lines(mine),
                           "trend_chart": trend_chart(mine, name), "segments": segment_lines(mine)})
    return {"models": models, "horizon_days": state.settings.horizon_days,
            "alarms": alarms.head(10).to_dict("records") if len(alarms) else []}


def segment_lines(track: pd.DataFrame) -> list[dict[str, Any]]:
    """The newest month's ROC-AUC per segment: champion against baseline, with counts."""
    newest = track[track["month"] == track["month"].max()]
    out = []
    for segment, rows in newest[newest["segment"] != ALL].groupby("segment", sort=True):
        out.append({"segment": segment, "champion": _figure(rows, "champion", "roc_auc"),
                    "baseline": _figure(rows, "baseline", "roc_auc"), "gain": _figure(rows, "champion - baseline", "roc_auc")})
    return out
