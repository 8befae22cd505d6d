"""Where scoring gets its models: the current registry's champions, or what ``deploy`` put in the store.

Both places keep one format, the bundle of :mod:`training.bundle` (LightGBM text model
plus a JSON description), so a stored model is read the same way from either and nothing
is unpickled. :class:`serving.scoring.scorer.Scorer` stays pure: this module builds it.

A model is identified by what it is, not by a version number every registry starts at 1:
registered name, version, MLflow run and registry (:class:`training.registry.ModelIdentity`).
With the default source, scoring uses the champions of the registry in force
(``MLFLOW_TRACKING_URI`` or ``<home>/mlflow.db``). The store copy is used when it *is*
that champion (same run, same registry), which saves the download; a stored model that is
not the champion is never used silently. No champion: the baseline, ``model_available``
false. A registry that cannot be reached: the deployed models (or the baseline), and the
choice says so. ``deploy`` writes both champions to the store, then names them in one
deployment file swapped in by rename, so a deploy that dies part-way leaves the previous
deployment whole.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from features.config import ModelSource, Settings, private_folder
from training.names import MODEL_NAMES

log = logging.getLogger(__name__)
STORE_PREFIX = "expansion-scoring-"
BUNDLE_DIR = "bundle"
#: MLflow's HTTP retries unless the caller chose: a registry that is down is said so in seconds (measured:
#: 14 s with one retry against 260 s with MLflow's defaults for a refused connection), then the fallback serves.
REGISTRY_HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}


class RegistryUnavailable(Exception):
    """The MLflow registry could not be asked (server down, store unreadable)."""


def fail_fast_registry(environ: dict[str, str] | Any = os.environ) -> None:
    """Cap MLflow's HTTP retries in ``environ`` where not set (:data:`REGISTRY_HTTP_DEFAULTS`); entry points call it."""
    for name, value in REGISTRY_HTTP_DEFAULTS.items():
        environ.setdefault(name, value)


def store_folder(settings: Settings) -> Path | None:
    """The BentoML model store of this home: ``<home>/bentoml/models``; None defers to ``BENTOML_HOME`` when set."""
    if os.environ.get("BENTOML_HOME"):
        return None
    return settings.home.resolve() / "bentoml" / "models"


def deployment_file(settings: Settings) -> Path:
    """Which stored model each name serves, written last by ``deploy``: ``<home>/serving/deployment.json``."""
    return settings.home.resolve() / "serving" / "deployment.json"


def save_to_store(model: Any, store: Path | None = None) -> str:
    """Put a TrainedModel's bundle into the BentoML model store, with the registry and run it came from; returns the tag."""
    import bentoml

    from serving.scoring.bento_adapter import model_store
    from training.bundle import save_bundle

    identity = {"version": str(model.version), "run_id": model.run_id or "", "registry_uri": model.registry_uri or ""}
    labels = {"model": model.name, "mlflow_version": str(model.version), "mlflow_run_id": model.run_id or "none"}
    with bentoml.models.create(STORE_PREFIX + model.name, labels=labels, metadata=identity,
                               _model_store=model_store(store)) as ref:
        save_bundle(model, Path(ref.path_of(BUNDLE_DIR)))
    return str(ref.tag)


def load_from_store(name: str, store: Path | None = None, tag: str | None = None) -> Any | None:
    """A stored TrainedModel (``tag``, else the newest called ``name``) with its registry and run, or None."""
    import bentoml
    from bentoml.exceptions import NotFound

    from serving.scoring.bento_adapter import model_store
    from training.bundle import load_bundle

    try:
        ref = bentoml.models.get(tag or f"{STORE_PREFIX}{name}:latest", _model_store=model_store(store))
    except NotFound:
        return None
    meta = ref.info.metadata
    return load_bundle(Path(ref.path_of(BUNDLE_DIR)), version=str(meta.get("version", "unregistered")),
                       run_id=meta.get("run_id") or None, registry_uri=meta.get("registry_uri") or None)


def read_deployment(settings: Settings) -> dict[str, str] | None:
    """The deployed tag per model name, or None when ``deploy`` never completed in this home."""
    try:
        return json.loads(deployment_file(settings).read_text())["tags"]
    except (OSError, ValueError, KeyError):
        return None


def deploy_champions(settings: Settings) -> dict[str, Any]:
    """Store the registry's champions and make them the deployment, all or nothing; returns the models by name.

    Each model goes into the store under a new tag first; only then is the deployment
    file replaced (a rename), so a deploy killed part-way leaves the previous deployment
    whole and in use.
    """
    from training.registry import load_champion, require_registry

    require_registry(settings)  # a missing registry file must not deploy "no champion" over the deployment
    store = store_folder(settings)
    champions: dict[str, Any] = {}
    tags: dict[str, str] = {}
    for name in MODEL_NAMES:  # each stored as soon as it is read; none is named until all are stored
        champions[name] = load_champion(name, settings)
        if champions[name] is not None:
            tags[name] = save_to_store(champions[name], store)
    target = deployment_file(settings)
    private_folder(target.parent)
    tmp = target.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"tags": tags}, indent=1))
    os.replace(tmp, target)
    return champions


@dataclass
class ModelChoice:
    """The models scoring will use, where they came from, and why (``note``: a sentence for logs and answers)."""

    expansion: Any | None = None
    churn: Any | None = None
    source: str = "none"
    note: str = "baseline only"
    registry_uri: str | None = None
    #: the registry could not be asked: what serves is a fallback, and a batch job exits with the registry code
    registry_unreachable: bool = False
    #: deployed models this home's store holds, though this choice does not use them (``baseline_over_deployed``)
    deployed: dict[str, Any] = field(default_factory=dict)
    by_name: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        self.by_name = {"expansion": self.expansion, "churn": self.churn}

    @property
    def baseline_over_deployed(self) -> bool:
        """True when a model name would score with the baseline although a deployed model for it exists."""
        return any(self.by_name.get(n) is None and m is not None for n, m in self.deployed.items())

    @property
    def identity(self) -> dict[str, str | None]:
        """Run id per model name (None without a model): two choices are the same models when these match."""
        return {n: (m.run_id if m is not None else None) for n, m in self.by_name.items()}


def _stored(settings: Settings) -> dict[str, Any]:
    """The deployed models of this home by name: the deployment file's tags, the newest when no deploy wrote one."""
    tags, store = read_deployment(settings), store_folder(settings)
    if tags is None:  # a store filled before deployment files existed, or by a built bento
        return {n: load_from_store(n, store) for n in MODEL_NAMES}
    return {n: load_from_store(n, store, tags[n]) if n in tags else None for n in MODEL_NAMES}


def _describe(models: dict[str, Any]) -> str:
    parts = [f"{n} v{m.version} (run {m.run_id or 'unknown'}, registry {m.registry_uri or 'unknown'})"
             for n, m in models.items() if m is not None]
    return ", ".join(parts) or "no model"


def _champions(settings: Settings) -> dict[str, Any]:
    """The champion identity per model name, None where there is none; RegistryUnavailable when it cannot be asked."""
    from training.registry import champion_identity

    try:
        return {n: champion_identity(n, settings) for n in MODEL_NAMES}
    except Exception as exc:  # noqa: BLE001 - any failure to reach the tracking store means "unavailable"
        raise RegistryUnavailable(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from exc


def load_models(settings: Settings, source: ModelSource | str = ModelSource.auto) -> ModelChoice:
    """The models to score with, per ``source``:

    * ``auto`` (default): the current registry's champions; a store copy only when it is that champion;
      the deployed models, said so, when the registry cannot be reached;
    * ``mlflow``: the champions, downloaded; the baseline when the registry cannot be reached;
    * ``store``: the deployed models as they are, naming the registry and runs they came from;
    * ``none``: the baseline.
    """
    from training.registry import public_uri

    source = ModelSource(source)
    registry = public_uri(settings.tracking_uri)
    if source is ModelSource.none:
        return ModelChoice(note="baseline only (models: none)", registry_uri=registry)
    if source is ModelSource.store:
        stored = _stored(settings)
        return ModelChoice(stored["expansion"], stored["churn"], "bentoml_store",
                           f"deployed models from the store: {_describe(stored)}", registry)
    try:
        champions = _champions(settings)
    except RegistryUnavailable as exc:
        return _without_registry(settings, source, registry, exc)
    if not any(champions.values()):
        deployed = {n: m for n, m in _stored(settings).items() if m is not None}
        extra = f"; the store holds deployed models {_describe(deployed)}" if deployed else ""
        return ModelChoice(note=f"no champion in the MLflow registry {registry}: baseline only{extra}",
                           registry_uri=registry, deployed=deployed)
    return _champions_choice(settings, champions, _stored(settings) if source is ModelSource.auto else {}, registry)


def _without_registry(settings: Settings, source: ModelSource, registry: str, exc: Exception) -> ModelChoice:
    """The registry cannot be asked: the deployed models (``auto`` only) or the baseline, saying which and why.

    A SQLite registry file that does not exist in a home that never deployed is a home that
    never trained: the baseline, said so, and not a fault. With deployed models it is a
    registry moved away: unreachable, like a server that is down.
    """
    from training.registry import RegistryMissing

    everything = _stored(settings)
    if isinstance(exc.__cause__, RegistryMissing) and not any(everything.values()):
        return ModelChoice(note=f"no MLflow registry at {registry} and no deployed model (nothing trained in this "
                                "home yet): baseline only", registry_uri=registry)
    stored = everything if source is ModelSource.auto else {}
    found = any(stored.values())
    fallback = f"serving the deployed models {_describe(stored)}" if found else "serving the baseline"
    choice = ModelChoice(stored.get("expansion"), stored.get("churn"), "bentoml_store" if found else "none",
                         f"MLflow registry {registry} unreachable ({exc}); {fallback}", registry,
                         registry_unreachable=True, deployed={} if found else {n: m for n, m in everything.items() if m})
    log.warning(choice.note)
    return choice


def _champions_choice(settings: Settings, champions: dict[str, Any], stored: dict[str, Any], registry: str) -> ModelChoice:
    """The champions: the deployed copy where it is the champion (same run and registry), else the registry's."""
    from training.registry import load_version

    models, stale = {}, []
    for name, who in champions.items():
        kept = stored.get(name)
        if who is None or (kept is not None and (kept.run_id, kept.registry_uri) == (who.run_id, who.registry_uri)):
            models[name] = kept if who is not None else None
            continue
        if kept is not None:
            stale.append(f"the deployed {name} model v{kept.version} (run {kept.run_id or 'unknown'}, registry "
                         f"{kept.registry_uri or 'unknown'}) is not the champion v{who.version} (run {who.run_id}) "
                         f"of {registry}: using the champion; run `expansion deploy` to update the store")
        models[name] = load_version(name, who.version, settings)
    for line in stale:
        log.warning(line)
    all_stored = all(models[n] is stored.get(n) for n in models if models[n] is not None)
    note = f"champions of {registry}: {_describe(models)}" + "".join(f"; {line}" for line in stale)
    return ModelChoice(models["expansion"], models["churn"], "bentoml_store" if all_stored else "mlflow", note, registry)


def scorer_for(choice: ModelChoice, settings: Settings) -> Any:
    """A batch scorer with the chosen models and the uplift models in force (``training.uplift_model``);
    contributions use ``settings.lgbm_threads`` threads."""
    from serving.scoring.scorer import Scorer, feature_specs
    from training.uplift_model import load_uplift

    return Scorer(choice.expansion, choice.churn, feature_specs(), contribution_threads=settings.lgbm_threads,
                  currency_symbol=settings.currency_symbol,
                  quota_alert_pct=settings.quota_alert_pct).with_uplift(load_uplift(settings.home))


def load_scorer(settings: Settings, source: ModelSource | str = ModelSource.auto) -> Any:
    """A batch scorer with the champions ``source`` names; baseline only when there are none.

    Contributions use ``settings.lgbm_threads`` threads (``EXPANSION_LGBM_THREADS``): raise
    it for a batch job that has the machine to itself.
    """
    choice = load_models(settings, source)
    log.info("models: %s", choice.note)
    return scorer_for(choice, settings)
