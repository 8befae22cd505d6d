"""``expansion monitor``: every past score run whose horizon has passed, against what happened, for both models.

For each calendar month with a score run (the run on the month's newest snapshot, the newest
of them when a snapshot was scored twice) whose ``as_of + H`` lies within the data, the
stored scores (``account_score_history``: each champion's probability and version and the
rule-based scores; ``account_shadow_scores``: the shadow challengers) are joined with the
outcomes the data shows for the same accounts (labels and context built by the feature code
at that snapshot), and :func:`training.monitoring.realised` measures champion, shadow and
baseline on them, per model (:data:`WATCHED`): expansion against the rule-based readiness
on ``expanded``, churn against the rule-based churn risk on ``churned``. The rows are stored
(``model_monitoring``), alarms on the stored track record go out through the alert channels
once each (``model_alarms``), and the caller logs each month and model to MLflow.

Rows scored before the history kept a model's rule baseline (``baseline_risk`` for churn) are
skipped for that model with a note, never read as a zero score.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from features.config import Settings
from features.io import DataSource
from serving.store.monitoring import MonitoringStore
from training.datasets import LABELS
from training.gate_evidence import SHADOW_COLUMNS, ShadowRecord
from training.monitoring import ALL, Alarm, alarms, calibration, realised, track_rows
from training.train import replicates_for

PROMISED = ("roc_auc", "lift_top_decile", "precision_top_book", "ece")


@dataclass(frozen=True)
class Watched:
    """What the score history keeps of one model: its probability and version columns, its rule baseline (0-100)."""

    name: str
    baseline: str

    @property
    def label(self) -> str:
        return LABELS[self.name]

    @property
    def probability(self) -> str:
        return f"{self.name}_probability"

    @property
    def version(self) -> str:
        return f"{self.name}_model_version"


#: Every monitored model, by name: the rule baseline each is compared with on the same accounts.
WATCHED: dict[str, Watched] = {"expansion": Watched("expansion", "baseline_score"),
                               "churn": Watched("churn", "baseline_risk")}
HISTORY_COLUMNS = ("account_id", "as_of", *sorted({c for w in WATCHED.values() for c in (w.probability, w.version,
                                                                                            w.baseline)}))


@dataclass
class MonitorResult:
    """The months measured (and those still waiting for their horizon), the stored rows, the alarms, the notes."""

    months: list[str]
    waiting: list[str]
    track: pd.DataFrame
    alarms: list[Alarm] = field(default_factory=list)
    sent: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def monthly_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """One score run per calendar month: the newest snapshot's run (the newest run when it was scored twice)."""
    if not len(runs):
        return runs.assign(month=pd.Series(dtype="string"))
    frame = runs.assign(as_of=pd.to_datetime(runs["as_of"]), scored_at=pd.to_datetime(runs["scored_at"], utc=True))
    frame["month"] = frame["as_of"].dt.strftime("%Y-%m")
    frame = frame.sort_values(["month", "as_of", "scored_at"], kind="stable")
    return frame.groupby("month", sort=True).tail(1).reset_index(drop=True)


def month_rows(store: MonitoringStore, run: pd.Series, outcomes: pd.DataFrame,
               model: Watched) -> tuple[pd.DataFrame, dict[str, str | None], int]:
    """One run's accounts with their outcome, context and every scorer's score for ``model``; the scorers' versions;
    and how many labelled accounts were skipped because the history did not keep the model's rule baseline."""
    history = store.history_rows(run["run_id"], HISTORY_COLUMNS)
    history["as_of"] = pd.to_datetime(history["as_of"])
    rows = history.merge(outcomes, on=["account_id", "as_of"], how="inner")
    rows = rows[rows[model.label].notna()]
    baseline = pd.to_numeric(rows[model.baseline], errors="coerce")
    skipped = int(baseline.isna().sum())
    rows, baseline = rows[baseline.notna()], baseline[baseline.notna()]
    out = pd.DataFrame({"account_id": rows["account_id"].to_numpy(), "as_of": rows["as_of"].to_numpy(),
                        "csm_owner": rows["csm_owner"].to_numpy(), "segment": rows["segment"].to_numpy(),
                        "outcome": rows[model.label].to_numpy(dtype=float),
                        "champion": pd.to_numeric(rows[model.probability], errors="coerce").to_numpy(dtype=float),
                        "baseline": baseline.to_numpy(dtype=float) / 100.0})
    versions = rows[model.version].dropna()
    found: dict[str, str | None] = {"champion": str(versions.mode().iloc[0]) if len(versions) else None, "baseline": "rules"}
    shadow = store.shadow_scores([run["run_id"]], model.name)
    if len(shadow):
        by_account = shadow.set_index("account_id")["probability"]
        out["shadow"] = out["account_id"].map(by_account).astype(float).to_numpy()
        found["shadow"] = str(shadow["version"].iloc[0])
    return out, found, skipped


def outcomes_at(source: DataSource, dates: list[dt.date], settings: Settings, data_end: dt.date) -> pd.DataFrame:
    """Labels (every model's) and context of every account active at each date, as the feature code builds them."""
    from features.snapshots import history_features

    frame = history_features(source, dates, settings, data_end=data_end)
    return frame[["account_id", "as_of", "csm_owner", "segment", *sorted({w.label for w in WATCHED.values()})]]


def _due(store: MonitoringStore, settings: Settings, data_end: dt.date) -> tuple[pd.DataFrame, list[str]]:
    """The monthly runs whose horizon passed by ``data_end``, and the months still waiting."""
    runs = monthly_runs(store.history_runs())
    if not len(runs):
        return runs, []
    due = runs[runs["as_of"] + pd.Timedelta(days=settings.horizon_days) <= pd.Timestamp(data_end)]
    return due, sorted(set(runs["month"]) - set(due["month"]))


def monitor(
    store: MonitoringStore, source: DataSource, settings: Settings, data_end: dt.date, computed_at: dt.datetime,
    promises: dict[str, dict[str, dict[str, float]]] | None = None,
) -> MonitorResult:
    """Measure both models on every scored month whose horizon passed by ``data_end``, store it, list the alarms.

    ``promises``: model name -> version -> what its pooled backtest promised (``training.monitoring_tracking``).
    """
    due, waiting = _due(store, settings, data_end)
    if not len(due):
        return MonitorResult([], waiting, pd.DataFrame())
    outcomes = outcomes_at(source, sorted(d.date() for d in due["as_of"].unique()), settings, data_end)
    parts, notes = [], []
    for _, run in due.iterrows():
        for model in WATCHED.values():
            part, note = month_track(store, run, outcomes, model, (promises or {}).get(model.name, {}), settings)
            parts += [part] if part is not None else []
            notes += [note] if note else []
    track = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    if len(track):
        store.save_track(track, computed_at)
    stored = store.read_track()
    found = alarms(stored, settings.horizon_days) if len(stored) else []
    return MonitorResult(sorted(due["month"]), waiting, track, found, notes=notes)


def month_track(store: MonitoringStore, run: pd.Series, outcomes: pd.DataFrame, model: Watched,
                promises: dict[str, dict[str, float]], settings: Settings) -> tuple[pd.DataFrame | None, str | None]:
    """One scored month's track rows for ``model`` (None when it cannot be measured) and a note on what was skipped."""
    rows, versions, skipped = month_rows(store, run, outcomes, model)
    note = (f"{model.name} {run['month']}: {skipped:,} account(s) scored before the score history kept the "
            f"{model.name} rule baseline ({model.baseline}) skipped" if skipped else None)
    if not len(rows):
        return None, f"{note}; nothing left to measure" if note else None
    if rows["outcome"].nunique() < 2:
        single = (f"{model.name} {run['month']}: one outcome only ({model.label} = {rows['outcome'].iloc[0]:.0f} for "
                  f"all {len(rows):,} accounts); nothing to rank, not measured")
        return None, f"{note}; {single}" if note else single
    table = realised(rows, replicates=replicates_for(len(rows), settings.bootstrap_replicates),
                     book_share=settings.csm_book_top_share)
    promise = promises.get(versions.get("champion") or "")
    spread = float((promise or {}).get("calibration_month_sd", 0.0))
    calib = (calibration(rows["outcome"].to_numpy(), rows["champion"].to_numpy(), month_sd=spread)
             if rows["champion"].notna().all() else None)
    part = track_rows(run["month"], model.name, table, calib, versions)
    if promise:
        promised = promise_rows(promise, run["month"], versions["champion"], model.name)
        part = pd.concat([part, promised], ignore_index=True)
    return part, note


def shadow_records(store: MonitoringStore, source: DataSource, settings: Settings, data_end: dt.date,
                   versions: dict[str, str]) -> dict[str, ShadowRecord]:
    """Each shadow version's realised months (one run per month, horizon passed by ``data_end``) for the gate.

    ``versions``: model name -> the version in shadow. Rows: ``account_id, as_of, outcome,
    shadow, served`` (the champion's probability where one served, else the baseline) ``, baseline``.
    """
    records: dict[str, ShadowRecord] = {}
    due, _ = _due(store, settings, data_end)
    for name, version in versions.items():
        if not len(due):
            continue
        scored = store.shadow_scores(list(due["run_id"]), name)
        scored = scored[scored["version"] == version]
        mine = due[due["run_id"].isin(set(scored["run_id"]))]
        if not len(mine):
            records[name] = ShadowRecord(version, pd.DataFrame(columns=list(SHADOW_COLUMNS)))
            continue
        outcomes = outcomes_at(source, sorted(d.date() for d in mine["as_of"].unique()), settings, data_end)
        parts = []
        for _, run in mine.iterrows():
            rows, _, _ = month_rows(store, run, outcomes, WATCHED[name])
            rows["served"] = rows["champion"].where(rows["champion"].notna(), rows["baseline"])
            parts.append(rows.dropna(subset=["shadow"])[list(SHADOW_COLUMNS)])
        records[name] = ShadowRecord(version, pd.concat(parts, ignore_index=True))
    return records


def promise_rows(metrics: dict[str, float], month: str, version: str | None, model_name: str) -> pd.DataFrame:
    """What the champion's pooled backtest promised (``test_<metric>`` with ``_low`` / ``_high``), as track rows."""
    rows = []
    for metric in PROMISED:
        if metric in metrics:
            rows.append({"segment": ALL, "scorer": "backtest promise", "metric": metric, "value": metrics[metric],
                         "low": metrics.get(f"{metric}_low", np.nan), "high": metrics.get(f"{metric}_high", np.nan),
                         "positives": metrics.get("positives", np.nan), "rows": metrics.get("rows", np.nan),
                         "month": month, "model_name": model_name, "version": version})
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
