"""Jobs: each command's work as one call a notebook can make (beside ``training.pipeline.retrain``).

Every job takes a source (``features.io.DataSource``), settings and an as-of (None: the data
end, ``DataSource.as_of``) plus typed options, and returns a typed result. Jobs print nothing
and never exit: they say what they do through ``say`` (a line at a time) and raise
:class:`serving.jobs.errors.JobError` subclasses carrying the command's exit code; the CLI
(``serving.cli``) is a few lines around each.
"""

from __future__ import annotations

import importlib

# name -> module; imported on first use, so that ``expansion --help`` (which reads the exit codes) stays light
_WHERE = {
    "alerts_job": "alerts", "alerts_simulation_job": "alerts", "alerts_backtest_job": "alerts",
    "delivery_problem": "alerts", "TrackRecord": "alerts",
    "backtest_job": "backtest", "BacktestRun": "backtest",
    "forecast_job": "forecast", "forecast_track_job": "forecast", "forecast_backtest_job": "forecast",
    "monitor_job": "monitor", "MonitorRun": "monitor", "plays_effect_job": "plays",
    "score_job": "score", "ScoreRun": "score", "score_job_on_spark": "score_spark",
    "JobError": "errors", "InvalidInput": "errors", "RegistryError": "errors", "Undelivered": "errors",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str):  # noqa: ANN202 - a job, a result type or an error
    if name not in _WHERE:
        raise AttributeError(f"module serving.jobs has no attribute {name!r}")
    return getattr(importlib.import_module(f"serving.jobs.{_WHERE[name]}"), name)
