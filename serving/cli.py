"""The ``expansion`` command line: one typer app, one sub-module per area of the product.

Commands import their heavy dependencies lazily so that ``expansion --help`` is instant.
"""

from __future__ import annotations

import typer

from serving import cli_data

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


cli_data.register(app)


if __name__ == "__main__":  # pragma: no cover
    app()
