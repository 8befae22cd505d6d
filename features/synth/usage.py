"""Daily usage rows (account x day x feature) inside the observation window.

Each account-month spreads the month's simulated events over the features the account
uses that month, then over days: people work on weekdays, API traffic runs every day.
A feature is used when it is licensed (or trialled from the next tier) and the account's
affinity for it, lifted by health and momentum, clears a threshold, so breadth of
adoption moves with the latent state. Nothing is written outside an active period.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from features.synth.accounts import AccountBlock
from features.synth.catalog import feature_index
from features.synth.lifecycle import History, sigmoid
from features.synth.timeline import Timeline

FEATURES = feature_index()
FEATURE_KEYS = np.array([f for _, _, f in FEATURES])
_PRODUCT = np.array([p for p, _, _ in FEATURES])
_TIER = np.array([t for _, t, _ in FEATURES])
_IS_API = np.array(["api" in f for f in FEATURE_KEYS])
_IS_BASIC = (_PRODUCT == 0) & (_TIER == 0)
POPULARITY = np.where(_IS_BASIC, 2.5, np.where(_PRODUCT == 0, 1.6 - 0.3 * _TIER, 1.4))
EVENT_WEIGHT = np.where(_IS_API, 1.2, np.where(_IS_BASIC, 1.0, np.where(_PRODUCT == 0, 0.6 - 0.2 * _TIER, 0.4)))
DAY_PROB = np.where(_IS_API, 0.85, np.where(_IS_BASIC, 0.92, 0.8))
USER_SHARE = np.where(_IS_API, 0.05, np.where(_IS_BASIC, 0.45, 0.2))
SEGMENT_ACTIVITY = np.array([0.85, 0.95, 1.0])
WEEKEND_FACTOR, API_WEEKEND_FACTOR, TRIAL_WEIGHT = 0.3, 0.8, 0.12


def _features_used(b: AccountBlock, h: History, months: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """[n, months, features] (used, trialled): licensed and adopted, or a gated feature on trial."""
    core = h.core_tier[:, months][..., None]
    addon = h.addon_tier[:, months]  # [n, w, addons]
    addon_for = np.concatenate([core, addon], axis=2)[..., _PRODUCT]  # tier owned of each feature's product
    licensed = (_TIER[None, None, :] <= addon_for) & (addon_for >= 0)
    affinity = rng.normal(0, 1, (b.n, 1, len(FEATURES)))
    lift = 0.5 * h.health[:, months] + 0.3 * h.momentum[:, months]
    adopted = affinity + lift[..., None] + POPULARITY > 0.3
    api_ok = ~_IS_API | h.api_on[:, months][..., None]
    used = licensed & adopted & api_ok & h.active[:, months][..., None]
    gated = (_PRODUCT == 0) & (_TIER == core + 1) & ~_IS_API & (affinity > -0.5)
    trial = gated & (h.trial[:, months] & h.active[:, months])[..., None]
    return used, trial


def usage_table(b: AccountBlock, h: History, timeline: Timeline, rng: np.random.Generator) -> pa.Table:
    """The ``usage_daily`` rows of one block."""
    first = max(timeline.first_window_month - 1, 0)
    months = np.arange(first, timeline.total_months)
    used, trial = _features_used(b, h, months, rng)
    weights = np.where(trial, TRIAL_WEIGHT, EVENT_WEIGHT * used)
    total_w = np.maximum(weights.sum(axis=2, keepdims=True), 1e-9)
    ai, wi, fi = np.nonzero(used | trial)
    t = months[wi]
    lo, hi = timeline.clip_to_window(b.day, ai, t)
    n_days = np.maximum(hi - lo, 0)
    engaged = sigmoid(0.5 + 0.6 * h.health[ai, t]) * SEGMENT_ACTIVITY[b.segment[ai]]
    p_day = np.where(trial[ai, wi, fi], 0.15, DAY_PROB[fi] * engaged)
    weekend = np.where(_IS_API[fi], API_WEEKEND_FACTOR, WEEKEND_FACTOR)
    expected_days = np.maximum(p_day * n_days * (5 + 2 * weekend) / 7, 0.5)
    month_events = h.events[ai, t] * weights[ai, wi, fi] / total_w[ai, wi, 0] * n_days / 30.44
    per_day = month_events / expected_days
    users = h.active_users[ai, t] * np.where(trial[ai, wi, fi], 0.05, USER_SHARE[fi])

    cell = np.repeat(np.arange(len(ai)), n_days)
    offset = np.arange(len(cell)) - np.repeat(np.cumsum(n_days) - n_days, n_days)
    day = lo[cell] + offset
    is_weekend = (day + 3) % 7 >= 5  # 1970-01-01 was a Thursday
    keep = rng.random(len(cell)) < p_day[cell] * np.where(is_weekend, weekend[cell], 1.0)
    cell, day, is_weekend = cell[keep], day[keep], is_weekend[keep]
    noise = np.exp(rng.normal(-0.1, 0.45, len(cell)))
    events = np.maximum(1, np.round(per_day[cell] * noise)).astype(np.int64)
    user_noise = rng.uniform(0.6, 1.3, len(cell)) * np.where(is_weekend, 0.35, 1.0)
    active = np.clip(np.round(users[cell] * user_noise), 1, events).astype(np.int64)
    account_ids = pa.array(b.account_id).take(pa.array(ai[cell]))
    return pa.table(
        {
            "account_id": account_ids.cast(pa.string()),
            "date": pa.array(day.astype("datetime64[D]"), pa.date32()),
            "feature_key": pa.array(FEATURE_KEYS).take(pa.array(fi[cell])).cast(pa.string()),
            "events": pa.array(events, pa.int64()),
            "active_users": pa.array(active, pa.int64()),
        }
    )

