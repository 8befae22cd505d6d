"""The ``expansion`` command line: one typer app, one module per command group.

Each command is a few lines around one function a notebook can call: a job of
``serving.jobs`` (score, forecast, alerts, backtest, monitor), ``training.pipeline.retrain``
or a ``features.*`` function; a job's typed error becomes the exit code in
:mod:`serving.cli.common`, and every other failure goes through :func:`serving.cli.common.fail`. Commands import their heavy dependencies lazily so that
``expansion --help`` is instant.
"""

from __future__ import annotations

import os

import typer

from serving.cli import alerts, backtest, data, demo, features, importer, metrics, score, serve, synth, train
from serving.cli import users
from serving.cli import forecast
from serving.cli import monitor
from serving.cli import plays

app = typer.Typer(
    name="expansion",
    help="Expansion readiness and churn risk scoring for B2B SaaS customer success.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


@app.callback()
def main() -> None:
    """Expansion readiness and churn risk scoring for B2B SaaS customer success."""
    # MLflow's telemetry would try to reach the internet; the entry point is where the environment is set
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


# in the order a newcomer meets them
for group in (demo, synth, importer, data, metrics, features, train, backtest, serve, score, alerts):
    group.register(app)
users.register(app)
forecast.register(app)
monitor.register(app)
plays.register(app)
