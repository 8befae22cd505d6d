"""The BentoML scoring service: score accounts, rank a CSM's book, baseline, metadata.

Start it with ``expansion serve`` (or ``bentoml serve serving.api.service:ExpansionScoring``).
Models come from the BentoML model store (put there by ``expansion deploy``), else from
the MLflow registry's ``champion`` aliases, else the service runs on the baseline and
says ``model_available: false`` on every answer. Features of accounts asked for by id
come from the newest feature snapshot (:mod:`serving.api.snapshot`), reloaded when its file
changes or on ``POST /refresh``. A promotion or rollback takes effect on ``POST /refresh``
and, by itself, within ``EXPANSION_REFRESH_SECONDS`` (a background check of the champions);
so do the plays' uplift models that ``expansion plays effect`` stores.
"""

from __future__ import annotations

import atexit
import datetime as dt
import gc
import hmac
import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bentoml
import pandas as pd
from starlette.responses import JSONResponse, Response

from features.config import api_key_problem, get_settings
from serving.scoring.models import ModelChoice, load_models
from serving.api.schemas import (
    PUBLIC_PATHS,
    AccountInput,
    BaselineRequest,
    BaselineResponse,
    BaselineScore,
    EmptyRequest,
    MetadataResponse,
    ModelInfo,
    OrderBy,
    RankRequest,
    RankResponse,
    RefreshResponse,
    RequestError,
    ScoreRequest,
    ScoreResponse,
    account_json,
    check_size,
    complete_openapi,
    with_results,
)
from serving.api.drain import drain_on_sigterm
from serving.api.feature_checks import FeatureRule, feature_rules, openapi_features
from serving.api.forecast import ForecastRequest, ForecastResponse, stored_forecast
from serving.api.live_snapshot import LiveSnapshot
from serving.scoring.scorer import READINESS_METHOD, Scorer, feature_specs
from serving.api.snapshot import NotInSnapshot, ScoredSnapshot, resolve, select
from serving.web.app import create_app
from serving.web.state import state_of
from training.names import MODEL_NAMES
from training.uplift_model import load_uplift, uplift_dir

log = logging.getLogger(__name__)
SNAPSHOT_CHECK_SECONDS = 2.0
WEB_PATH = "/ui"
API_THREADS = 8
_FALLBACK_KEYS = {"expected_expansion_usd": "baseline_score", "expansion_probability": "baseline_score",
                  "churn_probability": "baseline_risk"}


class ApiKeyMiddleware:
    """Requires ``Authorization: Bearer <EXPANSION_API_KEY>`` except on health and docs paths.

    Refuses to start without a key unless ``EXPANSION_INSECURE=1`` (``expansion serve
    --insecure``), and with a key shorter than 24 characters. ``/docs.json`` answers 405 to
    any method but GET and HEAD. Also completes the published OpenAPI document and stamps every answer
    with ``x-model-available``.
    """

    model_available: bool | None = None
    feature_rules: dict[str, FeatureRule] = {}
    readiness: Callable[[], dict[str, Any]] | None = None  # what /readyz says besides its status
    draining = False  # SIGTERM received: answering still, readiness 503, every connection closed after its answer

    def __init__(self, app: Any) -> None:
        self.app = app
        settings = get_settings()
        key = settings.api_key
        problem = api_key_problem(key, settings.insecure)
        if problem:
            raise RuntimeError(problem)
        self.expected = f"Bearer {key}".encode() if key else None
        self.max_batch_size = settings.max_batch_size

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        if path == WEB_PATH or path.startswith(f"{WEB_PATH}/"):
            return await self.app(scope, receive, send)  # the pages sign people in themselves (serving/web)
        if self.expected is not None and path not in PUBLIC_PATHS:
            given = dict(scope.get("headers") or []).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                body = {"error": "Authorization: a valid 'Bearer <API key>' header is required",
                        "field": "Authorization", "model_available": self.model_available}
                return await JSONResponse(body, status_code=401)(scope, receive, send)
        if path == "/docs.json":
            if scope.get("method") not in ("GET", "HEAD"):  # the framework answers 500 to the other methods
                body = {"error": "/docs.json answers GET only", "field": "method"}
                return await JSONResponse(body, status_code=405, headers={"Allow": "GET, HEAD"})(scope, receive, send)
            return await self._openapi(scope, receive, send)
        if path == "/readyz" and self.readiness is not None:
            return await self._readyz(scope, receive, send)
        if scope.get("method") == "POST" and not _is_json(dict(scope.get("headers") or [])):
            # the framework answers 500 to a malformed multipart body; every endpoint here takes JSON only
            body = {"error": "Content-Type: the service accepts application/json only", "field": "Content-Type",
                    "model_available": self.model_available}
            return await JSONResponse(body, status_code=415)(scope, receive, self._stamp(send))
        return await self.app(scope, receive, self._stamp(send))

    def _stamp(self, send: Any) -> Any:
        async def stamped(message: dict) -> None:
            if message["type"] == "http.response.start" and self.model_available is not None:
                value = b"true" if self.model_available else b"false"
                message = {**message, "headers": [*message.get("headers", []), (b"x-model-available", value)]}
            if message["type"] == "http.response.start" and type(self).draining:
                message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        return stamped

    async def _captured(self, scope: dict, receive: Any) -> tuple[int, bytes]:
        """The framework's own answer to this request: (status, body)."""
        chunks: list[bytes] = []
        start: dict = {}

        async def capture(message: dict) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            else:
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, capture)
        return int(start.get("status", 500)), b"".join(chunks)

    async def _readyz(self, scope: dict, receive: Any, send: Any) -> None:
        """The framework's readiness status, with a body saying which snapshot serves and why a newer one does not."""
        status, _ = await self._captured(scope, receive)
        if type(self).draining:
            status = 503
        body = {"ready": status == 200, "draining": type(self).draining, **type(self).readiness()}  # type: ignore[misc]
        await JSONResponse(body, status_code=status)(scope, receive, self._stamp(send))

    async def _openapi(self, scope: dict, receive: Any, send: Any) -> None:
        status, raw = await self._captured(scope, receive)
        if status != 200:
            return await JSONResponse({"error": "OpenAPI document unavailable"}, status_code=500)(scope, receive, send)
        spec = complete_openapi(openapi_features(json.loads(raw), self.feature_rules, self.max_batch_size))
        await JSONResponse(spec)(scope, receive, send)


def _is_json(headers: dict[bytes, bytes]) -> bool:
    media_type = headers.get(b"content-type", b"application/json").split(b";")[0].strip().lower()
    return media_type in (b"application/json", b"")


# threads: BentoML runs sync endpoints one at a time by default, so a 1 ms look-up queued behind every
# 200-account batch and ranking; with several threads they share the worker. One worker is enough because
# batches and rankings join stored JSON answers (serving/api/snapshot.py) (benchmarks/README.md, load)
@bentoml.service(name="expansion_scoring", workers=1, threads=API_THREADS, traffic={"timeout": 30})
class ExpansionScoring:
    """Expansion readiness and churn risk for CSM tools."""

    def __init__(self) -> None:
        self.settings = get_settings()
        self._refreshing = threading.Lock()  # one model check at a time: POST /refresh and the periodic one
        self._use_models(load_models(self.settings, self.settings.model_source))
        self.live = LiveSnapshot(self.settings.snapshot_file, self.scorer, SNAPSHOT_CHECK_SECONDS,
                                 precompute=self.settings.precompute_reasons, on_load=_settle, on_reasons=gc.freeze,
                                 previous=self._previous_run, holdouts=self._holdouts)
        ApiKeyMiddleware.readiness = self._readiness
        ApiKeyMiddleware.draining = False
        drain_on_sigterm(self.settings.drain_seconds, _set_draining)
        _settle()
        log.info("scoring service: models from %s, %d accounts in snapshot", self.model_source, len(self.live.current))
        self._stop = threading.Event()
        if self.settings.refresh_seconds > 0:
            threading.Thread(target=self._refresh_periodically, name="model-refresh", daemon=True).start()

    def _refresh_periodically(self) -> None:
        """Every ``refresh_seconds``: the champions again (a promotion or rollback) and the snapshot file."""
        while not self._stop.wait(self.settings.refresh_seconds):
            try:
                if self._refresh_models():
                    log.info("models changed by themselves: %s", self.choice.note)
                self.live.check()  # a changed file is prepared in its own thread: the model checks go on
            except Exception:  # noqa: BLE001 - a failed check must not end the checks; the next one tries again
                log.exception("periodic model refresh failed; serving what was loaded")

    def stop_refresh(self) -> None:
        """End the periodic check (tests that build many services; a server's thread ends with its process)."""
        self._stop.set()

    def _previous_run(self, as_of: dt.date) -> pd.DataFrame | None:
        """The stored history's newest run on a snapshot older than ``as_of`` (what changed is measured from it): the
        product store's ``account_score_history`` (EXPANSION_STORE_URI), which every score run writes."""
        from serving.sinks.sql import read_previous
        from serving.store import state_store
        from serving.store.schema import HISTORY

        store = state_store(self.settings)
        try:
            if not store.has(HISTORY):
                return None  # no score run has written the history yet: nothing to compare with
            with store.engine.connect() as conn:
                return read_previous(conn, store.table(HISTORY), as_of)
        finally:
            store.close()

    def _holdouts(self, as_of: dt.date) -> object | None:
        """The play assignments the batch runs drew, in force at ``as_of``: followed here, never drawn."""
        from features.play_assignment import Assigner
        from serving.store.plays import PlayStore

        store = PlayStore(self.settings)  # the product store the batch runs drew into
        try:
            if not store.store.has("play_assignments"):
                return None  # no batch run has drawn yet: nothing is held out
            assigner = Assigner.for_run(as_of, self.settings, store.covering(as_of))
        finally:
            store.close()
        assigner.draw_new = False
        return assigner

    def _use_models(self, choice: ModelChoice) -> None:
        """Serve with ``choice``'s models from now on (at start, and when /refresh finds other champions)."""
        self.choice, self.model_source = choice, choice.source
        self.models_checked_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.scorer = Scorer(choice.expansion, choice.churn, feature_specs(), currency_symbol=self.settings.currency_symbol,
                             quota_alert_pct=self.settings.quota_alert_pct).with_uplift(load_uplift(self.settings.home))
        self._uplift_seen = _uplift_identity(self.settings.home)
        self._rules = _feature_rules(self.scorer)
        ApiKeyMiddleware.model_available = self.scorer.model_available
        ApiKeyMiddleware.feature_rules = self._rules
        log.info("scoring service models: %s", choice.note)

    def _refresh_models(self) -> bool:
        """Ask the model source again; True when other models now serve (the snapshot is re-scored with them)."""
        with self._refreshing:
            choice = load_models(self.settings, self.settings.model_source)
            if choice.identity == self.choice.identity and choice.source == self.choice.source:
                self.choice.note = choice.note  # e.g. the registry is reachable again and still names these models
                self.models_checked_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                if _uplift_identity(self.settings.home) == self._uplift_seen:
                    return False
                log.info("the plays' uplift models changed (expansion plays effect): scoring with them")
                choice = self.choice
            self._use_models(choice)
            self.live.rescore(self.scorer)
            return True

    def __is_ready__(self) -> bool:
        self.live.get()  # a corrupt snapshot replaced by a good one makes the service ready again
        return self.live.ready

    def _readiness(self) -> dict[str, Any]:
        return {"model_available": self.scorer.model_available, "model_source": self.model_source,
                "model_note": self.choice.note, **self.live.status()}

    def _current(self) -> ScoredSnapshot:
        return self.live.get()

    def _error(self, exc: RequestError) -> JSONResponse:
        body = {"error": exc.message, "field": exc.field, "errors": [e.model_dump() for e in exc.errors],
                "model_available": self.scorer.model_available}
        return JSONResponse(body, status_code=exc.status)

    def _resolve(self, accounts: list[AccountInput]) -> tuple[ScoredSnapshot, list[str], list[dict], list]:
        """(snapshot, ids to look up, supplied feature rows, per-item errors); a 4xx when nothing can be scored."""
        snap = self._current()
        check_size("accounts", len(accounts), self.settings.max_batch_size)
        by_id, supplied, errors = resolve(snap, accounts, self._rules)
        if not by_id and not supplied:
            status = 404 if all(e.field.endswith("account_id") for e in errors) else 400
            raise RequestError(status, "accounts", "no account in the batch could be scored", errors)
        return snap, by_id, supplied, errors

    @bentoml.api(route="/score", input_spec=ScoreRequest)
    def score(self, accounts: list[AccountInput], with_reasons: bool = True) -> ScoreResponse:
        """Score accounts by id (features from the newest snapshot) or by supplied feature values."""
        try:
            snap, by_id, supplied, errors = self._resolve(accounts)
        except RequestError as exc:
            return self._error(exc)  # type: ignore[return-value]
        # accounts by id: their answers stored as JSON per snapshot; supplied features: scored and formatted now
        results = snap.answers(by_id, with_reasons) if by_id else []
        if supplied:
            results += [account_json(r) for r in snap.scorer.score_records(supplied, with_reasons=with_reasons)]
        envelope = ScoreResponse(model_available=self.scorer.model_available, snapshot_as_of=snap.as_of, results=[],
                                 errors=errors)
        return _json(envelope, results)  # type: ignore[return-value]

    @bentoml.api(route="/baseline", input_spec=BaselineRequest)
    def baseline(self, accounts: list[AccountInput]) -> BaselineResponse:
        """The rule-based readiness score, band and health only."""
        try:
            snap, by_id, supplied, errors = self._resolve(accounts)
        except RequestError as exc:
            return self._error(exc)  # type: ignore[return-value]
        records = snap.lookup(by_id, with_reasons=False) if by_id else []
        if supplied:
            records += snap.scorer.score_records(supplied, with_reasons=False)
        keys = tuple(BaselineScore.model_fields)
        return BaselineResponse(model_available=self.scorer.model_available, snapshot_as_of=snap.as_of,
                                results=[{k: r[k] for k in keys} for r in records], errors=errors)

    @bentoml.api(route="/rank", input_spec=RankRequest)
    def rank(
        self,
        csm_owner: str | None = None,
        account_ids: list[str] | None = None,
        order_by: OrderBy = "expected_expansion_usd",
        limit: int = 20,
    ) -> RankResponse:
        """Rank a CSM's book (or a list of accounts), highest first, with reasons for the returned rows."""
        snap = self._current()
        try:
            check_size("limit", limit, self.settings.max_batch_size)
            ids, errors = select(snap, csm_owner, account_ids, self.settings.max_batch_size)
        except RequestError as exc:
            return self._error(exc)  # type: ignore[return-value]
        except NotInSnapshot as exc:
            return self._error(RequestError(404, exc.field, exc.message, exc.errors))  # type: ignore[return-value]
        needs = self.scorer.expansion if order_by != "churn_probability" else self.scorer.churn
        key = order_by if needs is not None else _FALLBACK_KEYS[order_by]
        ranking = snap.ranked_book(csm_owner, key) if csm_owner is not None else snap.ranked(ids, key)
        envelope = RankResponse(model_available=self.scorer.model_available, snapshot_as_of=snap.as_of, order_by=key,
                                total_accounts=len(ids), results=[], errors=errors)
        return _json(envelope, snap.answers(ranking[:limit], True))  # type: ignore[return-value]

    @bentoml.api(route="/metadata", input_spec=EmptyRequest)
    def metadata(self) -> MetadataResponse:
        """Model versions, training windows, test metrics, and the snapshot in use."""
        self._current()
        models = [_model_info(name, getattr(self.scorer, name), self.model_source) for name in MODEL_NAMES]
        return MetadataResponse(
            model_available=self.scorer.model_available, models=models, model_note=self.choice.note,
            **self.live.status(),
            max_batch_size=self.settings.max_batch_size,
            readiness_method=READINESS_METHOD if self.scorer.expansion is not None else "rule-based baseline",
            models_checked_at=self.models_checked_at, refresh_seconds=self.settings.refresh_seconds,
        )

    @bentoml.api(route="/refresh", input_spec=EmptyRequest)
    def refresh(self) -> RefreshResponse:
        """Ask the model source again (new champions, a registry back after an outage) and reload the snapshot if its file changed.

        A snapshot file that cannot be loaded is refused, and said so.
        """
        models_reloaded = self._refresh_models()
        reloaded = self.live.reload()
        status = self.live.status()
        return RefreshResponse(model_available=self.scorer.model_available, reloaded=reloaded,
                               models_reloaded=models_reloaded, model_note=self.choice.note,
                               snapshot_as_of=status["snapshot_as_of"], snapshot_accounts=status["snapshot_accounts"],
                               snapshot_rejected=status["snapshot_rejected"])

    @bentoml.api(route="/forecast", input_spec=ForecastRequest)
    def forecast(self, as_of: dt.date | None = None, group: str | None = None) -> ForecastResponse:
        """The newest stored forecast of expansion, contraction and churned ARR and NRR, with 80 % and 95 % intervals."""
        return stored_forecast(self.settings, ForecastRequest(as_of=as_of, group=group))


def _uplift_identity(home: Path) -> tuple[int, int] | None:
    """Which stored set of uplift models is there: ``save_uplift`` renames a new folder into place each run."""
    try:
        found = uplift_dir(home).stat()
    except OSError:
        return None
    return found.st_ino, found.st_mtime_ns


ExpansionScoring.add_asgi_middleware(ApiKeyMiddleware)
# the pages for CSMs and leaders, reading this service's snapshot (serving/web)
ExpansionScoring.mount_asgi_app(create_app(lambda: state_of(bentoml.get_current_service())), path=WEB_PATH)


def _set_draining(on: bool) -> None:
    ApiKeyMiddleware.draining = on


def _settle() -> None:
    """Exempt everything loaded so far (libraries, models, the scored snapshot) from garbage collection.

    Full collections otherwise walk those ~200k long-lived objects every few large
    requests, a 100-250 ms pause that was the whole p99 of scoring 1,000 accounts by id.
    Unfrozen again at exit, so that shutdown still frees them.
    """
    gc.collect()
    gc.freeze()
    atexit.unregister(gc.unfreeze)
    atexit.register(gc.unfreeze)


def _feature_rules(scorer: Scorer) -> dict[str, FeatureRule]:
    """The rules of the features a caller may supply: the registry's, plus any model feature it lacks."""
    model_features = [(f, f in m.categorical_features) for m in (scorer.expansion, scorer.churn) if m is not None
                      for f in m.feature_names]
    return feature_rules(scorer.specs, model_features)


def _json(envelope: ScoreResponse | RankResponse, results: list[bytes]) -> Response:
    """The answer as JSON bytes: the envelope validated by its model, the results joined from stored answers.

    The same bytes the framework would write for the model with those results, without validating
    and serialising every account again on each request (that work also ran on the event loop,
    where it held up every other connection of the worker).
    """
    return Response(with_results(envelope, results), media_type="application/json")


def _model_info(name: str, model: Any, source: str) -> ModelInfo:
    def numbers(d: dict | None) -> dict[str, float | None]:
        return {str(k): (None if v != v else float(v)) for k, v in (d or {}).items() if isinstance(v, (int, float))}

    if model is None:
        return ModelInfo(name=name, version=None, run_id=None, registry_uri=None, source="none", training_window={},
                         metrics={}, baseline_metrics={})
    window = {str(k): (None if v is None else str(v)) for k, v in (model.training_window or {}).items()}
    return ModelInfo(name=name, version=str(model.version), run_id=getattr(model, "run_id", None),
                     registry_uri=getattr(model, "registry_uri", None), source=source, training_window=window,
                     metrics=numbers(model.metrics), baseline_metrics=numbers(model.baseline_metrics))
