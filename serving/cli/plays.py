"""``expansion plays effect``: what each play caused, recommended against held-out accounts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from serving.cli.common import console, job_errors, open_source, say, settings
from serving.web.formats import pct  # a rate with no closed outcome window (NaN) reads "–", as on the pages

plays_app = typer.Typer(help="Which plays work: each play's effect against its held-out control group.",
                        no_args_is_help=True)


@plays_app.command("effect")
def effect(
    data: Annotated[str, typer.Option("--data", help="Folder with the company's tables (the outcomes are read there).")],
    assignments: Annotated[Path | None, typer.Option("--assignments", help="A Parquet/CSV file of assignments instead "
                                                     "of the store's (e.g. a generated company's play_assignments).")] = None,
) -> None:
    """Per play: outcome rate and expansion MRR, recommended minus held out, with 90 % intervals and counts."""
    import datetime as dt

    from serving.jobs.plays import plays_effect_job, read_assignments, save_report

    cfg = settings()
    source = open_source(data)
    try:
        with job_errors():
            frame = read_assignments(cfg, assignments) if assignments is not None else None
            report = plays_effect_job(source, cfg, assignments=frame, say=say, save=True)
            data_end = source.data_end().day
    finally:
        source.close()
    path = save_report(cfg, report, data_end, dt.datetime.now(dt.UTC).replace(microsecond=0))
    say(f"stored for the leadership page: {path}")
    print_effects(report.effects)
    for r in report.rankings:
        console.print(f"{r.play}: ranking in force: {r.why}", highlight=False)



def renewal_line(r) -> str:
    """The renewal rate difference (recommended minus held out) over the episodes whose renewal fell due."""
    from training.play_effect import TOO_EARLY

    if r is None:
        return "renewal not read"
    effect = (f"{100 * r.effect.value:+.1f} points [{100 * r.effect.low:+.1f}, {100 * r.effect.high:+.1f}]"
              if r.effect is not None else TOO_EARLY)
    return f"renewed {effect}, over {r.recommended:,} recommended / {r.held_out:,} held-out episodes with a renewal due"


def print_effects(effects: list) -> None:
    table = Table(title="play effects (recommended minus held out, intention to treat; 90 % intervals)")
    for col in ("play", "outcome", "recommended / held out", "rate rec. / held", "effect (points)",
                "expansion MRR per account", "logged done"):
        table.add_column(col, justify="left" if col in ("play", "outcome") else "right", overflow="fold")
    for e in effects:
        if e.effect is None:
            points = mrr = e.status
        else:
            points = f"{100 * e.effect.value:+.1f} [{100 * e.effect.low:+.1f}, {100 * e.effect.high:+.1f}]"
            mrr = f"{e.mrr_effect.value:+,.0f} [{e.mrr_effect.low:+,.0f}, {e.mrr_effect.high:+,.0f}]"
        done = "-" if e.done_share != e.done_share else f"{100 * e.done_share:.0f} %"
        table.add_row(e.play, e.outcome, f"{e.recommended:,} / {e.held_out:,}",
                      f"{pct(100 * e.rate_recommended, 1)} / {pct(100 * e.rate_held_out, 1)}", points, mrr, done)
    console.print(table)
    for e in effects:
        console.print(f"{e.play}: {e.power}", highlight=False)
    for e in effects:
        console.print(f"{e.play}: {renewal_line(e.renewal)}", highlight=False)
    console.print("An effect is read only between recommended and held-out accounts: comparing accounts where the "
                  "play was done with those where it was not mixes the play with why a CSM chose those accounts.",
                  highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(plays_app, name="plays")
