"""The declared schema of the product's own state: every table of the store, in one MetaData.

| tables | kept by |
|---|---|
| ``web_users``, ``web_sessions``, ``play_log``, ``play_changes``, ``owner_assignments`` | :mod:`serving.web.store` |
| ``play_assignments`` | :mod:`serving.store.plays` |
| ``alert_runs``, ``alert_conditions``, ``alert_episodes``, ``alert_outbox``, ``alert_leases``, ``alert_snoozes``, ``alert_track_record`` | :mod:`serving.alerts.store` |
| ``account_shadow_scores``, ``model_monitoring``, ``model_alarms`` | :mod:`serving.store.monitoring` |
| ``forecasts``, ``forecast_record`` | :mod:`serving.store.forecasts` |
| ``account_score_history`` (the score runs the pages, the API and the monitor read) | :mod:`serving.store.history` |

``account_score_history`` has the CRM row's columns (:data:`serving.sinks.rows.ROW_FIELDS`), the
same table the SQL sink keeps; every other column is declared here once. A prefix (tests) names
a second set of the same tables in one database.
"""

from __future__ import annotations

import functools

import sqlalchemy as sa

from serving.sinks.rows import ROW_FIELDS

_TYPES = {
    "text": sa.Text,
    "date": sa.Date,
    "datetime": lambda: sa.DateTime(timezone=True),
    "probability": sa.Float,
    "points": sa.Float,
    "money": sa.Float,
    "flag": sa.Boolean,
}
HISTORY = "account_score_history"


def row_columns(key: tuple[str, ...]) -> list[sa.Column]:
    """The CRM row's columns (``ROW_FIELDS``), ``key`` the primary key and the rest nullable."""
    return [sa.Column(name, _TYPES[kind](), primary_key=name in key, nullable=name not in key)
            for name, kind in ROW_FIELDS.items()]


def _tz() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _web(md: sa.MetaData, p: str) -> None:
    sa.Table(f"{p}web_users", md, sa.Column("name", sa.Text, primary_key=True),
             sa.Column("role", sa.Text, nullable=False), sa.Column("csm_owner", sa.Text, nullable=True),
             sa.Column("token_sha256", sa.Text, nullable=False, unique=True),
             sa.Column("created_at", _tz(), nullable=False))
    sa.Table(f"{p}play_log", md, sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
             sa.Column("account_id", sa.Text, nullable=False, index=True),
             sa.Column("csm_owner", sa.Text, nullable=True, index=True), sa.Column("logged_by", sa.Text, nullable=False),
             sa.Column("play", sa.Text, nullable=False), sa.Column("outcome", sa.Text, nullable=False),
             sa.Column("note", sa.Text, nullable=True), sa.Column("logged_at", _tz(), nullable=False),
             # the amount won, the reason lost or put off, the date planned (serving.web.store.play_details)
             sa.Column("amount", sa.Float, nullable=True), sa.Column("reason_code", sa.Text, nullable=True),
             sa.Column("planned_for", sa.Date, nullable=True))
    sa.Table(f"{p}play_changes", md, sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
             sa.Column("play_id", sa.Integer, nullable=False, index=True), sa.Column("changed_by", sa.Text, nullable=False),
             sa.Column("changed_at", _tz(), nullable=False), sa.Column("old_outcome", sa.Text, nullable=False),
             sa.Column("new_outcome", sa.Text, nullable=False), sa.Column("old_note", sa.Text, nullable=True),
             sa.Column("new_note", sa.Text, nullable=True))
    sa.Table(f"{p}web_sessions", md, sa.Column("id_sha256", sa.Text, primary_key=True),
             sa.Column("name", sa.Text, nullable=False, index=True), sa.Column("csrf", sa.Text, nullable=False),
             sa.Column("expires_at", sa.Float, nullable=False))
    sa.Table(f"{p}owner_assignments", md, sa.Column("account_id", sa.Text, primary_key=True),
             sa.Column("csm_owner", sa.Text, nullable=False), sa.Column("assigned_by", sa.Text, nullable=False),
             sa.Column("assigned_at", _tz(), nullable=False))


def _plays(md: sa.MetaData, p: str) -> None:
    # one row per (account, play, episode start), inserted once and never re-drawn (features.play_assignment)
    sa.Table(f"{p}play_assignments", md, sa.Column("account_id", sa.Text, primary_key=True),
             sa.Column("play", sa.Text, primary_key=True), sa.Column("episode_start", sa.Date, primary_key=True),
             sa.Column("episode_end", sa.Date, nullable=False, index=True), sa.Column("arm", sa.Text, nullable=False),
             sa.Column("share", sa.Float, nullable=False), sa.Column("seed", sa.BigInteger, nullable=False),
             sa.Column("assigned_at", _tz(), nullable=False))


def _alerts(md: sa.MetaData, p: str) -> None:
    sa.Table(f"{p}alert_runs", md, sa.Column("as_of", sa.Date, primary_key=True), sa.Column("ran_at", _tz()),
             sa.Column("episodes", sa.Integer))
    sa.Table(f"{p}alert_conditions", md, sa.Column("account_id", sa.Text, primary_key=True),
             sa.Column("rule", sa.Text, primary_key=True), sa.Column("since", sa.Date))
    sa.Table(f"{p}alert_episodes", md, sa.Column("episode_id", sa.Text, primary_key=True),
             *[sa.Column(c, sa.Text) for c in ("account_id", "rule")], sa.Column("started", sa.Date),
             *[sa.Column(c, sa.Text) for c in ("csm_owner", "status")], sa.Column("expected_value", sa.Float),
             sa.Column("facts", sa.Text))
    sa.Table(f"{p}alert_outbox", md, sa.Column("message_key", sa.Text, primary_key=True),
             *[sa.Column(c, sa.Text) for c in ("channel", "destination", "csm_owner", "payload", "episode_ids", "status")],
             sa.Column("attempts", sa.Integer), sa.Column("last_error", sa.Text), sa.Column("queued_as_of", sa.Date),
             sa.Column("sent_at", _tz()))
    sa.Table(f"{p}alert_leases", md, sa.Column("name", sa.Text, primary_key=True), sa.Column("holder", sa.Text),
             sa.Column("expires_at", _tz()))
    sa.Table(f"{p}alert_snoozes", md, sa.Column("account_id", sa.Text, primary_key=True),
             sa.Column("rule", sa.Text, primary_key=True), sa.Column("until", sa.Date))
    sa.Table(f"{p}alert_track_record", md, sa.Column("rule", sa.Text, primary_key=True), sa.Column("outcome", sa.Text),
             *[sa.Column(c, sa.Float) for c in ("episodes", "positives", "rate", "rate_low", "rate_high", "base_rate",
                                                "lift", "lift_low", "lift_high", "arr_at_fire", "outcome_arr")],
             sa.Column("computed_at", _tz()))


def _monitoring(md: sa.MetaData, p: str) -> None:
    sa.Table(f"{p}account_shadow_scores", md,
             *[sa.Column(c, sa.Text, primary_key=True) for c in ("account_id", "run_id", "model_name")],
             sa.Column("as_of", sa.Date, nullable=False), sa.Column("version", sa.Text, nullable=False),
             sa.Column("probability", sa.Float))
    sa.Table(f"{p}model_monitoring", md,
             *[sa.Column(c, sa.Text, primary_key=True) for c in ("month", "model_name", "segment", "scorer", "metric")],
             *[sa.Column(c, sa.Float) for c in ("value", "low", "high", "positives", "rows")],
             sa.Column("version", sa.Text), sa.Column("computed_at", _tz()))
    sa.Table(f"{p}model_alarms", md, sa.Column("key", sa.Text, primary_key=True),
             *[sa.Column(c, sa.Text) for c in ("model_name", "kind", "message", "sent_to")], sa.Column("sent_at", _tz()))


def _forecasts(md: sa.MetaData, p: str) -> None:
    sa.Table(f"{p}forecasts", md, *[sa.Column(c, sa.Text, primary_key=True) for c in ("run_id", "group_name", "measure")],
             sa.Column("as_of", sa.Date, nullable=False), sa.Column("horizon_days", sa.Integer, nullable=False),
             *[sa.Column(c, sa.Float) for c in ("forecast", "low80", "high80", "low95", "high95", "starting_arr",
                                                "draw_sd")],
             sa.Column("models", sa.Text), sa.Column("stored_at", _tz()),
             # which forecast serves (training.forecast_choice), its past error and footing; the model's own point
             sa.Column("method", sa.Text), sa.Column("past_error_pts", sa.Float), sa.Column("past_cutoffs", sa.Integer),
             sa.Column("bias_pts", sa.Float), sa.Column("interval_basis", sa.Text), sa.Column("model_forecast", sa.Float))
    sa.Table(f"{p}forecast_record", md, sa.Column("horizon_days", sa.Integer, primary_key=True),
             sa.Column("cutoff", sa.Date, primary_key=True),
             *[sa.Column(c, sa.Text, primary_key=True) for c in ("group_name", "measure", "method")],
             *[sa.Column(c, sa.Float) for c in ("forecast", "actual", "starting_arr")], sa.Column("stored_at", _tz()))


@functools.cache
def state_metadata(prefix: str = "") -> sa.MetaData:
    """Every table of the product's state, each name prefixed with ``prefix``."""
    md = sa.MetaData()
    for declare in (_web, _plays, _alerts, _monitoring, _forecasts):
        declare(md, prefix)
    sa.Table(f"{prefix}{HISTORY}", md, *row_columns(("account_id", "run_id")))
    return md


#: The tables' names without a prefix, in declaration order.
STATE_TABLES: tuple[str, ...] = tuple(state_metadata().tables)
