"""The play a CSM should run next, and its talk track in the account's own figures.

Plays, their premises and talk tracks are declared in :mod:`features.reason_catalog`. The
candidates come from the account's reasons, strongest first (each concept leads to a
play), then its readiness band's play, then the plays of what holds its readiness back,
then nurture; a red account is offered risk plays
first and always gets one. The first candidate whose premise holds in the account's own
numbers, and whose talk track can be filled with known figures, is the play: a CSM is
never sent to an upgrade talk for an account far from its limit.

Churn-side warnings (:data:`features.reason_catalog.CAUTIONS`: usage falling, a failed
payment, a detractor, executive silence) are never hidden behind an opportunity: every one
that holds is the account's ``caution`` line, and an expansion play's talk track opens with
it ("Before you raise the upgrade, ask about the drop in usage ..."). Falling usage or a
failed payment also sends upsell plays to the back of the queue unless the model's churn
risk is low (health green), where the play may lead but with its caution.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from features.reason_catalog import (
    CAUTIONS,
    CURRENCY_SYMBOL,
    BAND_PLAYS,
    LAST_RESORT,
    PLAY_BY_NAME,
    PLAY_FOR_CONCEPT,
    PLAY_FOR_WHITESPACE_PART,
    PLAYS,
    RISK_FALLBACK,
)
from features.conditions import thresholds
from serving.scoring.peers import peers_label
from serving.scoring.reasons import CHURN_RISK, HOLDS_BACK, ReasonItem
from serving.scoring.wording import DAYS_PER_MONTH, duration, money, num, render_text


@dataclass(frozen=True)
class Recommendation:
    """The chosen play, its headline and its talk track."""

    play: str
    headline: str
    talk_track: str
    caution: str | None = None


def candidates(reasons: Sequence[ReasonItem], health: str, band: str, hold_upsell: bool = False) -> list[str]:
    """Plays to try, in order: from the reasons, then the band's play and nurture; risk plays first when red.

    ``hold_upsell``: expansion plays go last (after nurture, which always holds).
    """
    ordered = _candidates(reasons, health, band)
    if hold_upsell:
        ordered = sorted(ordered, key=lambda p: PLAY_BY_NAME[p].effect == "expansion")  # stable
    return ordered


def _candidates(reasons: Sequence[ReasonItem], health: str, band: str) -> list[str]:
    # What holds readiness back (the expansion model's side below its base value) is tried after the
    # band's play: it says why the score is not higher, not what the account needs first.
    primary = [r for r in reasons if not (r.side == HOLDS_BACK and r.effect != CHURN_RISK)]
    secondary = [r for r in reasons if r.side == HOLDS_BACK and r.effect != CHURN_RISK]
    first, then = ([p for p in map(_play_for, rs) if p is not None] for rs in (primary, secondary))
    if health == "red":
        risk = [p.name for p in PLAYS if p.effect == "churn_risk"]
        ordered = [p for p in first + then if PLAY_BY_NAME[p].effect == "churn_risk"] + risk + [RISK_FALLBACK]
    else:
        # a healthy account is not sent a risk play
        def allowed(plays: list[str]) -> list[str]:
            return [p for p in plays if not (health == "green" and PLAY_BY_NAME[p].effect == "churn_risk")]

        ordered = [*allowed(first), BAND_PLAYS.get(band, LAST_RESORT), *allowed(then), LAST_RESORT]
    return list(dict.fromkeys(ordered))


def _play_for(reason: ReasonItem) -> str | None:
    """The play a reason leads to: what lifts readiness leads to an expansion play, what holds it back to
    the play that answers the risk."""
    effect = CHURN_RISK if reason.side == HOLDS_BACK else "expansion"
    if reason.concept == "whitespace":
        return PLAY_FOR_WHITESPACE_PART.get(reason.feature, "expansion_conversation" if effect != CHURN_RISK else None)
    return PLAY_FOR_CONCEPT.get((reason.concept, effect))


def recommend(reasons: Sequence[ReasonItem], facts: Mapping[str, Any], health: str, band: str,
              levels: Mapping[str, float] | None = None,
              held_out: Callable[[str], bool] | None = None) -> Recommendation:
    """The first candidate play whose premise holds in ``facts`` and whose talk track fills in.

    ``held_out(play)`` is asked about that play only (the account is eligible for it): True
    passes over it to the next candidate (the account is in the play's control group,
    :mod:`features.play_assignment`).

    ``facts`` are the account's feature values plus ``readiness_score``, ``health`` and
    (when a model is loaded) ``churn_probability``; ``levels`` the thresholds in force
    (:func:`features.conditions.thresholds` of the settings; the defaults when None).
    """
    levels = thresholds() if levels is None else levels
    facts = {**facts, "health": health}
    fields = talk_track_fields(facts, levels)
    warnings = active_cautions(facts, levels)
    caution = "; ".join(w.line for w in warnings)
    caution = caution[:1].upper() + caution[1:] or None
    hold = any(w.blocks_upsell for w in warnings) and health != "green"
    for name in candidates(reasons, health, band, hold_upsell=hold):
        play = PLAY_BY_NAME[name]
        if not play.premise_holds(facts, levels):
            continue
        track = render_text(play.talk_track, fields)
        if track is not None:
            if held_out is not None and held_out(name):
                continue
            if warnings and play.effect == "expansion":
                track = f"{_before_you_raise(name, warnings)} {track}"
            return Recommendation(name, play.headline, track, caution)
    last = PLAY_BY_NAME[LAST_RESORT]  # its premise always holds; only unknown figures can stop its track
    return Recommendation(LAST_RESORT, last.headline, last.headline, caution)


@dataclass(frozen=True)
class ActiveCaution:
    """One churn-side warning that holds: the caution line, what to ask about, whether it holds upsell back."""

    name: str
    line: str
    ask: str
    blocks_upsell: bool


_RAISE = {"upgrade_conversation": "the upgrade", "seat_expansion": "more seats", "cross_sell": "a new product",
          "expansion_conversation": "expansion"}


def _before_you_raise(play: str, warnings: Sequence[ActiveCaution]) -> str:
    asks = [w.ask for w in warnings]
    joined = asks[0] if len(asks) == 1 else ", ".join(asks[:-1]) + " and " + asks[-1]
    return f"Before you raise {_RAISE.get(play, 'expansion')}, ask about {joined}."


def active_cautions(facts: Mapping[str, Any], levels: Mapping[str, float] | None = None) -> list[ActiveCaution]:
    """The churn-side warnings that hold in the account's own numbers, worded (declared order)."""
    levels = thresholds() if levels is None else levels
    out = []
    for caution in CAUTIONS:
        if not any(all(c.holds(facts, levels) for c in alt) for alt in caution.premise):
            continue
        line, ask = _CAUTION_WORDS[caution.name](facts, levels)
        out.append(ActiveCaution(caution.name, line, ask, caution.blocks_upsell))
    return out


def _usage_falling(facts: Mapping[str, Any], levels: Mapping[str, float]) -> tuple[str, str]:
    trend, slope = _known(facts, "events_trend_30d_pct"), _known(facts, "events_slope_12w_pct")
    if trend is not None and trend <= levels["usage_falling"]:
        fall = f"down {abs(trend):.0f} % on the previous 30 days"
    else:
        fall = f"down {abs(slope or 0):.0f} % a week over the last 12 weeks"
    return f"usage {fall}", f"the drop in usage ({fall})"


def _payment_failed(facts: Mapping[str, Any], levels: Mapping[str, float]) -> tuple[str, str]:
    n = _known(facts, "payment_failures_90d") or 1
    s = "" if n == 1 else "s"
    return f"{num(n)} failed payment{s} in 90 days", f"the failed payment{s}"


def _detractor(facts: Mapping[str, Any], levels: Mapping[str, float]) -> tuple[str, str]:
    nps = _known(facts, "nps_latest")
    said = "a detractor NPS answer" if nps is None else f"latest NPS answer {nps:.0f} of 10 (a detractor)"
    return said, "what lay behind the low NPS answer"


def _executive_silence(facts: Mapping[str, Any], levels: Mapping[str, float]) -> tuple[str, str]:
    days = _known(facts, "days_since_exec_touch") or 0.0
    return f"no executive contact for {duration(days)}", "who the customer's executive sponsor is today"


_CAUTION_WORDS: dict[str, Callable[[Mapping[str, Any], Mapping[str, float]], tuple[str, str]]] = {
    "usage_falling": _usage_falling, "payment_failed": _payment_failed, "detractor": _detractor,
    "executive_silence": _executive_silence,
}


_TRACK_FACTS = (
    "events_30d", "quota_utilization_30d_pct", "whitespace_tier_usd", "seats", "whitespace_usd", "active_users_30d",
    "seat_utilization_pct", "mrr", "arr", "whitespace_products_usd", "products_owned", "readiness_score",
    "days_since_exec_touch", "exec_meetings_180d", "payment_failures_90d", "late_payments_90d",
    "months_to_renewal", "tickets_30d", "urgent_tickets_30d", "outage_tickets_90d")
#: Every account figure a premise or a talk track reads (the scorer passes only these).
FACT_NAMES: tuple[str, ...] = tuple(dict.fromkeys((
    *_TRACK_FACTS, *(c.field for p in PLAYS for alt in p.premise for c in alt),
    *(c.field for w in CAUTIONS for alt in w.premise for c in alt),
    "segment", "nps_latest", "events_trend_30d_pct", "feature_breadth_pct", "churn_probability")))


def _known(facts: Mapping[str, Any], name: str) -> float | None:
    v = facts.get(name)
    if v is None or isinstance(v, str):
        return None
    v = float(v)
    return None if math.isnan(v) else v


class _TrackFields(Mapping[str, Any]):
    """The figures a talk track may name, each worded on first use; None when unknown."""

    def __init__(self, facts: Mapping[str, Any], levels: Mapping[str, float]) -> None:
        self.facts = {**facts, _LEVELS: levels}
        self.known = _Known(facts)

    def __getitem__(self, name: str) -> Any:
        return _FIELDS[name](self.known, self.facts)

    def __iter__(self):  # noqa: ANN204 - Mapping protocol
        return iter(_FIELDS)

    def __len__(self) -> int:
        return len(_FIELDS)


class _Known(dict):
    """A fact as a float, read on first use; None when unknown or not a number."""

    def __init__(self, facts: Mapping[str, Any]) -> None:
        super().__init__()
        self.facts = facts

    def __missing__(self, name: str) -> float | None:
        value = self[name] = _known(self.facts, name)
        return value

    def get(self, name: str, default: Any = None) -> Any:
        return self[name]


def _fmt(value: float | None, how: Callable[[float], str] = num) -> str | None:
    return None if value is None else how(value)


def _money(facts: Mapping[str, Any]) -> Callable[[float], str]:
    """Money in the dataset's currency: ``facts["currency_symbol"]`` (the scorer's setting), else the catalog's."""
    symbol = str(facts.get("currency_symbol") or CURRENCY_SYMBOL)
    return lambda v: money(v, symbol)


def _pct(v: float) -> str:
    return f"{v:.0f}"


def _ratio(a: float | None, b: float | None, scale: float = 1.0) -> float | None:
    return None if a is None or not b else scale * a / b


_LEVELS = "__levels__"  # the thresholds in force, carried beside the facts for the wording

_FIELDS: dict[str, Callable[[dict[str, float | None], Mapping[str, Any]], Any]] = {
    "events_30d": lambda k, f: _fmt(k["events_30d"]),
    "quota_pct": lambda k, f: _fmt(k["quota_utilization_30d_pct"], _pct),
    "event_limit": lambda k, f: _fmt(_ratio(k["events_30d"], k["quota_utilization_30d_pct"], 100.0)),
    "tier_step_per_seat": lambda k, f: _fmt(_ratio(k["whitespace_tier_usd"], k["seats"], 1 / 12) or None, _money(f)),
    "tier_annual": lambda k, f: _fmt(k["whitespace_tier_usd"], _money(f)),
    "seats": lambda k, f: _fmt(k["seats"]),
    "whitespace": lambda k, f: _fmt(k["whitespace_usd"], _money(f)),
    "active_users_30d": lambda k, f: _fmt(k["active_users_30d"]),
    "seat_pct": lambda k, f: _fmt(k["seat_utilization_pct"], _pct),
    "price_per_seat": lambda k, f: _fmt(_ratio(k["mrr"], k["seats"]), _money(f)),
    "peer_accounts": lambda k, f: peers_label(f.get("segment")),
    "products_whitespace": lambda k, f: _fmt(k["whitespace_products_usd"], _money(f)),
    "products_owned": lambda k, f: _fmt(k["products_owned"]),
    "readiness": lambda k, f: _fmt(k["readiness_score"], _pct),
    "whitespace_share_of_arr": lambda k, f: _fmt(_ratio(k["whitespace_usd"], k["arr"], 100.0), _pct),
    "arr": lambda k, f: _fmt(k["arr"], _money(f)),
    "exec_contact": lambda k, f: _exec_contact(k["days_since_exec_touch"], k["exec_meetings_180d"]),
    "exec_meetings_180d": lambda k, f: _fmt(k["exec_meetings_180d"]),
    "payment_facts": lambda k, f: _counted(k, (("payment_failures_90d", "failed payment"),
                                               ("late_payments_90d", "late payment"))),
    "ticket_facts": lambda k, f: _ticket_facts(k, f),
    "renewal": lambda k, f: ("no renewal date is on file" if k["months_to_renewal"] is None
                             else f"the renewal is in {duration(k['months_to_renewal'] * DAYS_PER_MONTH)}"),
    "health": lambda k, f: str(f.get("health") or "") or None,
    "risk_facts": lambda k, f: _risk_facts(f),
    "adoption_facts": lambda k, f: _adoption_facts(f),
}


def talk_track_fields(facts: Mapping[str, Any], levels: Mapping[str, float] | None = None) -> Mapping[str, Any]:
    """Every figure a talk track may name, worded on use; None when unknown (a track naming it is skipped)."""
    return _TrackFields(facts, thresholds() if levels is None else levels)


def _counted(known: Mapping[str, float | None], counts: Sequence[tuple[str, str]]) -> str | None:
    """'2 failed payments and 1 late payment' from the known, non-zero counts (None when there are none)."""
    said = [f"{num(v)} {noun}{'' if v == 1 else 's'}" for name, noun in counts if (v := known.get(name))]
    return " and ".join(said) or None


def _ticket_facts(known: Mapping[str, float | None], facts: Mapping[str, Any]) -> str | None:
    said = []
    if recent := _counted(known, (("tickets_30d", "support ticket"), ("urgent_tickets_30d", "urgent ticket"))):
        said.append(f"{recent} in the last 30 days")
    if outages := _counted(known, (("outage_tickets_90d", "outage ticket"),)):
        said.append(f"{outages} in 90 days")
    if (trend := _known(facts, "tickets_trend_30d_pct")) is not None and trend >= 50:
        said.append(f"tickets up {trend:.0f} % on the previous 30 days")
    text = "; ".join(said)
    return text[0].upper() + text[1:] if text else None


def _exec_contact(days: float | None, meetings_180d: float | None) -> str | None:
    if days is not None:
        return f"The last contact with a customer executive was {duration(days)} ago"
    return None if meetings_180d is None else "No contact with a customer executive within a year"


def _risk_facts(facts: Mapping[str, Any]) -> str:
    said = []
    if (p := _known(facts, "churn_probability")) is not None:
        said.append(f"a {100 * p:.0f} % chance of churning within the next 90 days")
    if (nps := _known(facts, "nps_latest")) is not None and nps <= 6:
        said.append(f"the latest NPS answer was {nps:.0f} of 10")
    if (trend := _known(facts, "events_trend_30d_pct")) is not None and trend <= -5:
        said.append(f"usage is down {abs(trend):.0f} % on the previous 30 days")
    if (renewal := _known(facts, "months_to_renewal")) is not None:
        said.append(f"the renewal is in {duration(renewal * DAYS_PER_MONTH)}")
    return "; ".join(said) or "its warning signs outweigh its strengths"


def _adoption_facts(facts: Mapping[str, Any]) -> str | None:
    """What holds of the adoption play's premise, in words (only the facts that call for it)."""
    levels = facts[_LEVELS]
    breadth, falling, idle = (c for alt in PLAY_BY_NAME["adoption_drive"].premise for c in alt)
    said = []
    if (breadth_pct := _known(facts, "feature_breadth_pct")) is not None and breadth.holds(facts, levels):
        said.append(f"The team uses {breadth_pct:.0f} % of its plan's features")
    if (trend := _known(facts, "events_trend_30d_pct")) is not None and falling.holds(facts, levels):
        said.append(f"usage is down {abs(trend):.0f} % on the previous 30 days")
    if (seats := _known(facts, "seat_utilization_pct")) is not None and idle.holds(facts, levels):
        said.append(f"only {seats:.0f} % of its licensed seats are in use")
    if not said:
        return None
    text = "; ".join(said)
    return text[0].upper() + text[1:]
