"""The uplift models in force: one per expansion play whose uplift ranking earned its place, kept under the home.

When :func:`training.play_uplift.decide` says uplift for a play, the two-model learner is refitted on
every episode of the play with a read outcome and saved as ``<home>/plays/uplift/<play>.json`` (both
LightGBM models as text, the features and category levels). The scoring run loads them
(:func:`load_uplift`) and gives each account recommended such a play its expected gain from it
(``play_uplift``); a play whose decision is readiness has no file, so its accounts keep readiness.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd

from features.play_assignment import RECOMMEND
from training.models import fit_booster, prepare
from training.play_uplift import ROUNDS


def uplift_dir(home: Path) -> Path:
    """Where the uplift models in force are kept."""
    return Path(home) / "plays" / "uplift"


@dataclass(frozen=True)
class UpliftModel:
    """A play's two-model learner: expected outcome if recommended minus if held out."""

    play: str
    features: list[str]
    levels: dict[str, list[str]]
    recommend: lgb.Booster
    hold_out: lgb.Booster

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        x = prepare(frame, self.features, self.levels)
        return self.recommend.predict(x) - self.hold_out.predict(x)

    def as_json(self) -> str:
        return json.dumps({"play": self.play, "features": self.features, "levels": self.levels,
                           "recommend": self.recommend.model_to_string(),
                           "hold_out": self.hold_out.model_to_string()})


def fit_uplift(play: str, episodes: pd.DataFrame, label: str, features: list[str], categorical: list[str],
               rounds: int = ROUNDS) -> UpliftModel:
    """The two-model learner on every episode of ``play`` with ``label`` read (one category levels for both arms)."""
    read = episodes[episodes[label].notna()]
    arms = read["arm"] == RECOMMEND
    boosters = []
    levels: dict[str, list[str]] = {}
    for part in (read[arms], read[~arms]):
        booster, part_levels = fit_booster("uplift", part, label, features, categorical, rounds=rounds)
        boosters.append(booster)
        for k, v in part_levels.items():
            levels[k] = sorted(set(levels.get(k, [])) | set(v))
    return UpliftModel(play, list(features), levels, *boosters)


def save_uplift(home: Path, models: list[UpliftModel]) -> None:
    """Replace the models in force with ``models`` (a play not among them goes back to readiness), all at once."""
    target = uplift_dir(home)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".uplift-", dir=target.parent))
    for m in models:
        (staging / f"{m.play}.json").write_text(m.as_json(), encoding="utf-8")
    old = target.with_name(".uplift-old")
    if target.exists():
        shutil.rmtree(old, ignore_errors=True)
        target.rename(old)
    staging.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def load_uplift(home: Path) -> dict[str, UpliftModel]:
    """The uplift models in force, by play (empty when none earned its place)."""
    out = {}
    for path in sorted(uplift_dir(home).glob("*.json")) if uplift_dir(home).is_dir() else []:
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
            out[d["play"]] = UpliftModel(d["play"], d["features"], d["levels"],
                                         lgb.Booster(model_str=d["recommend"]), lgb.Booster(model_str=d["hold_out"]))
        except (OSError, ValueError, KeyError) as exc:
            raise ValueError(f"uplift model {path}: cannot read: {exc}") from exc
    return out
