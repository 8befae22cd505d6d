"""One typed settings object for every command.

Reading settings has no side effects: folders are created and tracking URIs are set by
the entry points (``serving.cli``), never on import. The names several layers share
(engines, model sources) are declared here once, free of heavy imports.
"""

from __future__ import annotations

import hashlib
import os
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Engine(StrEnum):
    """Where the one feature definition runs: DuckDB in process, or Spark beyond one machine."""

    duckdb = "duckdb"
    spark = "spark"


class ModelSource(StrEnum):
    """Where scoring takes its models from: the BentoML store, the MLflow registry, the first that has them, or none."""

    auto = "auto"
    store = "store"
    mlflow = "mlflow"
    none = "none"


#: Fewest characters of ``EXPANSION_API_KEY``: 24 random characters are beyond guessing; a short word is not.
API_KEY_MIN_LENGTH = 24


def api_key_problem(key: str | None, insecure: bool) -> str | None:
    """Why the service must not start with ``key`` (a sentence naming the setting and the rule), or None."""
    if not key:
        return None if insecure else ("EXPANSION_API_KEY is not set: set it (at least "
                                      f"{API_KEY_MIN_LENGTH} characters), or start with --insecure for local use only")
    if len(key) < API_KEY_MIN_LENGTH:
        return (f"EXPANSION_API_KEY has {len(key)} character{'s' if len(key) != 1 else ''}; at least {API_KEY_MIN_LENGTH} are required (e.g. "
                "`python -c 'import secrets; print(secrets.token_urlsafe(24))'`)")
    return None


def private_folder(path: Path) -> Path:
    """Make ``path`` (and missing parents) readable by the owner alone (0700) when creating it; returns it."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for folder in reversed(missing):
        folder.mkdir(mode=0o700, exist_ok=True)
    return path


def private_file(path: Path) -> Path:
    """Create ``path`` empty, readable by the owner alone (0600), under a 0700 folder, when it does not exist."""
    private_folder(path.parent)
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    return path


def redact_url(url: str) -> str:
    """A webhook URL safe to print and store: scheme, host and port, then ``…`` and a fingerprint of the whole URL.

    The path and query of a Slack incoming webhook (or most others) are its credential;
    the fingerprint tells two URLs apart and lets delivery find the real one in the routing.
    """
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return f"{parts.scheme}://{host}/…#{hashlib.sha256(url.encode()).hexdigest()[:12]}"


def is_redacted(url: str) -> bool:
    """True for what :func:`redact_url` returns."""
    return "/…#" in url


class Settings(BaseSettings):
    """Paths and knobs, read from ``EXPANSION_*`` environment variables or a ``.env`` file."""

    model_config = SettingsConfigDict(env_prefix="EXPANSION_", env_file=".env", extra="ignore")

    home: Path = Field(Path(".expansion"), description="Folder for state: MLflow store, CRM table, feature snapshots.")
    horizon_days: int = Field(90, ge=1, description="Label horizon H in days from each snapshot.")
    api_feature_pattern: str = Field(
        "api", description="Case-insensitive substring of a feature_key that marks API usage (for api_share_30d)."
    )
    quota_alert_pct: float = Field(80.0, description="Quota utilisation (%) from which a day counts as near the limit.")
    whitespace_cap_multiple: float = Field(
        3.0, gt=0, description="Whitespace is capped at this multiple of the account's current ARR."
    )
    csm_book_top_share: float = Field(
        0.2, gt=0, le=1, description="Share of each CSM's book (at least one account) whose precision is reported."
    )
    promotion_margin: float = Field(
        0.0, ge=0, description="The lower end of the interval of a challenger's ROC-AUC gain must exceed this to promote."
    )
    promotion_confidence: float = Field(
        0.98, gt=0.5, lt=1.0,
        description="Level of the two-sided intervals the promotion gate decides on (reports keep 90 %): the job "
        "decides for two models every month, and 0.98 holds false promotions on a book with nothing to learn to "
        "about one in four years, where 0.90 allows about one a year.",
    )
    gate_min_positives: int = Field(
        30, ge=1, description="Fewest positives in the gate's evidence (the pooled test months, with a shadow's "
        "realised months when there are some) for the promotion gate to decide."
    )
    bootstrap_replicates: int = Field(1000, ge=50, description="Account-level bootstrap replicates behind every interval.")
    backtest_fit_rows: int = Field(
        500_000, ge=1,
        description="Most training rows the pooled backtest's fits may hold in all; above it, consecutive test months "
        "share the fit of the oldest (every month is still tested, by a model no newer than its cut-off allows).",
    )
    mlflow_tracking_uri: str | None = Field(
        None,
        validation_alias="MLFLOW_TRACKING_URI",
        description="Tracking URI; default sqlite:///<home>/mlflow.db.",
    )
    api_key: str | None = Field(
        None, description="Bearer token the scoring service requires (EXPANSION_API_KEY), at least 24 characters."
    )
    max_batch_size: int = Field(1000, ge=1, description="Largest batch the service accepts in one request.")
    snapshot_path: Path | None = Field(
        None, description="Feature snapshot the service looks accounts up in; default <home>/serving/snapshot.parquet."
    )
    feature_snapshots: Path | None = Field(
        None, description="Folder of the stored month-end feature snapshots the history jobs reuse (Parquet, one per "
        "as-of, keyed by the definitions and the raw rows up to it); default <home>/snapshots.",
    )
    rebuild_snapshots: bool = Field(
        False, description="Recompute every feature snapshot a job needs instead of reusing stored ones (and store them "
        "anew); the feature SQL is compiled afresh too.",
    )
    feature_plans: Path | None = Field(
        None, description="Folder of the compiled feature SQL every feature build reuses (one JSON file per definition "
        "and option set, the dates filled in per build); default <snapshot store>/plans.",
    )
    insecure: bool = Field(False, description="Let the service run without an API key (local use only).")
    drain_seconds: float = Field(
        2.0, ge=0, le=15,
        description="On SIGTERM the service keeps answering this long (readiness 503, every answer closing its "
        "connection) before it stops accepting; requests in flight then finish, within the stop's 20 s.",
    )
    model_source: ModelSource = Field(
        ModelSource.auto,
        description="Where the service loads models from: BentoML store, MLflow registry, auto (store, then MLflow) or none.",
    )
    precompute_reasons: bool = Field(
        True, description="Compute every snapshot account's reasons in the background after each snapshot load."
    )
    lgbm_threads: int = Field(1, ge=1, description="LightGBM threads; 1 is fastest on 2 shared cores.")
    training_workers: int = Field(
        2, ge=1, description="Models the monthly job trains at once (threads, each LightGBM on lgbm_threads threads); "
        "2 keeps both cores of a 2-core machine busy.",
    )
    currency_symbol: str = Field(
        "$", min_length=1, max_length=4,
        description="How money is written in reasons and talk tracks (the contract holds one currency per dataset).",
    )
    data_dir: Path | None = Field(
        None, description="Folder of raw contract tables the pages read revenue metrics, usage and opportunities from."
    )
    session_secret: str | None = Field(
        None, description="Not used: the pages' sessions are rows of the product store (EXPANSION_STORE_URI), so restarts "
        "and replicas keep sign-ins without a shared key."
    )
    session_hours: float = Field(12.0, gt=0, description="How long a sign-in to the pages lasts.")
    expansion_target_arr_quarter: float | None = Field(
        None, ge=0, description="Expansion ARR the CS team aims to add per quarter (the leadership page's target)."
    )
    alerts_rules: Path | None = Field(
        None, description="Alert rules TOML file; default: the rules shipped in serving/alerts/rules.toml."
    )
    alerts_routing: Path | None = Field(
        None, description="Alert routing TOML file: channels per csm_owner; default <home>/alerts/routing.toml."
    )
    store_uri: str | None = Field(
        None,
        description="The product's own SQL store (users, sessions, play log, score history the pages read, alert "
        "state, monitoring, forecasts): sqlite:///PATH or postgresql://...; default sqlite:///<home>/state.db. "
        "Separate from the CRM sink (--sink) the CRM reads; replicas of the service share one PostgreSQL store.",
    )
    alerts_store: str | None = Field(
        None, description="SQL store for alert state and outbox; default: the product store (EXPANSION_STORE_URI)."
    )
    alerts_weekly_cap: int = Field(5, ge=1, description="Most alerts one CSM receives per ISO week (highest expected value first).")
    alerts_rearm_days: int = Field(
        30, ge=0, description="An account re-entering a rule's condition within this many days of its last episode's start is not a new episode."
    )
    alerts_on_score: bool = Field(False, description="Also run the alerts after `expansion score` on the same snapshot.")
    alerts_webhook_secret: str | None = Field(
        None, description="HMAC-SHA256 key signing generic JSON webhook bodies (X-Expansion-Signature header)."
    )
    alerts_max_attempts: int = Field(4, ge=1, description="Delivery attempts per message within one run before it waits for the next run.")
    alerts_backoff_seconds: float = Field(1.0, ge=0, description="First retry delay; doubles after each failed attempt.")
    alerts_timeout_seconds: float = Field(10.0, gt=0, description="Timeout of one delivery attempt (HTTP or SMTP).")
    alerts_smtp_host: str = Field("127.0.0.1", description="SMTP relay for email alerts.")
    alerts_smtp_port: int = Field(25, ge=1, le=65535, description="SMTP relay port.")
    alerts_email_from: str = Field("alerts@expansion.local", description="Sender address of email alerts.")
    alerts_lease_seconds: float = Field(
        1800.0, gt=0,
        description="How long an alerts run's lease in the state store lasts without renewal (it renews per message); "
        "a second run meanwhile exits non-zero instead of sending the same episodes; a killed run's lease lapses after it.",
    )
    refresh_seconds: float = Field(
        300.0, ge=0,
        description="How often a running service asks the registry for its champions again (0: only on POST /refresh).",
    )
    opportunity_stages: tuple[str, ...] = Field(
        ("prospecting", "qualification", "needs_analysis", "proposal", "negotiation", "closed_won", "closed_lost"),
        min_length=1,
        description="Stage order of opportunity_stages, earliest first (closing stages last); stages not listed sort after.",
    )
    play_holdout_share: float = Field(
        0.10, ge=0.0, lt=1.0,
        description="Share of accounts eligible for a play held out of it for one episode (its control group); 0 turns the holdout off.")
    play_holdout_shares: dict[str, float] = Field(
        default_factory=dict, description="Per-play holdout share overriding play_holdout_share (play name -> share, 0 turns it off).")
    play_holdout_seed: int = Field(3617, description="Seed of the hash that assigns an eligible account to recommend or hold out.")
    play_episode_days: int = Field(
        90, ge=1, description="Length of a play episode: an assignment holds this many days from the run that drew it.")
    play_outcome_days: int = Field(90, ge=1, description="Window after an episode's start in which its outcome is read.")
    play_min_per_arm: int = Field(
        30, ge=1, description="Fewest accounts in each of recommended and held out before a play's effect is reported.")
    spark_master: str = Field("local[*]", description="Spark master URL for --engine spark.")
    spark_conf: dict[str, str] = Field(default_factory=dict, description="Extra Spark config pairs.")

    @field_validator("play_holdout_shares")
    @classmethod
    def _shares_in_range(cls, shares: dict[str, float]) -> dict[str, float]:
        bad = {k: v for k, v in shares.items() if not 0.0 <= v < 1.0}
        if bad:
            raise ValueError(f"play_holdout_shares: every share must be >= 0 and < 1, got {bad}")
        return shares

    @property
    def tracking_uri(self) -> str:
        """The MLflow tracking URI in force: ``MLFLOW_TRACKING_URI`` or a SQLite file under home."""
        return self.mlflow_tracking_uri or f"sqlite:///{self.home.resolve() / 'mlflow.db'}"

    @property
    def snapshot_file(self) -> Path:
        """The feature snapshot the service reads: ``EXPANSION_SNAPSHOT_PATH`` or ``<home>/serving/snapshot.parquet``."""
        return self.snapshot_path or self.home / "serving" / "snapshot.parquet"

    @property
    def snapshot_store(self) -> Path:
        """The feature snapshot store: ``EXPANSION_FEATURE_SNAPSHOTS`` or ``<home>/snapshots``."""
        return self.feature_snapshots or self.home / "snapshots"

    @property
    def plan_store(self) -> Path:
        """The compiled feature SQL: ``EXPANSION_FEATURE_PLANS`` or ``<snapshot store>/plans``."""
        return self.feature_plans or self.snapshot_store / "plans"

    @property
    def artifact_root(self) -> Path:
        """Where MLflow artifacts go when tracking to the local SQLite store."""
        return self.home.resolve() / "mlartifacts"

    @property
    def state_uri(self) -> str:
        """The product store in force: ``EXPANSION_STORE_URI`` or a SQLite file under home."""
        return self.store_uri or f"sqlite:///{self.home.resolve() / 'state.db'}"

    @property
    def crm_uri(self) -> str:
        """The embedded default CRM sink: a SQLite file under home."""
        return f"sqlite:///{self.home.resolve() / 'crm.db'}"


def get_settings(**overrides: object) -> Settings:
    """Build settings from the environment, with explicit overrides winning."""
    return Settings(**overrides)  # type: ignore[arg-type]
