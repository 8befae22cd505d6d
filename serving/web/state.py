"""What the pages need from the running service, gathered once per service instance.

The service hands the pages its settings, its live snapshot and whether a model serves;
the pages add their own SQL store (users, sessions, play log, score history), the raw data
folder, and what they compute once per served snapshot (the search index, the names, the
charts of each account): :meth:`WebState.per_snapshot` keeps those until the snapshot is swapped.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from features.config import Settings
from serving.api.snapshot import ScoredSnapshot
from serving.web.company import CompanyData
from serving.store.plays import PlayStore
from serving.web.store import WebStore

_LOCK = threading.Lock()
CHART_CACHE = 4_096  # account charts kept (a few kB each)


@dataclass
class WebState:
    """Settings, the served snapshot (a callable: it is swapped on reload), stores and per-snapshot caches."""

    settings: Settings
    snapshot: Callable[[], ScoredSnapshot]
    model_available: Callable[[], bool]
    store: WebStore = field(init=False)
    play_store: PlayStore = field(init=False)
    company: CompanyData = field(init=False)
    _key: tuple = field(default=(), init=False)
    _memo: dict[str, Any] = field(default_factory=dict, init=False)
    _charts: OrderedDict = field(default_factory=OrderedDict, init=False)
    _lock: threading.RLock = field(default_factory=threading.RLock, init=False)

    def __post_init__(self) -> None:
        self.store = WebStore(self.settings)  # the product store (EXPANSION_STORE_URI)
        self.play_store = PlayStore(self.settings)
        self.company = CompanyData(self.settings.data_dir, self.settings.opportunity_stages)

    def _current(self, snap: ScoredSnapshot) -> None:
        key = (id(snap), snap.as_of, snap.mtime, len(snap))
        if key != self._key:
            self._key, self._memo, self._charts = key, {}, OrderedDict()

    def per_snapshot(self, snap: ScoredSnapshot, name: str, compute: Callable[[], Any]) -> Any:
        """``compute()`` once per served snapshot (dropped when the service swaps in a new one)."""
        with self._lock:
            self._current(snap)
            if name not in self._memo:
                self._memo[name] = compute()
            return self._memo[name]

    def warm(self, snap: ScoredSnapshot, name: str, work: Callable[[], Any]) -> None:
        """Run ``work`` once per snapshot in a background thread (reading what the account pages need for every
        account, so the first account opened does not wait for it); a failure is logged by ``work``'s panel."""
        def start() -> threading.Thread:
            thread = threading.Thread(target=work, name=f"web-warm-{name}", daemon=True)
            thread.start()
            return thread

        self.per_snapshot(snap, f"warm:{name}", start)

    def chart(self, snap: ScoredSnapshot, key: tuple, compute: Callable[[], str | None]) -> str | None:
        """An account's chart, drawn once per snapshot and ``key`` (the most recent few thousand are kept)."""
        with self._lock:
            self._current(snap)
            if key in self._charts:
                self._charts.move_to_end(key)
                return self._charts[key]
        svg = compute()
        with self._lock:
            self._charts[key] = svg
            while len(self._charts) > CHART_CACHE:
                self._charts.popitem(last=False)
        return svg


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
