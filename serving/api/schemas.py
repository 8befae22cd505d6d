"""HTTP request and response models of the scoring service.

Every request model forbids unknown fields so that a typo (``acount_id``) is a 400 that
names the field, not a silently ignored key. Batch sizes are checked against
``Settings.max_batch_size`` by the service, because the limit is a runtime setting.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from serving.scoring.score_schema import SCORE_SCHEMA, ScoreField
from training.baseline import HEALTH_COLOURS, READINESS_BANDS
from training.names import MODEL_NAMES

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
    effect: Literal["expansion", "churn_risk"] = Field(description="The model (outcome) whose score the driver moves.")
    contribution: float | None = Field(description="LightGBM contribution in raw-score units against the model's "
                                       "base value, summed over the concept's features on the same side (signed: "
                                       "below 0 pulls that model's score down); null for rule reasons.")
    concept: str = Field(description="The concept the reason speaks of (features/reason_catalog.py): one reason per concept.")
    comparison: Literal["past", "peers", "limit", "timing"] = Field(
        description="What the value is compared with: the account's own past, its segment's peers, a limit, or "
                    "none (timing: a date of the account's own calendar, said as it is).")
    side: Literal["lifts", "holds_back"] = Field(
        "lifts", description="Which side of the score the reason stands on: 'lifts' (why readiness is high) or "
                             "'holds_back' (what holds it back, risks included), against the model's base value.")


Band = Literal[READINESS_BANDS]
Health = Literal[HEALTH_COLOURS]


# How each kind reads in the API answer: a type, and whether a null is allowed.
_API_TYPES: dict[str, Any] = {
    "id": str, "date": str | None, "probability": float | None, "points": float, "band": Band, "health": Health,
    "money": float | None, "text": str | None, "reason_details": list[Reason], "change": float | None,
}


def _api_field(spec: ScoreField) -> tuple[Any, Any]:
    bounds = {"ge": 0, "le": 100} if spec.kind == "points" else {}
    return _API_TYPES[spec.kind], Field(description=spec.description, **bounds)


#: Everything the scorer says about one account, as the HTTP service answers it.
AccountScore = create_model(
    "AccountScore",
    __doc__="Everything the scorer says about one account.",
    **{(f.api_name or f.name): _api_field(f) for f in SCORE_SCHEMA if f.api},
    model_versions=(dict[str, str | None], Field(description="Registry version of each model, null without one.")),
    model_run_ids=(dict[str, str | None], Field(description="MLflow run of each model, null without one.")),
)


# (model name, column) pairs built once: every answer formats them per account
_VERSION_KEYS = tuple((name, f"{name}_model_version") for name in MODEL_NAMES)
_RUN_ID_KEYS = tuple((name, f"{name}_model_run_id") for name in MODEL_NAMES)


def api_record(record: dict[str, Any]) -> dict[str, Any]:
    """A scorer record (one account) in the shape of :data:`AccountScore`: NaN as null, reasons, model ids."""
    out = record.copy()
    out.pop("reason_details", None)
    for k, v in out.items():
        if isinstance(v, float) and v != v:  # NaN is "unknown" -> JSON null
            out[k] = None
    out["reasons"] = record.get("reason_details") or []
    out["model_versions"] = {name: record.get(key) for name, key in _VERSION_KEYS}
    out["model_run_ids"] = {name: record.get(key) for name, key in _RUN_ID_KEYS}
    return out


def account_json(record: dict[str, Any]) -> bytes:
    """One account's answer as the JSON bytes of :data:`AccountScore`, validated as a response model would be.

    Built once per account and snapshot (:meth:`serving.api.snapshot.ScoredSnapshot.answers`), so
    that a batch answer joins stored bytes instead of validating and dumping every record.
    """
    return AccountScore.__pydantic_serializer__.to_json(AccountScore.model_validate(api_record(record)))


_RESULTS = b'"results":[]'


def with_results(envelope: BaseModel, results: list[bytes]) -> bytes:
    """``envelope`` (a response with ``results=[]``) as JSON, its results being the given account answers.

    Byte for byte what the model would dump with those results: the marker is the top-level key,
    since a quote inside a JSON string is always escaped.
    """
    head, marker, tail = envelope.__pydantic_serializer__.to_json(envelope).partition(_RESULTS)
    if not marker:
        raise ValueError(f"{type(envelope).__name__} has no empty results list to fill")
    return b"".join((head, b'"results":[', b",".join(results), b"]", tail))


class ItemError(BaseModel):
    """Why one account of a batch was not scored (the others of the batch still are)."""

    account_id: str
    field: str
    error: str
    status: int = Field(description="The status this item alone would get: 400 invalid value, 404 unknown account.")
    value: FeatureValue = Field(description="The offending value as sent (a non-finite number as 'inf' or 'nan').")
    rule: str | None = Field(description="The rule the value breaks, with the allowed values or range.")


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


#: The rule-based scores of one account: the baseline's fields of the score schema.
BaselineScore = create_model(
    "BaselineScore",
    __doc__="The rule-based scores of one account.",
    **{f.name: _api_field(f) for f in SCORE_SCHEMA if f.name == "account_id" or (f.name.startswith("baseline_") and f.api)},
)


class BaselineResponse(BaseModel):
    """Rule-based readiness and health only."""

    model_available: bool
    snapshot_as_of: str | None
    results: list[BaselineScore]
    errors: list[ItemError]


class ModelInfo(BaseModel):
    """What is known about one deployed model."""

    name: str = Field(description="Registered model name.")
    version: str | None = Field(description="Registry version (every registry starts at 1: see run_id).")
    run_id: str | None = Field(description="The MLflow run that logged the model: what identifies it.")
    registry_uri: str | None = Field(description="The MLflow registry it came from (tracking URI, no credentials).")
    source: str = Field(description="bentoml_store, mlflow or none.")
    training_window: dict[str, str | None]
    metrics: dict[str, float | None]
    baseline_metrics: dict[str, float | None]


class MetadataResponse(BaseModel):
    """Models, snapshot and limits in force."""

    model_available: bool
    models: list[ModelInfo]
    model_note: str = Field(description="Where the models come from and why: champions, deployed copies, an outage.")
    snapshot_as_of: str | None
    snapshot_path: str | None
    snapshot_modified: str | None = Field(description="Modification time (UTC) of the file version serving.")
    snapshot_accounts: int
    snapshot_rejected: str | None = Field(
        description="Why the file at snapshot_path is not what serves (corrupt, truncated, gone); null when it is.")
    reasons_computed: int = Field(description="Accounts of the snapshot whose reasons are computed and cached.")
    reasons_complete: bool = Field(description="True once every account's reasons are computed.")
    max_batch_size: int
    readiness_method: str
    models_checked_at: str | None = Field(
        None, description="When (UTC) the service last asked the model source which models to serve.")
    refresh_seconds: float = Field(
        0.0, description="How often the service asks again by itself (EXPANSION_REFRESH_SECONDS; 0: only on POST /refresh).")


class RefreshResponse(BaseModel):
    """State of the feature snapshot after a refresh."""

    model_available: bool
    reloaded: bool
    models_reloaded: bool = Field(description="True when other models serve since this refresh.")
    model_note: str = Field(description="Where the models come from and why.")
    snapshot_as_of: str | None
    snapshot_accounts: int
    snapshot_rejected: str | None = Field(description="Why the snapshot file was not loaded; null when it was.")


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
    _refer_to_components(spec)
    if str(spec.get("openapi", "")).startswith("3.0"):
        _nullable_30(spec)
    return spec


def _refer_to_components(spec: dict[str, Any]) -> None:
    """Point request and response bodies at their component schema instead of an inline copy.

    The framework inlines a copy of each body schema that drops ``null`` from optional
    fields; the component keeps it, so a null answer validates against the document.
    """
    schemas = spec.get("components", {}).get("schemas", {})
    for item in spec.get("paths", {}).values():
        for op in item.values():
            if not isinstance(op, dict):
                continue
            bodies = [op.get("requestBody") or {}, *(op.get("responses") or {}).values()]
            for media in (c for b in bodies if isinstance(b, dict) for c in (b.get("content") or {}).values()):
                title = (media.get("schema") or {}).get("title")
                if title in schemas and "$ref" not in media["schema"]:
                    media["schema"] = {"$ref": f"#/components/schemas/{title}"}


def _nullable_30(node: Any) -> None:
    """OpenAPI 3.0 has no ``{"type": "null"}``: ``anyOf [X, null]`` becomes X with ``nullable: true``.

    Pydantic writes optional fields the 3.1 way; read as 3.0, a validator drops the null
    branch and then calls every null answer a schema violation.
    """
    for found in json_objects(node):
        options = found.get("anyOf")
        if not (isinstance(options, list) and {"type": "null"} in options):
            continue
        rest = [o for o in options if o != {"type": "null"}]
        found.pop("anyOf")
        if len(rest) == 1 and isinstance(rest[0], dict) and "$ref" not in rest[0]:
            found.update({**rest[0], **{k: v for k, v in found.items() if k not in rest[0]}})
        else:
            found["anyOf"] = rest
        found["nullable"] = True
        if isinstance(found.get("enum"), list) and None not in found["enum"]:
            found["enum"] = [*found["enum"], None]  # 3.0.3: a nullable enum lists null among its values


def json_objects(node: Any) -> list[dict]:
    """Every object of a JSON document (a schema), innermost first: a caller may rewrite each as it goes."""
    if isinstance(node, list):
        return [found for child in node for found in json_objects(child)]
    if not isinstance(node, dict):
        return []
    return [*(found for child in node.values() for found in json_objects(child)), node]
