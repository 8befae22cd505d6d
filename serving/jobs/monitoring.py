"""``expansion monitor``: every past score run whose horizon has passed, against what happened.

For each calendar month with a score run (the run on the month's newest snapshot, the newest
of them when a snapshot was scored twice) whose ``as_of + H`` lies within the data, the
stored scores (``account_score_history``: the champion's expansion probability and version,
the rule-based readiness; ``account_shadow_scores``: the shadow challenger) are joined with
the outcomes the data shows for the same accounts (labels and context built by the feature
code at that snapshot), and :func:`training.monitoring.realised` measures champion, shadow
and baseline on them. The rows are stored (``model_monitoring``), alarms on the stored track
record go out through the alert channels once each (``model_alarms``), and the caller logs
each month to MLflow. Expansion is monitored: the baseline the history keeps is the
expansion readiness.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from features.config import Settings
from features.io import DataSource
from serving.monitoring_store import MonitoringStore
from training.gate import ShadowRecord
from training.monitoring import ALL, Alarm, alarms, calibration, realised, track_rows
from training.train import replicates_for

MODEL = "expansion"
LABEL = "expanded"
PROMISED = ("roc_auc", "lift_top_decile", "precision_top_book", "ece")
SHADOW_COLUMNS = ("account_id", "as_of", "outcome", "shadow", "served", "baseline")


@dataclass
class MonitorResult:
    """The months measured (and those still waiting for their horizon), the stored rows, the alarms."""

    months: list[str]
    waiting: list[str]
    track: pd.DataFrame
    alarms: list[Alarm] = field(default_factory=list)
    sent: list[str] = field(default_factory=list)


def monthly_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """One score run per calendar month: the newest snapshot's run (the newest run when it was scored twice)."""
    if not len(runs):
        return runs.assign(month=pd.Series(dtype="string"))
    frame = runs.assign(as_of=pd.to_datetime(runs["as_of"]), scored_at=pd.to_datetime(runs["scored_at"], utc=True))
    frame["month"] = frame["as_of"].dt.strftime("%Y-%m")
    frame = frame.sort_values(["month", "as_of", "scored_at"], kind="stable")
    return frame.groupby("month", sort=True).tail(1).reset_index(drop=True)


def month_rows(store: MonitoringStore, run: pd.Series, outcomes: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, str | None]]:
    """One run's accounts with their outcome, context and every scorer's score; and the scorers' versions."""
    history = store.history_rows(run["run_id"])
    history["as_of"] = pd.to_datetime(history["as_of"])
    rows = history.merge(outcomes, on=["account_id", "as_of"], how="inner")
    rows = rows[rows[LABEL].notna()]
    out = pd.DataFrame({"account_id": rows["account_id"].to_numpy(), "as_of": rows["as_of"].to_numpy(),
                        "csm_owner": rows["csm_owner"].to_numpy(), "segment": rows["segment"].to_numpy(),
                        "outcome": rows[LABEL].to_numpy(dtype=float),
                        "champion": pd.to_numeric(rows["expansion_probability"], errors="coerce").to_numpy(dtype=float),
                        "baseline": pd.to_numeric(rows["baseline_score"], errors="coerce").to_numpy(dtype=float) / 100.0})
    versions = rows["expansion_model_version"].dropna()
    found: dict[str, str | None] = {"champion": str(versions.mode().iloc[0]) if len(versions) else None, "baseline": "rules"}
    shadow = store.shadow_scores([run["run_id"]], MODEL)
    if len(shadow):
        by_account = shadow.set_index("account_id")["probability"]
        out["shadow"] = out["account_id"].map(by_account).astype(float).to_numpy()
        found["shadow"] = str(shadow["version"].iloc[0])
    return out, found


def outcomes_at(source: DataSource, dates: list[dt.date], settings: Settings, data_end: dt.date) -> pd.DataFrame:
    """Labels and context of every account active at each date, as the feature code builds them."""
    from features.snapshots import history_features

    frame = history_features(source, dates, settings, data_end=data_end)
    return frame[["account_id", "as_of", "csm_owner", "segment", LABEL]]


def monitor(
    store: MonitoringStore, source: DataSource, settings: Settings, data_end: dt.date, computed_at: dt.datetime,
    promises: dict[str, dict[str, float]] | None = None,
) -> MonitorResult:
    """Measure every scored month whose horizon passed by ``data_end``, store it, and list the alarms."""
    runs = monthly_runs(store.history_runs())
    if not len(runs):
        return MonitorResult([], [], pd.DataFrame())
    horizon = pd.Timedelta(days=settings.horizon_days)
    due = runs[runs["as_of"] + horizon <= pd.Timestamp(data_end)]
    waiting = sorted(set(runs["month"]) - set(due["month"]))
    if not len(due):
        return MonitorResult([], waiting, pd.DataFrame())
    outcomes = outcomes_at(source, sorted(d.date() for d in due["as_of"].unique()), settings, data_end)
    parts = []
    for _, run in due.iterrows():
        rows, versions = month_rows(store, run, outcomes)
        if rows["outcome"].nunique() < 2:
            continue
        table = realised(rows, replicates=replicates_for(len(rows), settings.bootstrap_replicates),
                         book_share=settings.csm_book_top_share)
        promise = (promises or {}).get(versions.get("champion") or "")
        spread = float((promise or {}).get("calibration_month_sd", 0.0))
        calib = (calibration(rows["outcome"].to_numpy(), rows["champion"].to_numpy(), month_sd=spread)
                 if rows["champion"].notna().all() else None)
        part = track_rows(run["month"], MODEL, table, calib, versions)
        if promise:
            part = pd.concat([part, promise_rows(promise, run["month"], versions["champion"])], ignore_index=True)
        parts.append(part)
    track = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    if len(track):
        store.save_track(track, computed_at)
    stored = store.read_track()
    return MonitorResult(sorted(due["month"]), waiting, track, alarms(stored, settings.horizon_days) if len(stored) else [])


def shadow_records(store: MonitoringStore, source: DataSource, settings: Settings, data_end: dt.date,
                   versions: dict[str, str]) -> dict[str, ShadowRecord]:
    """Each shadow version's realised months (one run per month, horizon passed by ``data_end``) for the gate.

    ``versions``: model name -> the version in shadow. Rows: ``account_id, as_of, outcome,
    shadow, served`` (the champion's probability where one served, else the baseline) ``, baseline``.
    """
    records: dict[str, ShadowRecord] = {}
    runs = monthly_runs(store.history_runs())
    horizon = pd.Timedelta(days=settings.horizon_days)
    due = runs[runs["as_of"] + horizon <= pd.Timestamp(data_end)] if len(runs) else runs
    for name, version in versions.items():
        if name != MODEL or not len(due):
            continue  # the history keeps the expansion baseline only
        scored = store.shadow_scores(list(due["run_id"]), name)
        scored = scored[scored["version"] == version]
        mine = due[due["run_id"].isin(set(scored["run_id"]))]
        if not len(mine):
            records[name] = ShadowRecord(version, pd.DataFrame(columns=list(SHADOW_COLUMNS)))
            continue
        outcomes = outcomes_at(source, sorted(d.date() for d in mine["as_of"].unique()), settings, data_end)
        parts = []
        for _, run in mine.iterrows():
            rows, _ = month_rows(store, run, outcomes)
            rows["served"] = rows["champion"].where(rows["champion"].notna(), rows["baseline"])
            parts.append(rows.dropna(subset=["shadow"])[list(SHADOW_COLUMNS)])
        records[name] = ShadowRecord(version, pd.concat(parts, ignore_index=True))
    return records


def promise_rows(metrics: dict[str, float], month: str, version: str | None) -> pd.DataFrame:
    """What the champion's pooled backtest promised (``test_<metric>`` with ``_low`` / ``_high``), as track rows."""
    rows = []
    for metric in PROMISED:
        if metric in metrics:
            rows.append({"segment": ALL, "scorer": "backtest promise", "metric": metric, "value": metrics[metric],
                         "low": metrics.get(f"{metric}_low", np.nan), "high": metrics.get(f"{metric}_high", np.nan),
                         "positives": metrics.get("positives", np.nan), "rows": metrics.get("rows", np.nan),
                         "month": month, "model_name": MODEL, "version": version})
    return pd.DataFrame(rows)


def alarm_messages(alarm: Alarm, routing: object, now: dt.datetime) -> list[dict]:
    """The alarm as one message per channel of the ``model-health`` route (else the catch-all route)."""
    route = routing.route_for("model-health") if routing is not None else None  # type: ignore[attr-defined]
    if route is None:
        return []
    from serving.alerts.channels import CHANNELS

    subject = f"Model health: {alarm.kind.replace('_', ' ')} ({alarm.model_name})"
    data = {"kind": "model_health", "alarm": alarm.kind, "model": alarm.model_name, "months": list(alarm.months),
            "message": alarm.message, "sent_at": now.isoformat()}
    out = []
    for channel, destination in route.channels:
        payload = CHANNELS[channel].notice(destination, subject, alarm.message, data)
        out.append({"message_key": f"{alarm.key}:{channel}", "channel": channel, "destination": destination,
                    "payload": json.dumps(payload)})
    return out


def send_alarms(found: list[Alarm], store: MonitoringStore, settings: Settings, now: dt.datetime) -> tuple[list[str], list[str]]:
    """Send each alarm not sent before through the alert channels; (sent keys, problems said out loud)."""
    from serving.alerts.channels import CHANNELS, DeliveryError, send, shown
    from serving.alerts.routing import load_routing
    from serving.alerts.run import routing_path

    routing = load_routing(routing_path(settings))
    sent, problems = [], []
    for alarm in found:
        if store.alarm_sent(alarm.key):
            continue
        messages = alarm_messages(alarm, routing, now)
        if not messages:
            problems.append(f"{alarm.kind}: no route 'model-health' (or '*') in the alert routing file; not sent")
            continue
        delivered = []
        for message in messages:
            channel, destination = message["channel"], message["destination"]
            url = destination if CHANNELS[channel].secret else None
            where = shown(channel, destination)  # a webhook URL is a credential
            try:
                send(message, settings, url)
                delivered.append(f"{channel}:{where}")
            except DeliveryError as exc:
                problems.append(f"{alarm.kind}: {channel} {where} delivery failed: {exc}")
        if delivered:
            store.record_alarm(alarm.key, alarm.model_name, alarm.kind, alarm.message, ", ".join(delivered), now)
            sent.append(alarm.key)
    return sent, problems
