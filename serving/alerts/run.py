"""One alerts run on a snapshot, and a dry run replayed day by day over a month.

``run_alerts`` evaluates the rules at ``as_of``, finds the episodes that started since
the last run (or, on the very first run, since a week earlier, so that a new install does
not fire on every account already in a condition), decides each once (snooze, routing,
weekly cap), writes the decisions and the outbox in one transaction, then delivers every
pending message. With ``dry_run`` nothing is written and nothing is sent.

A run that writes holds the lease ``alerts`` in the state store from its first read to its
last send (renewed per message, ``Settings.alerts_lease_seconds``): a second run meanwhile
raises :class:`AlertBusy` instead of sending the same episodes again.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

from features.conditions import thresholds
from features.config import Settings
from features.io import DataSource
from serving.alerts import messages
from serving.alerts.channels import payload, shown
from serving.alerts.delivery import Delivery, deliver
from serving.alerts.episodes import (
    decide,
    entering,
    entering_over,
    episode_id,
    expected_value,
    not_rearmed,
    week_start,
)
from serving.alerts.routing import Routing, load_routing
from serving.alerts.rules import Rule, active_rules, in_condition, load_rules
from serving.alerts.signals import usable_tables, with_signals
from serving.alerts.store import AlertStore, facts_json
from serving.scoring.plays import FACT_NAMES

FIRST_RUN_LOOKBACK_DAYS = 7


LEASE = "alerts"


class AlertError(ValueError):
    """A run that must not happen (an older snapshot than the last run)."""


class AlertBusy(RuntimeError):
    """Another alerts run holds the lease: this one sends nothing."""


@dataclass
class AlertRun:
    """What a run decided and delivered."""

    as_of: dt.date
    rules: tuple[Rule, ...]
    inactive: dict[str, str]
    episodes: pd.DataFrame
    messages: int = 0
    delivery: Delivery | None = None
    dry_run: bool = False
    routed: bool = True
    rearmed: int = 0
    withheld: dict[str, str] = field(default_factory=dict)  # rules not sent on this company, and why

    def count(self, status: str) -> int:
        return int((self.episodes["status"] == status).sum()) if len(self.episodes) else 0


def withheld_rules(rules: tuple[Rule, ...], records: dict) -> dict[str, str]:
    """Rules not sent on this company by their stored backtest (``serving.alerts.backtest.sending``), and why."""
    from serving.alerts.backtest import sending

    return {r.name: why for r in rules for ok, why in [sending(r, records.get(r.name))] if not ok}


def routing_path(settings: Settings):  # noqa: ANN201 - Path
    return settings.alerts_routing or settings.home / "alerts" / "routing.toml"


def open_store(settings: Settings) -> AlertStore:
    return AlertStore(settings.alerts_store or settings)  # default: the product store (EXPANSION_STORE_URI)


def _at(frame: pd.DataFrame, day: dt.date) -> pd.DataFrame:
    return frame[pd.to_datetime(frame["as_of"]) == pd.Timestamp(day)].reset_index(drop=True)


def _facts(frame: pd.DataFrame, rules: tuple[Rule, ...]) -> list[str]:
    wanted = [*FACT_NAMES, "arr", "csm_owner"] + [f for r in rules for f in (*r.features, r.money)]
    return [c for c in dict.fromkeys(wanted) if c in frame.columns]


def describe(new: pd.DataFrame, now: pd.DataFrame, rules: tuple[Rule, ...], rates: dict[str, float],
             started: pd.Series) -> pd.DataFrame:
    """New episodes with their CSM, facts, money at stake and expected value."""
    by_rule = {r.name: r for r in rules}
    cols = _facts(now, rules)
    rows = new[["account_id", "rule"]].merge(now[["account_id", *[c for c in cols if c != "account_id"]]],
                                             on="account_id", how="left")
    money = pd.Series([row.get(by_rule[row["rule"]].money) for row in rows.to_dict("records")], index=rows.index)
    out = pd.DataFrame({
        "account_id": rows["account_id"].astype("string"), "rule": rows["rule"].astype("string"),
        "started": started.to_numpy(), "csm_owner": rows["csm_owner"].astype("string"),
    })
    out["expected_value"] = expected_value(money, rates, out["rule"])
    out["facts"] = [facts_json(r) for r in rows[cols].to_dict("records")]
    out["episode_id"] = [episode_id(a, r, s) for a, r, s in zip(out["account_id"], out["rule"], out["started"])]
    return out


def outbox(decided: pd.DataFrame, rules: tuple[Rule, ...], routing: Routing, records: dict, symbol: str,
           as_of: dt.date) -> list[dict]:
    """Messages for the queued episodes: one per alert and channel, or one digest per CSM and channel."""
    import json

    by_rule = {r.name: r for r in rules}
    rows: list[dict] = []
    queued = decided[decided["status"] == "queued"]
    for csm, group in queued.groupby(queued["csm_owner"].fillna(""), sort=True):
        route = routing.route_for(str(csm))
        alerts = [messages.alert(by_rule[e["rule"]], e, json.loads(e["facts"]), records.get(e["rule"]),
                                 routing.link(str(e["account_id"])), symbol) for e in group.to_dict("records")]
        alerts.sort(key=lambda a: -float(group.loc[group["episode_id"] == a["episode_id"], "expected_value"].iloc[0]))
        batches = [alerts] if route.digest else [[a] for a in alerts]
        for channel, destination in route.channels:
            for batch in batches:
                ids = [a["episode_id"] for a in batch]
                key = messages.message_key(channel, destination, ids, as_of.isoformat() if route.digest else None)
                rows.append({"message_key": key, "channel": channel, "destination": shown(channel, destination),
                             "csm_owner": str(csm), "payload": payload(channel, destination, batch, key, route.digest),
                             "episode_ids": ",".join(ids), "status": "pending", "attempts": 0, "last_error": None,
                             "queued_as_of": as_of, "sent_at": None})
    return rows


def run_alerts(source: DataSource, as_of: dt.date, settings: Settings, *, clock: Callable[[], dt.datetime],
               dry_run: bool = False, features: pd.DataFrame | None = None,
               sleep: Callable[[float], None] = time.sleep) -> AlertRun:
    """Evaluate, decide, record and deliver the alerts of the snapshot at ``as_of`` (see the module docstring)."""
    from features.build import build_features

    rules, inactive = active_rules(load_rules(settings.alerts_rules, thresholds(settings)), usable_tables(source))
    routing = load_routing(routing_path(settings))
    if routing is not None and not dry_run:
        routing.check(settings, str(routing_path(settings)))
    store = open_store(settings)
    holder = uuid.uuid4().hex
    leased = False
    try:
        if not dry_run:
            taken = store.acquire(LEASE, holder, clock(), settings.alerts_lease_seconds)
            if taken is not None:
                raise AlertBusy(f"another alerts run holds the lease on {store.shown} until {taken:%Y-%m-%d %H:%M:%S} "
                                "UTC: this run sent nothing (a killed run's lease lapses then)")
            leased = True
        last = store.last_run()
        if last is not None and as_of < last:
            raise AlertError(f"alerts already ran on the snapshot of {last}; a run on the older {as_of} would send stale alerts")
        prior = as_of - dt.timedelta(days=FIRST_RUN_LOOKBACK_DAYS)
        dates = [as_of] if last is not None else [prior, as_of]
        if features is not None and last is not None:
            frame = features
        else:
            frame = build_features(source, dates, settings, signals=True)
        frame = with_signals(frame, source, settings)
        now = _at(frame, as_of)
        current = in_condition(rules, now)
        previous = store.conditions() if last is not None else in_condition(rules, _at(frame, prior))
        new = entering(current, previous)
        repeats = not_rearmed(new, store.recent_episodes(as_of, settings.alerts_rearm_days))
        new = new.loc[~repeats].reset_index(drop=True)
        records = store.track_records()
        rates = {k: v["rate"] for k, v in records.items() if v.get("rate") is not None}
        withheld = withheld_rules(rules, records)
        described = describe(new, now, rules, rates, pd.Series([as_of] * len(new)))
        decided = decide(described, snoozed=store.snoozed(as_of), withheld=set(withheld),
                         routed=None if (dry_run and routing is None) else
                         (routing.routed(list(described["csm_owner"].fillna("").unique())) if routing else set()),
                         sent_this_week=store.sent_this_week(week_start(as_of), as_of), cap=settings.alerts_weekly_cap)
        result = AlertRun(as_of, rules, inactive, decided, dry_run=dry_run, routed=routing is not None,
                          rearmed=int(repeats.sum()), withheld=withheld)
        if dry_run:
            return result
        rows = outbox(decided, rules, routing, records, settings.currency_symbol, as_of) if routing else []
        store.commit_run(as_of, clock(), [r.name for r in rules], current, decided, rows)
        result.messages = len(rows)
        urls = routing.secrets() if routing else []
        result.delivery = deliver(store, settings, clock, sleep, urls=urls,
                                  renew=lambda: store.acquire(LEASE, holder, clock(), settings.alerts_lease_seconds) is None)
        return result
    finally:
        if leased:
            store.release(LEASE, holder)
        store.close()


@dataclass
class Simulation:
    """A dry run replayed day by day: alerts per CSM per ISO week, what the cap held back, per rule."""

    start: dt.date
    end: dt.date
    per_csm_week: pd.DataFrame
    episodes: pd.DataFrame
    inactive: dict[str, str] = field(default_factory=dict)
    rearmed: int = 0
    withheld: dict[str, str] = field(default_factory=dict)  # rules not sent on this company (its stored backtest), and why

    def notes(self) -> list[str]:
        """One line per rule that did not take part as usual: inactive (a table missing) or not sent on this company."""
        return ([f"rule {name} inactive: {why}" for name, why in self.inactive.items()]
                + [f"rule {name} not sent on this company: {why} (its episodes are counted as 'withheld', not queued)"
                   for name, why in self.withheld.items()])

    def _count(self, *, owned: bool, status: str) -> int:
        """Episodes of accounts with (``owned``) or without a CSM that got ``status``."""
        if not len(self.episodes):
            return 0
        e = self.episodes
        return int(((e["csm_owner"].notna() == owned) & (e["status"] == status)).sum())

    def full_weeks(self) -> pd.DataFrame:
        """CSM-weeks of ISO weeks lying wholly inside the window (partial weeks at the ends would read low)."""
        week = pd.to_datetime(self.per_csm_week["week"]).dt.date
        inside = (week >= self.start) & (week + dt.timedelta(days=6) <= self.end)
        return self.per_csm_week[inside.to_numpy()]

    def weekly(self) -> dict[str, float]:
        """Median and max alerts per CSM per full week (CSMs with none count as 0), and what the cap held back."""
        counts = self.full_weeks()["alerts"]
        return {"median": float(counts.median()) if len(counts) else 0.0, "max": int(counts.max()) if len(counts) else 0,
                "mean": float(counts.mean()) if len(counts) else 0.0,
                "uncapped_median": float(self.full_weeks()["episodes"].median()) if len(counts) else 0.0,
                "uncapped_max": int(self.full_weeks()["episodes"].max()) if len(counts) else 0,
                "held_back": self._count(owned=True, status="held"),
                "unowned_queued": self._count(owned=False, status="queued"),
                "unowned_held": self._count(owned=False, status="held"),
                "csm_weeks": len(counts), "weeks": int(self.full_weeks()["week"].nunique()),
                "csms": int(self.per_csm_week["csm_owner"].nunique())}


def simulate(source: DataSource, end: dt.date, days: int, settings: Settings,
             snapshots_per_batch: int | None = 8) -> Simulation:
    """What daily runs over the ``days`` ending at ``end`` would have sent, without state or delivery."""
    from features.build import build_features

    rules, inactive = active_rules(load_rules(settings.alerts_rules, thresholds(settings)), usable_tables(source))
    start = end - dt.timedelta(days=days - 1)
    dates = [start + dt.timedelta(days=i) for i in range(-1, days)]  # the day before the window only sets the baseline
    frame = with_signals(build_features(source, dates, settings, snapshots_per_batch=snapshots_per_batch, signals=True),
                         source, settings)
    starts = entering_over(in_condition(rules, frame), dates)
    decided, sent = [], {}
    with_records = open_store(settings)
    try:
        records = with_records.track_records()
    finally:
        with_records.close()
    rates = {k: v["rate"] for k, v in records.items() if v.get("rate") is not None}
    withheld = withheld_rules(rules, records)  # as a real run would: a rule its backtest failed is not sent
    last_start: dict[tuple[str, str], dt.date] = {}
    rearmed = 0
    for day in dates[1:]:
        todays = starts[pd.to_datetime(starts["as_of"]) == pd.Timestamp(day)]
        recent = {k for k, d in last_start.items() if (day - d).days < settings.alerts_rearm_days}
        repeats = not_rearmed(todays, recent)
        rearmed += int(repeats.sum())
        todays = todays.loc[~repeats]
        last_start |= {k: day for k in zip(todays["account_id"].astype(str), todays["rule"].astype(str))}
        if day == week_start(day):
            sent = {}
        now = _at(frame, day)
        d = decide(describe(todays, now, rules, rates, pd.Series([day] * len(todays))), snoozed=set(), routed=None,
                   sent_this_week=sent, cap=settings.alerts_weekly_cap, withheld=set(withheld))
        for csm, n in d[d["status"] == "queued"]["csm_owner"].fillna("").value_counts().items():
            sent[csm] = sent.get(csm, 0) + int(n)
        decided.append(d)
    episodes = pd.concat(decided, ignore_index=True) if decided else pd.DataFrame()
    csms = sorted(set(frame["csm_owner"].dropna().astype(str)))
    weeks = sorted({week_start(d) for d in dates[1:]})
    grid = pd.MultiIndex.from_product([csms, weeks], names=["csm_owner", "week"]).to_frame(index=False)
    if len(episodes):
        owned = episodes[episodes["csm_owner"].notna()].assign(
            week=lambda e: [week_start(d) for d in pd.to_datetime(e["started"]).dt.date], csm_owner=lambda e: e["csm_owner"].astype(str))
        counts = owned.groupby(["csm_owner", "week"]).agg(
            alerts=("status", lambda s: int((s == "queued").sum())), episodes=("status", "size")).reset_index()
        grid = grid.merge(counts, on=["csm_owner", "week"], how="left")
    for col in ("alerts", "episodes"):
        grid[col] = grid.get(col, pd.Series(0, index=grid.index)).fillna(0).astype(int)
    return Simulation(start, end, grid, episodes, inactive, rearmed, withheld)
