"""Demo data: ``generate`` writes a synthetic B2B SaaS company that meets the data contract."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress
from rich.table import Table

from serving.cli.common import console, fail, is_interactive, parse_date, settings


def generate(
    out: Annotated[Path, typer.Option("--out", help="Folder to write one Parquet file per table into.")],
    accounts: Annotated[int, typer.Option("--accounts", min=1, help="Accounts that exist at some time in the window.")] = 2000,
    months: Annotated[int, typer.Option("--months", min=1, help="Length of the observation window in months.")] = 24,
    seed: Annotated[int, typer.Option("--seed", help="Random seed; the same seed writes byte-identical files.")] = 7,
    as_of: Annotated[str | None, typer.Option("--as-of", help="Last day of the window (default: today).")] = None,
    raw: Annotated[str | None, typer.Option("--raw", help="Also write the company as raw exports of these tools under OUT/raw/ "
                                                          "(comma-separated: stripe,salesforce,segment).")] = None,
    messy: Annotated[bool, typer.Option("--messy", help="A company as messy as real exports: odd ids, no owner, trials, "
                                                        "pauses, mid-month changes, an outage, bot spikes, a partly "
                                                        "loaded last day, missing and empty optional tables "
                                                        "(every rate: features/synth/messy.py MessyConfig).")] = False,
    plays: Annotated[bool, typer.Option("--plays", help="Plays with known effects (features/synth/plays.py): eligible "
                                                        "accounts held out with the settings' share and seed, the rest "
                                                        "treated with 70 % compliance; writes OUT/play_assignments.parquet "
                                                        "for `expansion plays effect --assignments`.")] = False,
) -> None:
    """Generate a synthetic SaaS company (accounts, subscriptions, usage, tickets, surveys, activities, payments)."""
    from features.synth import MessyConfig
    from features.synth import generate as run

    as_of_date = parse_date(as_of)
    mess = MessyConfig() if messy else None
    if plays and messy:
        fail("--plays and --messy cannot be combined")
    play_effects = None
    if plays:
        from features.synth import PlayEffects

        cfg = settings()
        if cfg.play_holdout_share <= 0:
            fail("--plays needs a holdout: EXPANSION_PLAY_HOLDOUT_SHARE must be above 0")
        play_effects = PlayEffects(share=cfg.play_holdout_share, seed=cfg.play_holdout_seed)
    if is_interactive():
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task(f"generating {accounts:,} accounts", total=None)
            rows = run(out, accounts, months, seed, as_of_date,
                       on_block=lambda done, total: progress.update(task, completed=done, total=total), mess=mess,
                       plays=play_effects)
    else:
        rows = run(out, accounts, months, seed, as_of_date, mess=mess, plays=play_effects)
    summary = Table(title=f"{out} ({months} months to {as_of_date}, seed {seed}{', messy' if messy else ''})")
    summary.add_column("table")
    summary.add_column("rows", justify="right")
    for name, n in rows.items():
        summary.add_row(name, f"{n:,}")
    console.print(summary)
    if mess is not None:
        console.print("messy: " + ", ".join(f"{k}={v}" for k, v in mess.describe()), highlight=False)
    if raw:
        from features.synth.raw_shapes import write_raw

        try:
            folders = write_raw(out, out / "raw", tuple(s.strip() for s in raw.split(",") if s.strip()))
            if mess is not None:
                from features.synth.raw_messy import mess_raw

                mess_raw(out, out / "raw", seed)
        except ValueError as exc:
            fail(str(exc))
        console.print(f"raw exports: {', '.join(str(f) for f in folders.values())}; map: {out / 'raw' / 'import-map.toml'}")


def register(app: typer.Typer) -> None:
    app.command("generate")(generate)
