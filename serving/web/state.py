"""What the pages need from the running service, gathered once per service instance.

The service hands the pages its settings, its live snapshot and whether a model serves;
the pages add their own SQL store (users, play log, score history), the raw data folder
and the session signing key. :func:`state_of` builds this once per service object.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from features.config import Settings
from serving.snapshot import ScoredSnapshot
from serving.web.company import CompanyData
from serving.web.store import WebStore

_LOCK = threading.Lock()


@dataclass
class WebState:
    """Settings, the served snapshot (a callable: it is swapped on reload), stores and the signing key."""

    settings: Settings
    snapshot: Callable[[], ScoredSnapshot]
    model_available: Callable[[], bool]
    store: WebStore = field(init=False)
    company: CompanyData = field(init=False)
    secret: str = field(init=False)

    def __post_init__(self) -> None:
        self.store = WebStore(self.settings.crm_uri)
        self.company = CompanyData(self.settings.data_dir)
        # without a configured key, a random one per process: sign-ins then end when the service restarts
        self.secret = self.settings.session_secret or secrets.token_urlsafe(32)


def state_of(service: object) -> WebState:
    """The pages' state of a running scoring service (made on first use, then kept on the service)."""
    state = getattr(service, "_web_state", None)
    if state is None:
        with _LOCK:
            state = getattr(service, "_web_state", None)
            if state is None:
                state = WebState(service.settings, lambda: service.live.get(),  # type: ignore[attr-defined]
                                 lambda: service.scorer.model_available)  # type: ignore[attr-defined]
                service._web_state = state  # type: ignore[attr-defined]
    return state
