"""The snapshot the service is serving, reloaded when its file changes, never lost to a bad file.

A snapshot file that cannot be loaded (truncated, corrupt, missing its key columns,
deleted) leaves the previously loaded snapshot serving; :meth:`LiveSnapshot.status` says
which snapshot serves and why the newer file was refused, for ``/readyz`` and
``/metadata``. The same bad file is not retried until it changes again.

A file change noticed by itself (the check on requests, the periodic refresh) is loaded in
a background thread and swapped in once every account's reasons are computed: until then
the previous snapshot answers from its stored answers, so requests never pay for the new
snapshot's reasons (under load, on-demand reasons after each swap were the whole p99 of
single-account requests: ``benchmarks/README.md``, load). ``POST /refresh`` swaps at once.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from serving.scoring.scorer import Scorer
from serving.api.snapshot import Holdouts, PreviousRun, ScoredSnapshot, load_snapshot

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
    gives the previous run's scores, so that answers say what changed; ``holdouts(as_of)`` the play
    assignments in force, so that no account is recommended a play it is held out of.
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
        holdouts: Holdouts | None = None,
    ) -> None:
        self.path, self.scorer, self.check_seconds, self.previous = path, scorer, check_seconds, previous
        self.holdouts = holdouts
        self.precompute, self.on_load, self.on_reasons = precompute, on_load, on_reasons
        self.current: ScoredSnapshot = ScoredSnapshot.empty(scorer)
        self.rejected: str | None = None  # why the file at ``path`` is not the snapshot serving
        self._rejected_mtime: float | None = None
        self.pending: ScoredSnapshot | None = None  # loaded, its reasons being computed before it serves
        self._loading = threading.Lock()
        self._checked_at = time.monotonic()
        self.reload()

    def get(self) -> ScoredSnapshot:
        """The snapshot to answer with; checks the file at most every ``check_seconds`` (a stat is cheap, a load is not).

        A changed file is loaded by a background thread: the request that noticed it answers at once.
        """
        if time.monotonic() - self._checked_at > self.check_seconds:
            self.check()
        return self.current

    def check(self) -> None:
        """Start loading the file in a background thread when it changed (the periodic refresh calls this too)."""
        self._checked_at = time.monotonic()
        mtime = _mtime(self.path)
        if mtime is None:
            self.reload(wait=False)  # only says the file is gone, if it was ever there
        elif not self._known(mtime) and not self._loading.locked():
            threading.Thread(target=self.reload, kwargs={"wait": False}, name="snapshot-reload", daemon=True).start()

    def _known(self, mtime: float | None) -> bool:
        """True when the file version ``mtime`` is serving, being prepared, or was refused already."""
        pending = self.pending
        return mtime in (self.current.mtime, self._rejected_mtime) or (pending is not None and mtime == pending.mtime)

    def reload(self, wait: bool = True) -> bool:
        """Load the file if it changed; True when a new snapshot now serves.

        ``wait=True`` (``POST /refresh``, start-up) swaps the new snapshot in at once and computes
        its reasons afterwards. ``wait=False`` (a change noticed by itself) gives up when another
        load is in progress, and otherwise computes every reason of the new snapshot before it
        serves; the previous one answers meanwhile.
        """
        if not self._loading.acquire(blocking=wait):
            return False
        try:
            self._checked_at = time.monotonic()
            fresh = self._load_changed(serve_pending=wait)
            if fresh is None or fresh is self.current:
                return fresh is not None
            if wait or not self.precompute or not len(self.current):  # nothing to answer from meanwhile
                self._swap(fresh)
                return True
            self.pending = fresh
        finally:
            self._loading.release()
        log.info("feature snapshot as of %s loaded: computing its reasons before it serves", fresh.as_of)
        if not fresh.precompute_reasons():
            return False  # a /refresh or other models replaced it meanwhile
        with self._loading:
            swapped = self.pending is fresh
            if swapped:
                self.pending = None
                self._swap(fresh, precompute=False)
        if self.current is fresh and self.on_reasons is not None:
            self.on_reasons()
        return swapped

    def _load_changed(self, serve_pending: bool) -> ScoredSnapshot | None:
        """The snapshot of the file when it changed and loads whole; None otherwise (the reason kept in ``rejected``).

        With ``serve_pending``, a snapshot of this file version still being prepared is swapped in now.
        """
        mtime = _mtime(self.path)
        if self.path is None or (mtime is None and self.current.mtime is None):
            return None  # no file was ever served: an empty snapshot is the truth
        if mtime is None:
            self.rejected = f"{self.path}: the file is gone; serving the snapshot loaded before"
            return None
        pending = self.pending
        if pending is not None and mtime == pending.mtime:
            if not serve_pending:
                return None
            self.pending = None
            self._swap(pending, precompute=False)  # its reasons go on being computed in the thread preparing it
            return pending
        if mtime in (self.current.mtime, self._rejected_mtime):
            return None
        try:
            fresh = load_snapshot(self.path, self.scorer, self.previous, self.holdouts)
        except Exception as exc:  # noqa: BLE001 - whatever is wrong with the file, the previous snapshot keeps serving
            self._rejected_mtime = mtime
            self.rejected = f"{self.path} (modified {_iso(mtime)}) not loaded: {exc}"
            log.warning("feature snapshot refused, %s", self.rejected)
            return None
        self.rejected, self._rejected_mtime = None, None
        self._drop_pending()
        log.info("feature snapshot as of %s loaded: %d accounts", fresh.as_of, len(fresh))
        return fresh

    def _drop_pending(self) -> None:
        if self.pending is not None:
            self.pending.stop_precompute()
            self.pending = None

    def rescore(self, scorer: Scorer) -> None:
        """Score the snapshot serving again with ``scorer`` (other models), and use it for every later load."""
        with self._loading:
            self.scorer = scorer
            self._drop_pending()  # scored with the previous models: the file is loaded again at the next check
            snap = self.current
            fresh = ScoredSnapshot.build(snap.features.reset_index(drop=True), scorer, snap.path, snap.mtime, self.previous,
                                         self.holdouts)
            self._swap(fresh)

    def _swap(self, fresh: ScoredSnapshot, precompute: bool = True) -> None:
        old, self.current = self.current, fresh
        old.stop_precompute()
        if self.on_load is not None:
            self.on_load()
        if self.precompute and precompute:
            fresh.start_precompute(self.on_reasons)
        log.info("feature snapshot as of %s serving: %d accounts", fresh.as_of, len(fresh))

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
