"""Engagement features: support tickets, surveys (CSAT, NPS), CRM touches, payments.

Every source table here is optional; when one is absent its features are null. A
timestamp counts at ``as_of`` when it falls on or before that day. A ticket's resolution
time and rating are used only when it was resolved by ``as_of`` (resolution is known
then, not before). Surveys and touches look back at most 365 days, so an account with
no response or touch in a year has null ``nps_latest`` / ``days_since_last_touch``.
"""

from __future__ import annotations

import ibis
from ibis.expr.types import Table

from features.spine import day_number
from features.usage import in_window

LOOKBACK_DAYS = 365
DETRACTOR_MAX_SCORE = 6

TICKET_FEATURES = (
    "tickets_30d", "tickets_90d", "tickets_trend_30d_pct", "urgent_tickets_30d", "bug_tickets_90d",
    "outage_tickets_90d", "feature_request_tickets_90d", "ticket_resolution_hours_90d", "ticket_csat_90d",
)
SURVEY_FEATURES = ("csat_latest", "nps_latest", "nps_change", "nps_detractor")
ACTIVITY_FEATURES = ("exec_meetings_90d", "exec_meetings_180d", "qbrs_180d", "days_since_last_touch",
                     "days_since_exec_touch")
PAYMENT_FEATURES = ("payment_failures_90d", "late_payments_90d")
KEYS = ["account_id", "as_of_day"]


def _whole_seconds(column: ibis.Value) -> ibis.Value:
    # Engines disagree on sub-second parts of epoch seconds (DuckDB keeps them, DataFusion drops them).
    return column.cast("timestamp").epoch_seconds().floor().cast("int64")


def ticket_features(tickets: Table, snap_days: Table) -> Table:
    """Ticket counts by window, priority and category, their trend, resolution hours and CSAT."""
    rows = tickets.mutate(
        day=day_number(tickets.created_at),
        resolved_day=day_number(tickets.resolved_at),
        hours=(_whole_seconds(tickets.resolved_at) - _whole_seconds(tickets.created_at)) / 3600.0,
    )
    j = in_window(rows, snap_days, "day", 90)
    d30, prev30 = j.age < 30, (j.age >= 30) & (j.age < 60)
    resolved = j.resolved_day.notnull() & (j.resolved_day <= j.as_of_day)
    g = j.group_by(KEYS).aggregate(
        tickets_30d=d30.sum().cast("float64"),
        tickets_prev_30d=prev30.sum().cast("float64"),
        tickets_90d=j.count().cast("float64"),
        urgent_tickets_30d=(d30 & (j.priority == "urgent")).sum().cast("float64"),
        bug_tickets_90d=(j.category == "bug").sum().cast("float64"),
        outage_tickets_90d=(j.category == "outage").sum().cast("float64"),
        feature_request_tickets_90d=(j.category == "feature_request").sum().cast("float64"),
        ticket_resolution_hours_90d=j.hours.mean(where=resolved).cast("float64"),
        ticket_csat_90d=j.csat.mean(where=resolved).cast("float64"),
    )
    return g.mutate(
        tickets_trend_30d_pct=ibis.ifelse(
            g.tickets_prev_30d > 0, (g.tickets_30d - g.tickets_prev_30d) / g.tickets_prev_30d * 100.0,
            ibis.null("float64"),
        )
    ).drop("tickets_prev_30d")


def _ranked_responses(surveys: Table, snap_days: Table, kind: str) -> Table:
    rows = surveys.filter(surveys.kind == kind)
    rows = rows.mutate(day=day_number(rows.responded_at), secs=_whole_seconds(rows.responded_at))
    j = in_window(rows, snap_days, "day", LOOKBACK_DAYS)
    order = [ibis.desc(j.secs), ibis.desc(j.score)]
    return j.mutate(rank=ibis.row_number().over(group_by=[j.account_id, j.as_of_day], order_by=order))


def survey_features(surveys: Table, snap_days: Table) -> Table:
    """Latest CSAT and NPS responses within a year, NPS change from the previous response, detractor flag."""
    nps = _ranked_responses(surveys, snap_days, "nps")
    nps_agg = nps.group_by(KEYS).aggregate(
        nps_latest=nps.score.max(where=nps["rank"] == 0).cast("float64"),
        nps_previous=nps.score.max(where=nps["rank"] == 1).cast("float64"),
    )
    nps_agg = nps_agg.select(
        *KEYS,
        "nps_latest",
        nps_change=nps_agg.nps_latest - nps_agg.nps_previous,
        nps_detractor=(nps_agg.nps_latest <= DETRACTOR_MAX_SCORE).cast("float64"),
    )
    csat = _ranked_responses(surveys, snap_days, "csat")
    csat_agg = csat.group_by(KEYS).aggregate(csat_latest=csat.score.max(where=csat["rank"] == 0).cast("float64"))
    return nps_agg.outer_join(csat_agg, KEYS).select(
        account_id=ibis.coalesce(nps_agg.account_id, csat_agg.account_id),
        as_of_day=ibis.coalesce(nps_agg.as_of_day, csat_agg.as_of_day),
        csat_latest=csat_agg.csat_latest,
        nps_latest=nps_agg.nps_latest,
        nps_change=nps_agg.nps_change,
        nps_detractor=nps_agg.nps_detractor,
    )


def activity_features(activities: Table, snap_days: Table) -> Table:
    """Executive meetings and QBRs by window, days since the last touch and the last executive touch."""
    rows = activities.mutate(day=day_number(activities.occurred_at), exec_=activities.with_executive.cast("boolean"))
    j = in_window(rows, snap_days, "day", LOOKBACK_DAYS)
    meeting = j.kind.isin(["meeting", "qbr"]) & j.exec_
    return j.group_by(KEYS).aggregate(
        exec_meetings_90d=(meeting & (j.age < 90)).sum().cast("float64"),
        exec_meetings_180d=(meeting & (j.age < 180)).sum().cast("float64"),
        qbrs_180d=((j.kind == "qbr") & (j.age < 180)).sum().cast("float64"),
        days_since_last_touch=j.age.min().cast("float64"),
        days_since_exec_touch=j.age.min(where=j.exec_).cast("float64"),
    )


def payment_features(payments: Table, snap_days: Table) -> Table:
    """Failed and late invoices falling due in the 90 days to ``as_of``."""
    rows = payments.mutate(day=day_number(payments.due_date))
    j = in_window(rows, snap_days, "day", 90)
    return j.group_by(KEYS).aggregate(
        payment_failures_90d=(j.status == "failed").sum().cast("float64"),
        late_payments_90d=(j.status == "late").sum().cast("float64"),
    )


_COUNTS = {"tickets_30d", "tickets_90d", "urgent_tickets_30d", "bug_tickets_90d", "outage_tickets_90d",
           "feature_request_tickets_90d", "exec_meetings_90d", "exec_meetings_180d", "qbrs_180d",
           "payment_failures_90d", "late_payments_90d"}


def engagement_features(base: Table, tables: dict[str, Table], snap_days: Table) -> Table:
    """All engagement features per spine row; counts are 0 when the table is present but has no rows in the window.

    ``snap_days`` holds the distinct snapshot days (``as_of_day``).
    """
    t = base.select(*KEYS)
    parts = (
        ("support_tickets", ticket_features, TICKET_FEATURES),
        ("surveys", survey_features, SURVEY_FEATURES),
        ("activities", activity_features, ACTIVITY_FEATURES),
        ("payments", payment_features, PAYMENT_FEATURES),
    )
    cols: dict[str, ibis.Value] = {}
    for table, fn, names in parts:
        if table in tables:
            t = t.left_join(fn(tables[table], snap_days), KEYS)
    for table, _, names in parts:
        for name in names:
            if table not in tables:
                cols[name] = ibis.null("float64")
            elif name in _COUNTS:
                cols[name] = t[name].fill_null(0.0)
            else:
                cols[name] = t[name]
    return t.select(*KEYS, **cols)
