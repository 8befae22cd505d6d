"""The snapshot the service is serving, reloaded when its file changes, never lost to a bad file.

A snapshot file that cannot be loaded (truncated, corrupt, missing its key columns,
deleted) leaves the previously loaded snapshot serving; :meth:`LiveSnapshot.status` says
which snapshot serves and why the newer file was refused, for ``/readyz`` and
``/metadata``. The same bad file is not retried until it changes again.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from serving.scoring import Scorer
from serving.snapshot import PreviousRun, ScoredSnapshot, load_snapshot

log = logging.getLogger(__name__)


def _mtime(path: Path | None) -> float | None:
    if path is None:
        return None
    try:
        return os.stat(path).st_mtime
    except OSError:
        return None


class LiveSnapshot:
    """Holds the current :class:`ScoredSnapshot` of ``path``; swaps in a new one only when it loads whole.

    ``on_load`` runs after every swap (the service freezes the loaded objects out of the
    garbage collector's way); ``on_reasons`` after a snapshot's reasons are all computed; ``previous(as_of)``
    gives the previous run's scores, so that answers say what changed.
    """

    def __init__(
        self,
        path: Path | None,
        scorer: Scorer,
        check_seconds: float = 2.0,
        precompute: bool = True,
        on_load: Callable[[], None] | None = None,
        on_reasons: Callable[[], None] | None = None,
        previous: PreviousRun | None = None,
    ) -> None:
        self.path, self.scorer, self.check_seconds, self.previous = path, scorer, check_seconds, previous
        self.precompute, self.on_load, self.on_reasons = precompute, on_load, on_reasons
        self.current: ScoredSnapshot = ScoredSnapshot.empty(scorer)
        self.rejected: str | None = None  # why the file at ``path`` is not the snapshot serving
        self._rejected_mtime: float | None = None
        self._loading = threading.Lock()
        self._checked_at = time.monotonic()
        self.reload()

    def get(self) -> ScoredSnapshot:
        """The snapshot to answer with; checks the file at most every ``check_seconds`` (a stat is cheap, a load is not)."""
        if time.monotonic() - self._checked_at > self.check_seconds:
            self.reload(wait=False)
        return self.current

    def reload(self, wait: bool = True) -> bool:
        """Load the file if it changed; True when a new snapshot now serves.

        With ``wait=False`` a request that finds another load in progress keeps answering
        from the current snapshot instead of queueing behind it.
        """
        if not self._loading.acquire(blocking=wait):
            return False
        try:
            self._checked_at = time.monotonic()
            return self._reload()
        finally:
            self._loading.release()

    def _reload(self) -> bool:
        mtime = _mtime(self.path)
        if self.path is None or (mtime is None and self.current.mtime is None):
            return False  # no file was ever served: an empty snapshot is the truth
        if mtime is None:
            self.rejected = f"{self.path}: the file is gone; serving the snapshot loaded before"
            return False
        if mtime == self.current.mtime or mtime == self._rejected_mtime:
            return False
        try:
            fresh = load_snapshot(self.path, self.scorer, self.previous)
        except Exception as exc:  # noqa: BLE001 - whatever is wrong with the file, the previous snapshot keeps serving
            self._rejected_mtime = mtime
            self.rejected = f"{self.path} (modified {_iso(mtime)}) not loaded: {exc}"
            log.warning("feature snapshot refused, %s", self.rejected)
            return False
        self.rejected, self._rejected_mtime = None, None
        self._swap(fresh)
        log.info("feature snapshot as of %s loaded: %d accounts", fresh.as_of, len(fresh))
        return True

    def rescore(self, scorer: Scorer) -> None:
        """Score the snapshot serving again with ``scorer`` (other models), and use it for every later load."""
        with self._loading:
            self.scorer = scorer
            snap = self.current
            fresh = ScoredSnapshot.build(snap.features.reset_index(drop=True), scorer, snap.path, snap.mtime, self.previous)
            self._swap(fresh)

    def _swap(self, fresh: ScoredSnapshot) -> None:
        old, self.current = self.current, fresh
        old.stop_precompute()
        if self.on_load is not None:
            self.on_load()
        if self.precompute:
            fresh.start_precompute(self.on_reasons)

    @property
    def ready(self) -> bool:
        """False only when a snapshot file exists but none could ever be loaded from it."""
        return not (self.rejected is not None and self.current.mtime is None)

    def status(self) -> dict[str, Any]:
        """Which snapshot serves, from which file version, and why a newer file was refused (None when none was)."""
        snap = self.current
        return {
            "snapshot_as_of": snap.as_of,
            "snapshot_path": str(self.path) if self.path else None,
            "snapshot_modified": _iso(snap.mtime) if snap.mtime is not None else None,
            "snapshot_accounts": len(snap),
            "snapshot_rejected": self.rejected,
            "reasons_computed": snap.reasons_computed,
            "reasons_complete": snap.reasons_complete,
        }


def _iso(mtime: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(mtime))
