"""The model bundle: one folder format for a trained model, written by the registry and the BentoML store alike.

``booster.txt`` (LightGBM's text model) and ``model.json`` (features, category levels,
calibrator breakpoints, metrics, data window, expansion size ratios). Reading it needs
no unpickling, so a bundle from any store is safe to load.
"""

from __future__ import annotations

import json
from pathlib import Path

import lightgbm as lgb
import numpy as np

from training.models import Calibrator, TrainedModel

BOOSTER_FILE, META_FILE = "booster.txt", "model.json"


def save_bundle(model: TrainedModel, folder: Path) -> Path:
    """Write the booster and everything needed to rebuild ``model`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    model.booster.save_model(str(folder / BOOSTER_FILE))
    meta = {
        "name": model.name,
        "feature_names": model.feature_names,
        "categorical_features": model.categorical_features,
        "levels": model.levels,
        "calibrator": {"x": model.calibrator.x.tolist(), "y": model.calibrator.y.tolist(),
                       "method": model.calibrator.method},
        "metrics": _finite(model.metrics),
        "baseline_metrics": _finite(model.baseline_metrics),
        "training_window": model.training_window,
        "expansion_size_ratio": model.expansion_size_ratio,
    }
    (folder / META_FILE).write_text(json.dumps(meta, indent=1))
    return folder


def load_bundle(folder: Path, version: str = "unregistered", run_id: str | None = None,
                registry_uri: str | None = None) -> TrainedModel:
    """Rebuild a TrainedModel from a bundle folder written by :func:`save_bundle`, with its registry identity."""
    meta = json.loads((folder / META_FILE).read_text())
    return TrainedModel(
        name=meta["name"],
        booster=lgb.Booster(model_file=str(folder / BOOSTER_FILE)),
        calibrator=Calibrator(np.array(meta["calibrator"]["x"]), np.array(meta["calibrator"]["y"]),
                              meta["calibrator"].get("method", "breakpoints")),
        feature_names=meta["feature_names"],
        categorical_features=meta["categorical_features"],
        levels=meta["levels"],
        version=version,
        metrics=meta["metrics"],
        baseline_metrics=meta["baseline_metrics"],
        training_window=meta["training_window"],
        expansion_size_ratio=meta.get("expansion_size_ratio", {}),
        run_id=run_id,
        registry_uri=registry_uri,
    )


def _finite(values: dict[str, float]) -> dict[str, float | None]:
    return {k: (float(v) if np.isfinite(v) else None) for k, v in values.items()}
