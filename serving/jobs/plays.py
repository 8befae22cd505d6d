"""The plays-effect job: stored assignments -> what followed each episode in the data -> each play's effect.

``plays_effect_job`` is the ``expansion plays effect`` command's one call; the command stores
its report (``save_report``) and the leadership panel reads that (``stored_report``), so no
page request builds features or trains an uplift model. The assignments come from the product store (or a file, e.g. the ones a
generated company was written with), the outcomes from the data folder with the label
definitions (:mod:`features.play_outcomes`), whether the play was done from the play log, the
effect from :mod:`training.play_effect`, and which ranking is in force from
:mod:`training.play_uplift` (uplift only when its Qini gain over readiness is above 0 with
enough outcomes). With ``save``, the uplift models in force are stored under the home
(:mod:`training.uplift_model`) and the next scoring run ranks those plays' accounts by them.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import pandas as pd

from features.config import Settings
from features.io import DataSource
from serving.jobs.errors import InvalidInput, Say, quiet

EPISODE_COLUMNS = ("account_id", "play", "episode_start", "episode_end", "arm")


def read_assignments(settings: Settings, path: Path | None = None) -> pd.DataFrame:
    """The assignments in the product store (``EXPANSION_STORE_URI``), or in a Parquet/CSV file with ``EPISODE_COLUMNS``."""
    if path is None:
        from serving.store.plays import PlayStore

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


def read_episodes(source: DataSource, settings: Settings, *, assignments: pd.DataFrame | None = None,
                  play_log: pd.DataFrame | None = None, say: Say = quiet) -> pd.DataFrame:
    """Every episode with whether the play was done and its outcomes (null while the window is open).

    ``assignments`` default: the store's; whether each recommended play was done: their ``done`` column when they
    have one, else the play log (``play_log``, default the pages' ``WebStore.log_frame``).
    Raises InvalidInput when no play was ever assigned.
    """
    from features.play_outcomes import episode_outcomes
    from training.play_effect import done_flags

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
    return read


class PlaysReport(NamedTuple):
    """Each play's effect (``training.play_effect.PlayEffect``) and which ranking is in force for it."""

    effects: list
    rankings: list


def plays_effect_job(source: DataSource, settings: Settings, *, assignments: pd.DataFrame | None = None,
                     play_log: pd.DataFrame | None = None, say: Say = quiet, save: bool = False) -> PlaysReport:
    """Each play's effect and ranking decision over :func:`read_episodes`; ``save``: store the uplift models in
    force (and drop those of plays back on readiness) for the scoring run."""
    from training.play_effect import play_effects

    read = read_episodes(source, settings, assignments=assignments, play_log=play_log, say=say)
    effects = play_effects(read, min_per_arm=settings.play_min_per_arm, replicates=settings.bootstrap_replicates)
    return PlaysReport(effects, ranking_job(source, settings, read, save=save))


def ranking_job(source: DataSource, settings: Settings, read: pd.DataFrame, *, save: bool = False) -> list:
    """Per play, which ranking of its eligible accounts is in force (``training.play_uplift.RankingDecision``).

    Only expansion plays are judged (readiness ranks accounts by how ready they are to expand); the features are
    built only when some play has enough outcomes to train and test the uplift model.
    """
    from features.play_outcomes import with_features
    from features.registry import categorical_features, feature_names
    from training.baseline import readiness
    from training.play_effect import primary_outcome
    from training.play_uplift import READINESS, UPLIFT, RankingDecision, decide, ranking_decision, split
    from training.uplift_model import fit_uplift, save_uplift

    out, ready = {}, []
    for play, group in read.groupby("play", sort=True):
        if primary_outcome(str(play)) != "expanded":
            out[play] = RankingDecision(str(play), READINESS, "readiness: an uplift ranking is judged only for "
                                                              "expansion plays")
            continue
        counts = split(group, "expanded")[2]
        if min(counts.values()) < settings.play_min_per_arm:
            out[play] = decide(str(play), None, counts, settings.play_min_per_arm)
        else:
            ready.append(play)
    if ready:
        frame = with_features(source, read[read["play"].isin(ready)], settings)
        frame = frame.assign(readiness_score=readiness(frame)["readiness_score"].to_numpy())
        features = [f for f in feature_names() if f in frame.columns]
        for play in ready:
            out[play] = ranking_decision(str(play), frame[frame["play"] == play], "expanded", features,
                                         categorical_features(), "readiness_score",
                                         min_per_arm=settings.play_min_per_arm,
                                         replicates=settings.bootstrap_replicates)
    if save:
        save_uplift(settings.home, [fit_uplift(str(p), frame[frame["play"] == p], "expanded", features,
                                               categorical_features()) for p in ready if out[p].supported == UPLIFT])
    return [out[p] for p in sorted(out)]


# --- the stored report: what the leadership panel shows, written by the job, never computed in a request ---

REPORT_FILE = "effects.json"


def report_path(settings: Settings) -> Path:
    """``<home>/plays/effects.json``: the newest ``expansion plays effect`` report (beside ``plays/uplift/``)."""
    return settings.home / "plays" / REPORT_FILE


def report_rows(report: PlaysReport) -> list[dict]:
    """Each play's effect (``PlayEffect.as_dict``) with the ranking in force and why: one row per play."""
    ranking = {r.play: r for r in report.rankings}
    return [{**e.as_dict(), "ranking": ranking[e.play].supported, "ranking_why": ranking[e.play].why}
            for e in report.effects]


def save_report(settings: Settings, report: PlaysReport, data_end: object, computed_at: object) -> Path:
    """Write the report whole (``serving.sinks.files.atomic_path``): a reader sees the old or the new."""
    import json

    from serving.sinks.files import atomic_path

    path = report_path(settings)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps({"data_end": str(data_end), "computed_at": str(computed_at),
                                   "rows": report_rows(report)}, default=str), encoding="utf-8")
    return path


def stored_report(settings: Settings) -> dict | None:
    """The newest stored report (``data_end``, ``computed_at``, ``rows``), or None when the job has not run in this home.

    Raises ``InvalidInput`` naming the file when it cannot be read."""
    import json

    path = report_path(settings)
    if not path.exists():
        return None
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
        return {"data_end": report["data_end"], "computed_at": report["computed_at"], "rows": list(report["rows"])}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InvalidInput(f"play effects report {path}: cannot read: {exc}") from exc
