"""Why the nightly score builds its snapshot afresh rather than from yesterday's snapshot plus one day.

A windowed feature rolls forward by one day at best when it is a sum *and* both the
day entering and the day leaving the window are read: ``events_30d(t) = events_30d(t-1)
+ events(t) - events(t-30)``. Yesterday's row plus day ``t`` alone is never enough for a
windowed feature, and some are not sums at all: a window's largest daily count or its
distinct feature keys can leave with the day that drops out, so they need every day of
the window again. ``tests/features/test_nightly.py`` shows such a case on generated data.
The score job prints :func:`nightly_note`.
"""

from __future__ import annotations

import datetime as dt

from features.registry import FEATURES, full_window_days

# Window maxima and distinct counts, and the features computed from them: not sums, so no
# day-by-day update exists (the value leaving the window may have been the largest, or the only use of a key).
WHOLE_WINDOW = {
    "active_users_30d": "largest daily count",
    "active_users_trend_30d_pct": "largest daily counts",
    "dau_mau_30d": "divides by the largest daily count",
    "seat_utilization_pct": "largest daily count",
    "features_used_30d": "distinct keys",
    "features_new_30d": "distinct keys first used",
    "feature_breadth_pct": "distinct keys",
    "days_over_quota_alert_30d": "counts days against the quota in force at the day",
}


def rolling_blockers() -> dict[str, str]:
    """Each model feature that yesterday's row plus one day of raw data cannot give, with why."""
    out = {}
    for spec in FEATURES:
        if spec.name in WHOLE_WINDOW:
            out[spec.name] = f"{WHOLE_WINDOW[spec.name]} over the {spec.window} window: every day of it is needed again"
        elif full_window_days(spec) is not None:
            out[spec.name] = f"measured over {spec.window}: also needs the day leaving the window, not only the new day"
    return out


def nightly_note(day: dt.date) -> str:
    """One line for the score job: the snapshot at ``day`` is built afresh, and why yesterday's is not reused."""
    blockers = rolling_blockers()
    whole = [name for name in blockers if name in WHOLE_WINDOW]
    return (f"features: built afresh for {day}, not from yesterday's snapshot plus one day: {len(blockers)} of "
            f"{len(FEATURES)} features cannot be rolled forward that way ({len(whole)} need their whole window again, "
            f"e.g. {', '.join(whole[:3])}; the other {len(blockers) - len(whole)} windowed features also need the day "
            "leaving each window)")
