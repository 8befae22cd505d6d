"""The ``expansion`` command line: one typer app, one sub-module per area of the product.

Commands import their heavy dependencies lazily so that ``expansion --help`` is instant.
"""

from __future__ import annotations

import typer

from serving import cli_data, cli_demo, cli_features, cli_metrics, cli_score, cli_serve, cli_synth, cli_train

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


# in the order a newcomer meets them
cli_demo.register(app)
cli_synth.register(app)
cli_data.register(app)
cli_metrics.register(app)
cli_features.register(app)
cli_train.register(app)
cli_serve.register(app)
cli_score.register(app)


if __name__ == "__main__":  # pragma: no cover
    app()
