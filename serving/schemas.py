"""HTTP request and response models of the scoring service.

Every request model forbids unknown fields so that a typo (``acount_id``) is a 400 that
names the field, not a silently ignored key. Batch sizes are checked against
``Settings.max_batch_size`` by the service, because the limit is a runtime setting.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

FeatureValue = float | int | str | bool | None
OrderBy = Literal["expected_expansion_usd", "expansion_probability", "churn_probability"]
AccountId = Field(min_length=1, max_length=200, description="The account's id in the canonical `accounts` table.")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AccountInput(_Strict):
    """One account to score: by id (features from the newest snapshot) or with its own feature values."""

    account_id: str = AccountId
    features: dict[str, FeatureValue] | None = Field(
        None,
        description="Feature values by registry name; when given, the snapshot is not consulted. "
        "Features left out are unknown (null).",
    )


class ScoreRequest(_Strict):
    """Score a batch of accounts."""

    accounts: list[AccountInput] = Field(min_length=1, description="Accounts to score (1 to max_batch_size).")
    with_reasons: bool = Field(True, description="Return drivers and a recommended play per account.")


class BaselineRequest(_Strict):
    """Baseline scores for a batch of accounts."""

    accounts: list[AccountInput] = Field(min_length=1, description="Accounts to score (1 to max_batch_size).")


class RankRequest(_Strict):
    """Rank a CSM's book, or a list of accounts, by expected value or risk."""

    csm_owner: str | None = Field(None, min_length=1, max_length=200, description="CSM whose accounts to rank.")
    account_ids: list[str] | None = Field(None, min_length=1, description="Accounts to rank instead of a CSM's book.")
    order_by: OrderBy = Field("expected_expansion_usd", description="Ranking key, highest first.")
    limit: int = Field(20, ge=1, description="Largest number of accounts returned (at most max_batch_size).")

    @model_validator(mode="after")
    def _one_selector(self) -> RankRequest:
        if (self.csm_owner is None) == (self.account_ids is None):
            raise ValueError("give exactly one of csm_owner or account_ids")
        return self


class EmptyRequest(_Strict):
    """No body fields."""


class Reason(BaseModel):
    """One driver of a score, readable by a CSM."""

    text: str = Field(description="Readable sentence, e.g. 'Usage at 86 % of plan limit (30 days)'.")
    feature: str = Field(description="Registry name of the feature behind the reason.")
    effect: Literal["expansion", "churn_risk"] = Field(description="Which outcome the driver pushes towards.")
    contribution: float | None = Field(description="LightGBM contribution in raw-score units; null for rule reasons.")


class AccountScore(BaseModel):
    """Everything the scorer says about one account."""

    account_id: str
    as_of: str | None = Field(description="Snapshot date of the features (ISO), null for supplied features.")
    expansion_probability: float | None = Field(description="Calibrated probability of expanding within the horizon.")
    churn_probability: float | None = Field(description="Calibrated probability of churning within the horizon.")
    readiness_score: float = Field(ge=0, le=100)
    readiness_band: Literal["outreach", "nurture", "adoption"]
    health: Literal["green", "yellow", "red"]
    reasons: list[Reason]
    recommended_play: str | None
    recommended_play_text: str | None
    whitespace_usd: float | None
    expected_expansion_usd: float | None
    baseline_score: float = Field(ge=0, le=100)
    baseline_band: Literal["outreach", "nurture", "adoption"]
    baseline_health: Literal["green", "yellow", "red"]
    model_versions: dict[str, str | None]


class ItemError(BaseModel):
    """Why one account of a batch was not scored."""

    account_id: str
    field: str
    error: str


class ScoreResponse(BaseModel):
    """Scores of the accounts that could be scored, and per-item errors for the others."""

    model_available: bool
    snapshot_as_of: str | None
    results: list[AccountScore]
    errors: list[ItemError]


class RankResponse(BaseModel):
    """A ranked list of accounts, highest first."""

    model_available: bool
    snapshot_as_of: str | None
    order_by: str = Field(description="Key actually used; baseline keys when no model is available.")
    total_accounts: int = Field(description="Accounts in the selection before the limit.")
    results: list[AccountScore]
    errors: list[ItemError]


class BaselineScore(BaseModel):
    """The rule-based scores of one account."""

    account_id: str
    baseline_score: float = Field(ge=0, le=100)
    baseline_band: Literal["outreach", "nurture", "adoption"]
    baseline_health: Literal["green", "yellow", "red"]


class BaselineResponse(BaseModel):
    """Rule-based readiness and health only."""

    model_available: bool
    snapshot_as_of: str | None
    results: list[BaselineScore]
    errors: list[ItemError]


class ModelInfo(BaseModel):
    """What is known about one deployed model."""

    name: str
    version: str | None
    source: str = Field(description="bentoml_store, mlflow or none.")
    training_window: dict[str, str | None]
    metrics: dict[str, float | None]
    baseline_metrics: dict[str, float | None]


class MetadataResponse(BaseModel):
    """Models, snapshot and limits in force."""

    model_available: bool
    models: list[ModelInfo]
    snapshot_as_of: str | None
    snapshot_path: str | None
    snapshot_accounts: int
    max_batch_size: int
    readiness_method: str


class RefreshResponse(BaseModel):
    """State of the feature snapshot after a refresh."""

    model_available: bool
    reloaded: bool
    snapshot_as_of: str | None
    snapshot_accounts: int


class ErrorResponse(BaseModel):
    """A request-level error: the field at fault and the rule it broke."""

    error: str = Field(description="What is wrong, naming the field and the rule.")
    field: str | None = Field(None, description="Path of the offending field, e.g. accounts or accounts.3.account_id.")
    detail: list[dict[str, Any]] | str | None = Field(
        None, description="Validation errors, one per offending field (type, loc, msg)."
    )
    errors: list[ItemError] = Field(default_factory=list, description="Per-item errors of a batch.")
    model_available: bool | None = None


class RequestError(Exception):
    """A request the service refuses: HTTP status, the field at fault, the rule, per-item errors."""

    def __init__(self, status: int, field: str, message: str, errors: list[ItemError] | None = None) -> None:
        super().__init__(message)
        self.status, self.field, self.message, self.errors = status, field, message, errors or []


def check_size(field: str, size: int, maximum: int) -> None:
    """Raise a 400 naming ``field`` when ``size`` exceeds ``maximum`` (Settings.max_batch_size)."""
    if size > maximum:
        raise RequestError(400, field, f"{field}: {size} exceeds the maximum of {maximum} (max_batch_size)")


HEALTH_PATHS = ("/healthz", "/livez", "/readyz", "/metrics")
PUBLIC_PATHS = (*HEALTH_PATHS, "/docs.json", "/")


def complete_openapi(spec: dict[str, Any]) -> dict[str, Any]:
    """Add what the generated document lacks: bearer auth, 401 answers, and the real error body.

    BentoML documents its 400/404 bodies with a string ``detail``; the service's bodies
    carry a list of validation errors and per-item errors, so both point at ErrorResponse.
    """
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    error_schema = ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(error_schema.pop("$defs", {}))
    for name in ("InvalidArgument", "NotFound", "ErrorResponse"):
        schemas[name] = {**error_schema, "title": name}
    spec["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    ref = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}
    for path, item in spec.get("paths", {}).items():
        for op in item.values():
            if not isinstance(op, dict) or "responses" not in op:
                continue
            if path in PUBLIC_PATHS:
                op["security"] = []
                continue
            op["security"] = [{"bearer": []}]
            op["responses"].setdefault("401", {"description": "Missing or wrong API key", "content": ref})
            op["responses"].setdefault("415", {"description": "Body is not application/json", "content": ref})
    return spec
