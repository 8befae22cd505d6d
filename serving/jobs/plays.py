"""The plays-effect job: stored assignments -> what followed each episode in the data -> each play's effect.

``plays_effect_job`` is the ``expansion plays effect`` command's one call, and the leadership
panel's: the assignments come from the store beside the play log (or a file, e.g. the ones a
generated company was written with), the outcomes from the data folder with the label
definitions (:mod:`features.play_outcomes`), whether the play was done from the play log, and
the effect from :mod:`training.play_effect`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from features.config import Settings
from features.io import DataSource
from serving.jobs.errors import InvalidInput, Say, quiet

EPISODE_COLUMNS = ("account_id", "play", "episode_start", "episode_end", "arm")


def read_assignments(settings: Settings, path: Path | None = None) -> pd.DataFrame:
    """The assignments in the product store (``EXPANSION_STORE_URI``), or in a Parquet/CSV file with ``EPISODE_COLUMNS``."""
    if path is None:
        from serving.play_store import PlayStore

        store = PlayStore(settings)
        try:
            return store.frame()
        finally:
            store.close()
    try:
        frame = pd.read_parquet(path) if path.suffix != ".csv" else pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"assignments {path}: cannot read: {exc}") from exc
    missing = [c for c in EPISODE_COLUMNS if c not in frame.columns]
    if missing:
        raise InvalidInput(f"assignments {path}: column(s) {', '.join(missing)} required")
    return frame


def plays_effect_job(source: DataSource, settings: Settings, *, assignments: pd.DataFrame | None = None,
                     play_log: pd.DataFrame | None = None, say: Say = quiet) -> list:
    """Each play's effect (``training.play_effect.PlayEffect``), oldest assignments first.

    ``assignments`` default: the store's; whether each recommended play was done: their ``done`` column when they
    have one, else the play log (``play_log``, default the pages' ``WebStore.log_frame``).
    Raises InvalidInput when no play was ever assigned.
    """
    from features.play_outcomes import episode_outcomes
    from training.play_effect import done_flags, play_effects

    episodes = read_assignments(settings) if assignments is None else assignments
    if not len(episodes):
        raise InvalidInput("no play assignments yet: run `expansion score` with a holdout share above 0 first")
    if "done" not in episodes.columns:  # a generated company's file says who was treated; else the play log does
        if play_log is None:
            from serving.web.store import WebStore

            store = WebStore(settings)
            try:
                play_log = store.log_frame()
            finally:
                store.close()
        episodes = episodes.assign(done=done_flags(episodes, play_log).to_numpy())
    read = episode_outcomes(source, episodes, settings.play_outcome_days)
    say(f"{len(read):,} episodes of {read['play'].nunique()} play(s); {int(read['expanded'].notna().sum()):,} with "
        f"their {settings.play_outcome_days}-day window closed")
    return play_effects(read, min_per_arm=settings.play_min_per_arm, replicates=settings.bootstrap_replicates)
