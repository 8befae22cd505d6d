"""Where scoring gets its models: the BentoML model store (what ``deploy`` shipped) and the MLflow registry.

Both keep one format, the bundle of :mod:`training.bundle` (LightGBM text model plus a
JSON description), so a stored model is read the same way from either place and nothing
is unpickled. :class:`serving.scoring.Scorer` stays pure: this module builds it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from features.config import ModelSource, Settings
from training.names import MODEL_NAMES

STORE_PREFIX = "expansion-scoring-"
BUNDLE_DIR = "bundle"


def save_to_store(model: Any, store_folder: Path | None = None) -> str:
    """Put a TrainedModel's bundle into the BentoML model store (so a bento carries it); returns the tag."""
    import bentoml

    from serving.bento_adapter import model_store
    from training.bundle import save_bundle

    labels = {"model": model.name, "mlflow_version": str(model.version)}
    with bentoml.models.create(STORE_PREFIX + model.name, labels=labels, metadata={"version": str(model.version)},
                               _model_store=model_store(store_folder)) as ref:
        save_bundle(model, Path(ref.path_of(BUNDLE_DIR)))
    return str(ref.tag)


def load_from_store(name: str, store_folder: Path | None = None) -> Any | None:
    """The newest deployed TrainedModel called ``name`` from the BentoML model store, or None."""
    import bentoml
    from bentoml.exceptions import NotFound

    from serving.bento_adapter import model_store
    from training.bundle import load_bundle

    try:
        ref = bentoml.models.get(f"{STORE_PREFIX}{name}:latest", _model_store=model_store(store_folder))
    except NotFound:
        return None
    return load_bundle(Path(ref.path_of(BUNDLE_DIR)), version=str(ref.info.metadata.get("version", "unregistered")))


def load_models(settings: Settings, source: ModelSource | str = ModelSource.auto) -> tuple[Any | None, Any | None, str]:
    """(expansion, churn, source): from the BentoML store, else the MLflow champions, else none.

    ``source`` forces one origin: ``store``, ``mlflow`` or ``none`` (baseline only).
    """
    source = ModelSource(source)
    if source in (ModelSource.auto, ModelSource.store):
        models = [load_from_store(n) for n in MODEL_NAMES]
        if any(m is not None for m in models) or source is ModelSource.store:
            return models[0], models[1], "bentoml_store"
    if source in (ModelSource.auto, ModelSource.mlflow):
        from training.registry import load_champion

        models = [load_champion(n, settings) for n in MODEL_NAMES]
        if any(m is not None for m in models) or source is ModelSource.mlflow:
            return models[0], models[1], "mlflow"
    return None, None, "none"


def load_scorer(settings: Settings, source: ModelSource | str = ModelSource.auto) -> Any:
    """A batch scorer with the deployed (or registered) champions; baseline only when there are none.

    Contributions use ``settings.lgbm_threads`` threads (``EXPANSION_LGBM_THREADS``): raise
    it for a batch job that has the machine to itself.
    """
    from serving.scoring import Scorer, feature_specs

    expansion, churn, _ = load_models(settings, source)
    return Scorer(expansion, churn, feature_specs(), contribution_threads=settings.lgbm_threads)
