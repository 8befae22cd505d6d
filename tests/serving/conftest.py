"""Fixtures for the serving tests: a labelled feature frame with real models, and a real PostgreSQL.

``make_frame`` / ``train_models`` are plain functions (the one definition; benchmarks and
the server test's deploy subprocess import them from this file) and also fixtures of the
same names, which is how the tests use them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import numpy as np
import pandas as pd
import pytest

FEATURES = ["events_trend_30d_pct", "quota_utilization_30d_pct", "feature_breadth_pct", "payment_failures_90d",
            "urgent_tickets_30d", "days_since_exec_touch", "nps_latest", "whitespace_usd", "segment"]


def make_frame(accounts: int = 300, months: int = 12, seed: int = 3) -> pd.DataFrame:
    """Month-end snapshots whose labels follow usage trend, quota use, payment failures and tickets."""
    rng = np.random.default_rng(seed)
    n = accounts * months
    frame = pd.DataFrame({
        "account_id": np.tile([f"acc{i:04d}" for i in range(accounts)], months),
        "as_of": np.repeat(pd.date_range("2024-01-31", periods=months, freq="ME"), accounts),
        "csm_owner": np.tile([f"csm{i % 4}" for i in range(accounts)], months),
        "segment": np.tile(rng.choice(["smb", "mid_market", "enterprise"], accounts), months),
        "events_trend_30d_pct": rng.normal(0, 30, n),
        "quota_utilization_30d_pct": rng.uniform(10, 110, n),
        "feature_breadth_pct": rng.uniform(0, 100, n),
        "payment_failures_90d": rng.poisson(0.3, n).astype(float),
        "urgent_tickets_30d": rng.poisson(0.3, n).astype(float),
        "days_since_exec_touch": rng.uniform(0, 400, n),
        "nps_latest": rng.integers(0, 11, n).astype(float),
        "whitespace_usd": rng.uniform(0, 50_000, n),
    })
    logit_exp = -2.0 + 0.04 * frame["events_trend_30d_pct"] + 0.04 * (frame["quota_utilization_30d_pct"] - 60)
    logit_churn = -2.5 - 0.03 * frame["events_trend_30d_pct"] + 1.0 * frame["payment_failures_90d"] \
        + 0.8 * frame["urgent_tickets_30d"]
    frame["expanded"] = (rng.random(n) < 1 / (1 + np.exp(-logit_exp))).astype(float)
    frame["churned"] = (rng.random(n) < 1 / (1 + np.exp(-logit_churn))).astype(float)
    return frame


def train_models(frame: pd.DataFrame) -> tuple[object, object]:
    """Expansion and churn models fitted on the first two thirds of the snapshots, validated on the rest."""
    from training.models import fit_model

    cut = frame["as_of"].sort_values().unique()[len(frame["as_of"].unique()) * 2 // 3]
    train, valid = frame[frame["as_of"] < cut], frame[frame["as_of"] >= cut]
    models = []
    for name, label in (("expansion", "expanded"), ("churn", "churned")):
        model = fit_model(name, train, valid, label, FEATURES, ["segment"], num_boost_round=60,
                          params={"min_data_in_leaf": 40})
        model.version = "7" if name == "expansion" else "9"
        models.append(model)
    return models[0], models[1]


def register_model(settings: object, model: object, frame: pd.DataFrame, champion: bool = True) -> tuple[str, str]:
    """Log ``model`` into the home's MLflow registry as a new version, alias challenger, and champion when
    ``champion`` (what the gate would decide); returns (version, run id)."""
    import mlflow

    from training.registry import CHALLENGER, configure, log_model, promote, tracking

    with tracking(settings) as experiment, mlflow.start_run(experiment_id=experiment) as run:
        version = log_model(model, frame, model.name)
    configure(settings).set_registered_model_alias(model.name, CHALLENGER, version)
    if champion:
        promote(model.name, version, settings, reason="test")
    return version, run.info.run_id


@pytest.fixture(name="register_model", scope="session")
def register_model_fixture() -> Callable[..., tuple[str, str]]:
    """:func:`register_model`, for tests."""
    return register_model


@pytest.fixture(name="make_frame", scope="session")
def make_frame_fixture() -> Callable[..., pd.DataFrame]:
    """:func:`make_frame`, for tests and fixtures."""
    return make_frame


@pytest.fixture(name="train_models", scope="session")
def train_models_fixture() -> Callable[[pd.DataFrame], tuple[object, object]]:
    """:func:`train_models`, for tests and fixtures."""
    return train_models

FALLBACK_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _answers(url: str) -> bool:
    try:
        import psycopg
    except ImportError:
        return False
    try:
        psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), connect_timeout=3).close()
    except psycopg.Error:
        return False
    return True


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """``EXPANSION_TEST_POSTGRES_URL`` (CI always sets it), else a local server; skip only if nothing answers."""
    url = os.environ.get("EXPANSION_TEST_POSTGRES_URL")
    if url:
        return url  # set explicitly: a server that does not answer is a failure, not a skip
    if not _answers(FALLBACK_POSTGRES_URL):
        pytest.skip("no PostgreSQL: set EXPANSION_TEST_POSTGRES_URL (make test does)")
    return FALLBACK_POSTGRES_URL


@pytest.fixture(params=["sqlite", "postgresql"])
def sql_sink_uri(request: pytest.FixtureRequest, tmp_path) -> Iterator[tuple[str, str]]:  # noqa: ANN001
    """``(uri, table_prefix)`` of an empty CRM database: a SQLite file, or PostgreSQL with tables dropped afterwards."""
    prefix = f"t{uuid.uuid4().hex[:10]}_"
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'crm.db'}", prefix
        return
    url = request.getfixturevalue("postgres_url")
    yield url, prefix
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for table in ("account_scores", "account_score_history"):
            conn.exec_driver_sql(f'DROP TABLE IF EXISTS "{prefix}{table}"')
    engine.dispose()
