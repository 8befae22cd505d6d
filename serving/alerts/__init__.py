"""Alerts on leading indicators: rules with a track record, delivered once per episode, capped per CSM.

``rules`` (declared in TOML) -> ``signals`` (beside the registered features) ->
``episodes`` (entering a condition; snooze, routing, weekly cap) -> ``store`` (state and
outbox in the CRM's SQL store) -> ``messages`` and ``channels`` (Slack, JSON webhook,
email, at least once). ``backtest`` gives every rule its track record; ``run`` ties a
live run and the month-long dry run together.
"""
