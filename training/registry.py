"""MLflow edge: log training runs, register versions, gate promotion, load the champion, roll back.

Registered models ``expansion`` and ``churn``. Every new version gets alias
``challenger``; it gets ``champion`` only when the promotion gate (``training.gate``)
says so. Promotions record ``previous_champion`` on the promoted version, so a rollback
without a target moves the alias back one step.

A logged model is a pyfunc (calibrated probability out) whose artifacts hold a plain
bundle: ``booster.txt`` (LightGBM text model) and ``model.json`` (features, category
levels, calibrator breakpoints, metrics, data window). ``load_champion`` reads that
bundle directly, which is fast and needs no unpickling.
"""

from __future__ import annotations

import hashlib
import os
import socket
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import lightgbm as lgb
import mlflow
import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from features.config import Settings, private_file, private_folder
from features.processes import pid_alive
from training.backtest import BacktestResult
from training.bundle import load_bundle, save_bundle
from training.evaluate import HEADLINE
from training.gate import GateDecision, ShadowRecord, gate
from training.models import TrainedModel
from training.names import MODEL_NAMES
from training.plots import baseline_comparison, calibration_plot, importance_plot, lift_chart
from training.train import ModelResult

EXPERIMENT = "expansion-scoring"
#: Tags of a run the training job starts: which process on which host, so the next job can tell a run whose
#: process was killed (left RUNNING) from one still going.
JOB_PID, JOB_HOST = "expansion.job_pid", "expansion.job_host"
CHAMPION, CHALLENGER = "champion", "challenger"
BUNDLE = "bundle"
_URI_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


class RegistryError(Exception):
    """A registry operation cannot be done (unknown model or version, nothing to roll back to)."""


class RegistryMissing(RegistryError):
    """The local SQLite registry file is not there: unreachable, never silently replaced by an empty one."""


def sqlite_file(uri: str) -> Path | None:
    """The file of a ``sqlite:///`` tracking URI, None for any other store."""
    return Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None


def registry_exists(settings: Settings) -> bool:
    """False only for a local SQLite registry whose file is not there (a home that never trained, or a moved file)."""
    path = sqlite_file(settings.tracking_uri)
    return path is None or path.is_file()


def require_registry(settings: Settings) -> None:
    """Raise :class:`RegistryMissing` when the SQLite registry file is gone (moved, deleted, a wrong home).

    MLflow would create a fresh, empty store there and every reader would find "no champion":
    the baseline shipped with a green exit code. Only training creates a registry.
    """
    path = sqlite_file(settings.tracking_uri)
    blocked = next((p for p in path.parents if p.exists() and not p.is_dir()), None) if path is not None else None
    if blocked is not None:
        raise RegistryError(f"MLflow registry {public_uri(settings.tracking_uri)}: cannot be read ({blocked} is not "
                            "a folder)")
    if path is not None and not path.is_file():
        raise RegistryMissing(f"MLflow registry {public_uri(settings.tracking_uri)}: the file {path} does not exist "
                              "(moved or deleted?); an empty registry is not created in its place")


def configure(settings: Settings, *, create: bool = True) -> MlflowClient:
    """A client of the registry at ``settings.tracking_uri``, its experiment created on first use.

    Nothing global changes: the fluent API (``mlflow.start_run``) is pointed at the same
    store only inside :func:`tracking`. A local SQLite store gets its folder (0700) made when
    missing and its file made 0600; with ``create=False`` (every reader) a missing file
    raises :class:`RegistryMissing` instead.
    """
    uri = settings.tracking_uri
    path = sqlite_file(uri)
    if path is not None and not create:
        require_registry(settings)
    if path is not None:
        private_file(path)  # the registry is the owner's alone: 0600 under 0700
        if uri.startswith(("sqlite:", "file:")) or "://" not in uri:
            private_folder(settings.artifact_root)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    if client.get_experiment_by_name(EXPERIMENT) is None:
        local = uri.startswith(("sqlite:", "file:")) or "://" not in uri
        location = settings.artifact_root.as_uri() if local else None
        client.create_experiment(EXPERIMENT, artifact_location=location)
    return client


#: One block of ``tracking`` at a time per process (re-entrant: a block may load a version).
_TRACKING_LOCK = threading.RLock()


@contextmanager
def tracking(settings: Settings) -> Iterator[str]:
    """Point MLflow's fluent API at the registry of ``settings`` for the block; yields the experiment id.

    ``mlflow.set_tracking_uri`` also writes ``MLFLOW_TRACKING_URI`` into the environment,
    where the next ``Settings()`` would read it; both are put back as they were afterwards,
    so a caller (a notebook with its own MLflow set-up, the next command) finds them unchanged.
    Blocks are serialised across threads (a service's registry refresh beside a job in one
    process): while one block runs, another thread's cannot repoint its fluent calls at
    another registry ("Run ... not found").
    """
    client = configure(settings)
    with _TRACKING_LOCK:  # the URIs are process-wide: another thread's block would point this one's calls elsewhere
        saved = {name: os.environ.get(name) for name in _URI_VARIABLES}
        before = (mlflow.get_tracking_uri(), mlflow.get_registry_uri())
        mlflow.set_tracking_uri(settings.tracking_uri)
        mlflow.set_registry_uri(settings.tracking_uri)
        try:
            yield client.get_experiment_by_name(EXPERIMENT).experiment_id
        finally:
            mlflow.set_tracking_uri(before[0])
            mlflow.set_registry_uri(before[1])
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def public_uri(uri: str) -> str:
    """A tracking or registry URI safe to show and store: no user, password or query (tokens live there)."""
    parts = urlsplit(uri)
    if not parts.netloc and not parts.query:
        return uri
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


class CalibratedPyfunc(mlflow.pyfunc.PythonModel):
    """Pyfunc face of a bundle: ``predict`` returns the calibrated probability of the positive class."""

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        self.model = load_bundle(Path(context.artifacts[BUNDLE]))

    def predict(self, context: mlflow.pyfunc.PythonModelContext, model_input: pd.DataFrame, params: dict | None = None) -> np.ndarray:
        return self.model.predict_proba(model_input)


def log_model(model: TrainedModel, example: pd.DataFrame, registered_name: str) -> str:
    """Log ``model`` as a pyfunc with signature and input example into the active run; returns the new version."""
    from mlflow.models import infer_signature

    example = example[model.feature_names].head(5).copy()
    for col in model.categorical_features:
        example[col] = example[col].astype(object)
    signature = infer_signature(example, model.predict_proba(example))
    with tempfile.TemporaryDirectory() as tmp:
        bundle = save_bundle(model, Path(tmp) / BUNDLE)
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=CalibratedPyfunc(),
            artifacts={BUNDLE: str(bundle)},
            signature=signature,
            input_example=example,
            pip_requirements=[
                f"mlflow=={mlflow.__version__}",
                f"lightgbm=={lgb.__version__}",
                f"pandas=={pd.__version__}",
                f"numpy=={np.__version__}",
                "expansion-scoring",
            ],
            registered_model_name=registered_name,
        )
    return str(info.registered_model_version)


def champion_version(client: MlflowClient, name: str) -> str | None:
    """The version holding alias ``champion``, or None."""
    try:
        return str(client.get_model_version_by_alias(name, CHAMPION).version)
    except MlflowException:
        return None


def load_version(name: str, version: str, settings: Settings) -> TrainedModel:
    """Rebuild the TrainedModel of one registered version."""
    # a ``models:/`` source resolves through the fluent API's registry, hence ``tracking``
    with tracking(settings), tempfile.TemporaryDirectory() as tmp:
        mv = configure(settings, create=False).get_model_version(name, version)
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=mv.source, dst_path=tmp))
        return load_bundle(local / "artifacts" / BUNDLE, version=str(mv.version), run_id=mv.run_id,
                           registry_uri=public_uri(settings.tracking_uri))


@dataclass(frozen=True)
class ModelIdentity:
    """What a model is, everywhere: registered name, version, the run that logged it, and the registry."""

    name: str
    version: str
    run_id: str | None
    registry_uri: str


def champion_identity(name: str, settings: Settings) -> ModelIdentity | None:
    """Who the champion of ``name`` is, without downloading it; None when the registry has none.

    Raises whatever the tracking store raises when it cannot be reached (:class:`RegistryMissing`
    for a SQLite file that is gone): callers decide.
    """
    client = configure(settings, create=False)
    try:
        mv = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise
    return ModelIdentity(name, str(mv.version), mv.run_id, public_uri(settings.tracking_uri))


def load_champion(name: str, settings: Settings) -> TrainedModel | None:
    """The champion of ``name`` (``expansion`` or ``churn``) as a TrainedModel; None when there is none."""
    client = configure(settings)
    try:
        version = champion_version(client, name)
    except MlflowException:
        return None
    return None if version is None else load_version(name, version, settings)


def promote(name: str, version: str, settings: Settings, *, reason: str = "manual promotion") -> str | None:
    """Give ``version`` the champion alias, recording the previous champion on it; returns the previous version."""
    client = configure(settings, create=False)
    try:
        client.get_model_version(name, version)
    except MlflowException:
        raise RegistryError(f"model {name!r} has no version {version!r}") from None
    previous = champion_version(client, name)
    if previous is not None and previous != str(version):
        client.set_model_version_tag(name, version, "previous_champion", previous)
    client.set_model_version_tag(name, version, "promotion", reason)
    client.set_registered_model_alias(name, CHAMPION, version)
    return previous


def rollback(name: str, settings: Settings, to_version: str | None = None) -> tuple[str, str]:
    """Move ``champion`` back to ``to_version`` or to the version it replaced; returns (from, to)."""
    client = configure(settings, create=False)
    current = champion_version(client, name)
    if current is None:
        raise RegistryError(f"model {name!r} has no champion to roll back")
    if to_version is None:
        to_version = client.get_model_version(name, current).tags.get("previous_champion")
        if to_version is None:
            raise RegistryError(f"model {name!r}: champion v{current} replaced no earlier champion; pass --to-version")
    try:
        client.get_model_version(name, to_version)
    except MlflowException:
        raise RegistryError(f"model {name!r} has no version {to_version!r}") from None
    client.set_registered_model_alias(name, CHAMPION, to_version)
    client.set_model_version_tag(name, to_version, "rolled_back_from", current)
    return current, str(to_version)


def list_versions(settings: Settings, names: tuple[str, ...] = MODEL_NAMES) -> list[dict]:
    """One dict per registered version: name, version, aliases, metrics, baseline_metrics, window, gate."""
    client = configure(settings, create=False)
    out = []
    for name, mv in _versions(client, names):
        run_metrics = client.get_run(mv.run_id).data.metrics if mv.run_id else {}
        out.append({
            "name": name,
            "version": str(mv.version),
            "aliases": sorted(mv.aliases),
            "metrics": _prefixed(run_metrics, "test_"),
            "baseline_metrics": _prefixed(run_metrics, "baseline_test_"),
            "test_window": mv.tags.get("test_window"),
            "gate": mv.tags.get("gate_decision"),
            "gate_reasons": mv.tags.get("gate_reasons"),
            **{k: mv.tags.get(k) for k in GATE_FIGURES},
        })
    return out


def _versions(client: MlflowClient, names: tuple[str, ...]) -> Iterator[tuple[str, object]]:
    """(name, version) for every registered version of ``names``, oldest first; a name never registered has none."""
    for name in names:
        try:
            versions = client.search_model_versions(f"name = '{name}'")
        except MlflowException:
            continue
        for found in sorted(versions, key=lambda v: int(v.version)):
            yield name, client.get_model_version(name, found.version)  # search results omit aliases


GATE_FIGURES = ("gate_positives", "gate_roc_auc", "gate_gain_over_baseline", "gate_gain_over_champion",
                "gate_champion_version")


def _prefixed(run_metrics: dict[str, float], prefix: str) -> dict[str, float]:
    return {k.removeprefix(prefix): v for k, v in run_metrics.items() if k.startswith(prefix) and "__" not in k}


def job_tags(pid: int | None = None) -> dict[str, str]:
    """The tags that mark a run as started by this process (``pid``: another process, for tests)."""
    return {JOB_PID: str(os.getpid() if pid is None else pid), JOB_HOST: socket.gethostname()}


def clean_abandoned(settings: Settings) -> list[str]:
    """What a killed training job left, cleaned up; returns one line per thing done.

    A job run still ``RUNNING`` whose process on this host is gone becomes ``KILLED``; a
    version such a job registered but never gated (no alias, no ``gate_decision``) is
    deleted, so it can never be promoted by hand by mistake. Runs of other hosts, and runs
    whose process still lives, are left alone.
    """
    client = configure(settings)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    done, host = [], socket.gethostname()
    dead_runs: set[str] = set()
    for run in client.search_runs([experiment.experiment_id], "attributes.status = 'RUNNING'"):
        pid = _job_pid_here(run.data.tags, host)
        if pid is None or pid_alive(pid):
            continue
        client.set_terminated(run.info.run_id, "KILLED")
        dead_runs.add(run.info.run_id)
        done.append(f"run {run.info.run_id} ({run.info.run_name}) of a killed job: marked KILLED")
    for name, mv in _versions(client, MODEL_NAMES):
        if mv.aliases or "gate_decision" in mv.tags or not mv.run_id:
            continue
        tags, status = (run := client.get_run(mv.run_id)).data.tags, run.info.status
        live = (pid := _job_pid_here(tags, host)) is not None and pid_alive(pid)
        if JOB_PID not in tags or live or (status == "RUNNING" and mv.run_id not in dead_runs):
            continue
        client.delete_model_version(name, mv.version)
        done.append(f"{name} v{mv.version}: registered by a killed job and never gated: deleted")
    return done


def _job_pid_here(tags: dict[str, str], host: str) -> int | None:
    """The pid of the job that tagged a run (``job_tags``) when it ran on ``host``; None otherwise."""
    pid = tags.get(JOB_PID, "")
    return int(pid) if tags.get(JOB_HOST) == host and pid.isdigit() else None


def feature_hash(features: list[str]) -> str:
    """A short stable hash of the ordered feature list."""
    return hashlib.sha256("\n".join(features).encode()).hexdigest()[:16]


def _log_metrics(result: ModelResult) -> None:
    """Pooled backtest figures: ``test_*`` (model), ``baseline_test_*``, ``gain_*`` with ``_low``/``_high`` interval ends."""
    prefixes = {"model": "test_", "baseline": "baseline_test_", "model - baseline": "gain_"}
    for r in result.comparison.itertuples():
        for suffix, value in (("", r.value), ("_low", r.low), ("_high", r.high)):
            if np.isfinite(value):
                mlflow.log_metric(f"{prefixes[r.scorer]}{r.metric}{suffix}", float(value))
    mlflow.log_metrics({"test_positives": float(result.positives), "test_rows": float(len(result.pooled))})
    for prefix, ev in (("test_", result.pooled_test), ("baseline_test_", result.pooled_baseline)):
        for row in ev.per_segment.to_dict("records"):
            seg = str(row.pop("segment"))
            mlflow.log_metrics({f"{prefix}{k}__{seg}": v for k, v in row.items() if np.isfinite(v)})
    for step, fold in enumerate(result.folds):
        for key in HEADLINE:
            for prefix, ev in (("backtest_", fold.test), ("backtest_baseline_", fold.baseline_test)):
                if np.isfinite(ev.metrics[key]):
                    mlflow.log_metric(f"{prefix}{key}", ev.metrics[key], step=step)


def _log_artifacts(result: ModelResult) -> None:
    model, window = result.model, result.model.training_window
    title = f"{result.name} (pooled {window['test_start']}..{window['test_end']})"
    ev, base = result.pooled_test, result.pooled_baseline
    figures = {
        "lift_chart.png": lift_chart(ev, base, f"lift: {title}"),
        "calibration_curve.png": calibration_plot(ev, base, f"calibration: {title}"),
        "importance_gain.png": importance_plot(model.feature_names, model.booster.feature_importance("gain"), title),
        "baseline_comparison.png": baseline_comparison(ev.metrics, base.metrics, title),
    }
    for fname, fig in figures.items():
        mlflow.log_figure(fig, f"plots/{fname}")
    seg = ev.per_segment.merge(base.per_segment, on="segment", suffixes=("", "_baseline"))
    mlflow.log_text(seg.to_csv(index=False), "tables/per_segment.csv")
    mlflow.log_text(result.comparison.to_csv(index=False), "tables/pooled_intervals.csv")
    mlflow.log_text(result.backtest_table().to_csv(index=False), "tables/backtest.csv")
    mlflow.log_text(model.importance().to_csv(index=False), "tables/importance_gain.csv")
    mlflow.log_dict({"features": model.feature_names, "categorical": model.categorical_features}, "features.json")


def shap_summary(model: TrainedModel, frame: pd.DataFrame, max_rows: int = 2000) -> pd.DataFrame:
    """Mean |pred_contrib| per feature on up to ``max_rows`` rows (SHAP summary in raw-score units)."""
    sample = frame.iloc[:: max(1, len(frame) // max_rows)].head(max_rows)
    contrib = model.contributions(sample).abs().mean()
    return contrib.sort_values(ascending=False).rename("mean_abs_contribution").rename_axis("feature").reset_index()


def register_and_gate(result: ModelResult, settings: Settings, shadow: ShadowRecord | None = None) -> tuple[str, GateDecision]:
    """Log ``result`` as a run, register its refit model as ``challenger`` and promote it if the gate allows.

    The gate (``training.gate``) reads the pooled backtest and re-scores the current
    champion on the pooled rows it never trained on.
    """
    model, window = result.model, result.model.training_window
    champion = load_champion(result.name, settings)
    decision = gate(result, champion, settings, shadow=shadow)
    rows = result.test_rows
    reasons = "; ".join(decision.reasons)
    with tracking(settings) as experiment, mlflow.start_run(experiment_id=experiment, run_name=f"{result.name}-{window['train_end']}",
                                                            tags=job_tags()) as run:
        mlflow.log_params({
            "model": result.name, "label": result.label, "horizon_days": settings.horizon_days,
            **result.params, **window, "n_features": len(model.feature_names),
            "feature_hash": feature_hash(model.feature_names), "calibration": model.calibrator.method,
            "metrics_from": "pooled out-of-time backtest (the shipped model is refit on all labelled rows)",
        })
        _log_metrics(result)
        _log_artifacts(result)
        mlflow.log_text(shap_summary(model, rows).to_csv(index=False), "tables/shap_summary.csv")
        version = log_model(model, rows, result.name)
        mlflow.set_tags({"gate_decision": decision.label, "gate_reasons": reasons,
                         "champion_version": champion.version if champion else "none", **decision.figures})
    client = configure(settings)
    client.set_registered_model_alias(result.name, CHALLENGER, version)
    tags = {"gate_decision": decision.label, "gate_reasons": reasons,
            "test_window": f"{window['test_start']}..{window['test_end']}", **decision.figures}
    for key, value in tags.items():
        client.set_model_version_tag(result.name, version, key, value)
    if decision.promote:
        promote(result.name, version, settings, reason=f"gate ({decision.evidence})")
    model.version, model.run_id, model.registry_uri = version, run.info.run_id, public_uri(settings.tracking_uri)
    return version, decision


def log_drift(drift: pd.DataFrame, settings: Settings) -> None:
    """Record a feature-drift table (``training.drift.feature_drift``) as its own run, next to the training runs."""
    with tracking(settings) as experiment, mlflow.start_run(experiment_id=experiment, run_name="feature-drift"):
        mlflow.log_metrics({f"psi__{r.feature}": float(r.psi) for r in drift.itertuples() if r.psi == r.psi})
        mlflow.log_text(drift.to_csv(index=False), "tables/feature_drift.csv")


def log_backtest(result: BacktestResult, settings: Settings, params: dict[str, object]) -> str:
    """Log a replayed backtest (``training.backtest``) as its own MLflow run; returns the run id."""
    with tracking(settings) as experiment, mlflow.start_run(experiment_id=experiment, run_name="backtest") as run:
        mlflow.log_params({**params, "cutoffs": ",".join(sorted(result.cutoffs["cutoff"].unique()))})
        for r in result.summary.itertuples():
            prefix = {"model": "", "baseline": "baseline_", "model - baseline": "gain_"}.get(
                r.scorer, r.scorer.replace(" - ", "_minus_") + "_")
            for suffix, value in (("", r.value), ("_low", r.low), ("_high", r.high)):
                if np.isfinite(value):
                    mlflow.log_metric(f"{r.model_name}_{prefix}{r.metric}{suffix}", float(value))
        mlflow.log_text(result.summary.to_csv(index=False), "tables/backtest_pooled.csv")
        mlflow.log_text(result.cutoffs.to_csv(index=False), "tables/backtest_cutoffs.csv")
        mlflow.log_text(result.books.to_csv(index=False), "tables/backtest_books.csv")
        return run.info.run_id
