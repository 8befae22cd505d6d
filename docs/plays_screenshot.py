"""Regenerate the leadership page's "Which plays work" panel screenshots in ``docs/img`` (``docs/screenshots.py``'s machinery).

One command: ``.venv/bin/python docs/plays_screenshot.py [--out docs/img]`` (about a minute).

A generated company with plays of known effects (``features.synth.plays``; 1,500 accounts,
24 months to 2026-06-30, seed 11, a 30 % holdout so that the effects show on a company this
size; the product's default is 10 %): its assignments go into the store beside the play log,
the episodes its CSMs ran are logged as contacted, its month-end features are the served snapshot, and
the plays-effect job stores its report as the monthly command does. A leader signs in through the form; the panel
is shot at 1440 and 390 px (``play-effects-1440.png``, ``play-effects-390.png``, and
``play-effects.png`` = the 1440 one, for the docs).
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "docs"))

from screenshots import run, shoot_leader_page  # noqa: E402 - the shared machinery, beside this file

AS_OF = dt.date(2026, 6, 30)
NOW = dt.datetime(2026, 7, 1, tzinfo=dt.UTC)


def build(work: Path) -> dict:
    """The company with plays, its assignments in the store, the served snapshot and a leader."""
    import pandas as pd

    from features.build import build_features
    from features.config import Settings
    from features.io import open_data
    from features.play_assignment import Assignment
    from features.synth import PlayEffects, generate
    from serving.cli.users import add_user
    import sqlalchemy as sa

    from serving.store.plays import COLUMNS, PlayStore
    from serving.web.store import WebStore

    data = work / "company"
    generate(data, accounts=1500, months=24, seed=11, as_of=AS_OF, plays=PlayEffects(share=0.3))
    home = work / "home"
    source = open_data(data)
    try:
        frame = build_features(source, [AS_OF], Settings(_env_file=None, home=home), data_end=AS_OF)
    finally:
        source.close()
    snapshot = home / "serving" / "snapshot.parquet"
    snapshot.parent.mkdir(parents=True)
    frame.to_parquet(snapshot)
    episodes = pd.read_parquet(data / "play_assignments.parquet")
    settings = Settings(_env_file=None, home=home)  # the product store under the home, which the pages read
    store = PlayStore(settings)
    try:
        store.save([Assignment(**{**r, "episode_start": r["episode_start"].date(), "episode_end": r["episode_end"].date()})
                    for r in episodes[list(COLUMNS)].to_dict("records")], NOW)
    finally:
        store.close()
    done = episodes[episodes["done"]]  # the generator's CSMs ran these: logged as contacted a week into the episode
    web = WebStore(settings)
    try:
        web.create_tables()
        with web.engine.begin() as conn:
            conn.execute(sa.insert(web.plays), [
                {"account_id": r.account_id, "csm_owner": None, "logged_by": "Casey", "play": r.play,
                 "outcome": "contacted", "note": None,
                 "logged_at": (r.episode_start + pd.Timedelta(days=7)).to_pydatetime().replace(tzinfo=dt.UTC)}
                for r in done.itertuples()])
    finally:
        web.close()
    print(f"{len(episodes):,} play episodes stored, {len(done):,} logged done", flush=True)
    # what the monthly `expansion plays effect` does: measure and store the report the panel reads
    from serving.jobs.plays import plays_effect_job, save_report

    source = open_data(data)
    try:
        report = plays_effect_job(source, settings, save=True, say=lambda m: print(m, flush=True))
    finally:
        source.close()
    print(f"report stored: {save_report(settings, report, AS_OF, NOW)}", flush=True)
    return {"home": home, "data": data, "snapshot": snapshot, "tokens": {"leader": add_user("Lee", "leader", None, settings)}}


def shoot(base: str, world: dict, out: Path) -> list[Path]:
    return shoot_leader_page(base, world["tokens"]["leader"], out, "/ui/leadership", "play-effects", section='section[aria-labelledby="effects"]', timeout_ms=300_000)


def main() -> None:
    run(__doc__.splitlines()[0], build, shoot, "expansion-play-shots-")


if __name__ == "__main__":
    main()
