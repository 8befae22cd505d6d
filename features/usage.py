"""Usage features: volume, activity, trend, seat and quota utilisation, API share.

Raw usage (account × day × feature) is first rolled up to one row per account and day,
then joined to the snapshot dates by day range; joining raw rows to snapshots directly
was about five times slower. Windows are half-open on the left: a 30-day window at
``as_of`` covers the days ``(as_of - 30, as_of]``, so rows after ``as_of`` never count.

Active users are only known per feature and day, and users overlap across features, so
an account's daily active users is the largest per-feature count that day (a lower
bound), and ``active_users_30d`` is the largest daily count in the window (a proxy for
monthly active users).
"""

from __future__ import annotations

import datetime as dt

import ibis
from ibis.expr.types import Table

from features.config import Settings
from features.spine import day_number

MAX_WINDOW_DAYS = 90
SLOPE_WEEKS = 12


def usage_between(usage: Table, first: dt.date | None, last: dt.date) -> Table:
    """Raw usage rows dated in ``[first, last]`` (``first`` None: from the start).

    No snapshot reads a row after its ``as_of`` or more than ``MAX_WINDOW_DAYS`` before
    it, so this filter only saves work (a single scoring date reads 90 days, not years).
    """
    day = usage.date.cast("date")
    keep = day <= ibis.literal(last, type="date")
    if first is not None:
        keep = keep & (day >= ibis.literal(first, type="date"))
    return usage.filter(keep)


def daily_usage(usage: Table) -> Table:
    """One row per account and day: ``account_id, day, events, active_users``."""
    rows = usage.mutate(day=day_number(usage.date))
    return rows.group_by(["account_id", "day"]).aggregate(
        events=rows.events.sum().cast("float64"),
        active_users=rows.active_users.max().cast("float64"),
    )


def api_events_30d(used: Table, settings: Settings) -> Table:
    """Events on API feature keys over 30 days, from the per-key 30-day table ``account_id, as_of_day, feature_key, events``."""
    is_api = used.feature_key.lower().contains(settings.api_feature_pattern.lower())
    return used.group_by(["account_id", "as_of_day"]).aggregate(api_events_30d=used.events.sum(where=is_api))


def window_days(snap_days: Table, days: int) -> Table:
    """Every (``as_of_day``, ``age``, ``window_day``) with ``window_day = as_of_day - age`` and ``0 <= age < days``.

    A calendar of at most (snapshots x days) rows: joining rows to it on the day is an
    equality (hash) join, about three times faster than the equivalent range join.
    """
    ages = ibis.memtable({"age": list(range(days))}, schema={"age": "int64"}).mutate(_one=ibis.literal(1))
    snaps = snap_days.select("as_of_day").distinct().mutate(_one_s=ibis.literal(1))
    # An equality join on a constant, not cross_join: DataFusion's planner rejects the cross join here.
    cal = snaps.join(ages, snaps._one_s == ages._one)
    return cal.select("as_of_day", "age", window_day=cal.as_of_day - cal.age)


def in_window(rows: Table, snap_days: Table, day_col: str, days: int) -> Table:
    """Join rows to snapshot days where the row's day lies in ``(as_of_day - days, as_of_day]``; adds ``age`` in days."""
    cal = window_days(snap_days, days)
    joined = rows.join(cal, rows[day_col] == cal.window_day)
    return joined.drop("window_day")


def _pct_change(new: ibis.Value, old: ibis.Value) -> ibis.Value:
    return ibis.ifelse(old > 0, (new - old) / old * 100.0, ibis.null("float64"))


def _windowed_usage(daily: Table, snap_days: Table) -> Table:
    j = in_window(daily, snap_days, "day", MAX_WINDOW_DAYS)
    d30, prev30 = j.age < 30, (j.age >= 30) & (j.age < 60)
    in_slope = j.age < 7 * SLOPE_WEEKS
    week_index = (SLOPE_WEEKS - 1) - (j.age // 7)  # 0 = oldest week, 11 = the week ending at as_of
    return j.group_by(["account_id", "as_of_day"]).aggregate(
        events_7d=j.events.sum(where=j.age < 7),
        events_30d=j.events.sum(where=d30),
        events_90d=j.events.sum(),
        events_prev_30d=j.events.sum(where=prev30),
        active_days_30d=(d30 & (j.events > 0)).sum().cast("float64"),
        active_days_90d=(j.events > 0).sum().cast("float64"),
        active_users_30d=j.active_users.max(where=d30),
        active_users_prev_30d=j.active_users.max(where=prev30),
        active_user_days_30d=j.active_users.sum(where=d30),
        slope_sxy=(j.events * week_index).sum(where=in_slope),
        slope_sy=j.events.sum(where=in_slope),
    )


def _days_near_quota(daily: Table, limits: Table, snap_days: Table, settings: Settings) -> Table:
    """Days in the last 30 whose event count, run at that pace for 30 days, reaches the alert share of the quota.

    A documented proxy for "trailing 30-day events reached 80 % of the monthly limit":
    it needs no per-day trailing window, so it stays one range join on every engine.
    """
    j = in_window(daily, snap_days, "day", 30)
    j = j.join(limits, ["account_id", "as_of_day"])
    threshold = j.usage_limit_total * (settings.quota_alert_pct / 100.0) / 30.0
    near = j.filter(j.events >= threshold)
    return near.group_by(["account_id", "as_of_day"]).aggregate(
        days_over_quota_alert_30d=near.count().cast("float64")
    )


def usage_features(
    daily: Table, used: Table, base: Table, limits: Table, snap_days: Table, settings: Settings
) -> Table:
    """Usage features per spine row.

    ``daily`` is ``daily_usage``; ``used`` is the per-key 30-day table
    (``adoption.feature_use_30d``); ``base`` has ``account_id, as_of_day, seats``;
    ``limits`` has ``usage_limit_total``. ``snap_days`` holds the distinct snapshot days:
    passing the small snapshot table rather than deriving it from ``base`` lets the
    engine size the window joins correctly (deriving it was several times slower).
    """
    w = _windowed_usage(daily, snap_days).left_join(api_events_30d(used, settings), ["account_id", "as_of_day"])
    quota = _days_near_quota(daily, limits.filter(limits.usage_limit_total > 0), snap_days, settings)
    t = base.select("account_id", "as_of_day", "seats").left_join(w, ["account_id", "as_of_day"])
    t = t.left_join(limits, ["account_id", "as_of_day"]).left_join(quota, ["account_id", "as_of_day"])
    zero = ibis.literal(0.0)
    ev30, ev90 = t.events_30d.fill_null(zero), t.events_90d.fill_null(zero)
    au30 = t.active_users_30d.fill_null(zero)
    # Least-squares slope of weekly events on week index 0..11: closed-form sums of x are constants.
    n, sx, sxx = SLOPE_WEEKS, SLOPE_WEEKS * (SLOPE_WEEKS - 1) / 2, sum(i * i for i in range(SLOPE_WEEKS))
    sy = t.slope_sy.fill_null(zero)
    slope = (n * t.slope_sxy.fill_null(zero) - sx * sy) / (n * sxx - sx * sx)
    mean_week = sy / n
    has_limit = t.usage_limit_total.notnull() & (t.usage_limit_total > 0)
    return t.select(
        "account_id",
        "as_of_day",
        events_7d=t.events_7d.fill_null(zero),
        events_30d=ev30,
        events_90d=ev90,
        active_days_30d=t.active_days_30d.fill_null(zero),
        active_days_90d=t.active_days_90d.fill_null(zero),
        active_users_30d=au30,
        dau_mau_30d=ibis.ifelse(au30 > 0, t.active_user_days_30d / 30.0 / au30, ibis.null("float64")),
        events_trend_30d_pct=_pct_change(ev30, t.events_prev_30d.fill_null(zero)),
        events_slope_12w_pct=ibis.ifelse(mean_week > 0, slope / mean_week * 100.0, ibis.null("float64")),
        active_users_trend_30d_pct=_pct_change(au30, t.active_users_prev_30d.fill_null(zero)),
        seat_utilization_pct=ibis.ifelse(t.seats > 0, au30 / t.seats * 100.0, ibis.null("float64")),
        quota_utilization_30d_pct=ibis.ifelse(has_limit, ev30 / t.usage_limit_total * 100.0, ibis.null("float64")),
        days_over_quota_alert_30d=ibis.ifelse(
            has_limit, t.days_over_quota_alert_30d.fill_null(zero), ibis.null("float64")
        ),
        api_share_30d_pct=ibis.ifelse(ev30 > 0, t.api_events_30d / ev30 * 100.0, ibis.null("float64")),
    )


def usage_limits(periods: Table) -> Table:
    """Sum of the monthly event quotas of the subscriptions in force: ``account_id, as_of_day, usage_limit_total`` (null = unlimited)."""
    return periods.group_by(["account_id", "as_of_day"]).aggregate(
        usage_limit_total=periods.usage_limit.sum().cast("float64")
    )
