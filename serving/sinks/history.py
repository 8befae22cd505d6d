"""The score history the product reads, written into the product store as a run streams to its sink.

The CRM sink (``--sink``) is what the CRM reads; the pages, the API's "what changed" and the
monitor read ``account_score_history`` in the product store (:mod:`serving.store`). A score run
whose sink is another database (or a file) is wrapped in :class:`WithHistory`: each chunk the
sink takes is also staged in a temporary table on the store's connection (the store stays
unlocked meanwhile); once the sink has published, the run is upserted into the store's history
in one transaction, exactly as the SQL sink keeps its own. A run that fails before its sink
publishes leaves the store as it was; one that fails after (the store unreachable) exits
non-zero with the CRM scores written, and its re-run (the same run id) completes the history.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator

import pandas as pd

from serving.sinks.rows import RunInfo
from serving.sinks.sql import drop_absent, stage_rows, staging_table, upsert_from
from serving.store import Store
from serving.store.engine import IMMEDIATE
from serving.store.schema import HISTORY


class WithHistory:
    """``target`` (any sink) whose every run also lands in ``store``'s ``account_score_history``."""

    def __init__(self, target, store: Store) -> None:  # noqa: ANN001 - serving.sinks.Sink
        self.target, self.store = target, store

    def __getattr__(self, name: str) -> object:  # uri, replace_newer, kept_newer, previous_scores: the sink's
        return getattr(self.target, name)

    def __setattr__(self, name: str, value: object) -> None:
        if name in ("target", "store"):
            object.__setattr__(self, name, value)
        else:
            setattr(self.target, name, value)

    def previous_scores(self, before: dt.date | None = None) -> pd.DataFrame | None:
        return self.target.previous_scores(before)

    def write(self, run: RunInfo, chunks: Iterable[pd.DataFrame]) -> int:
        self.store.ensure()
        history = self.store.table(HISTORY)
        staging = staging_table(f"{history.name}_copy")
        with self.store.engine.connect() as conn:
            with conn.begin():
                staging.create(conn)
            try:
                def staged() -> Iterator[pd.DataFrame]:
                    for chunk in chunks:
                        with conn.begin():
                            stage_rows(conn, staging, run, [chunk])
                        yield chunk

                written = self.target.write(run, staged())
                conn.execution_options(**{IMMEDIATE: True})
                with conn.begin():
                    upsert_from(conn, staging, history, ("account_id", "run_id"))
                    drop_absent(conn, staging, history, run.run_id)
            finally:
                conn.execution_options(**{IMMEDIATE: False})
                with conn.begin():
                    staging.drop(conn, checkfirst=True)
        return written

    def close(self) -> None:
        try:
            self.target.close()
        finally:
            self.store.close()


def with_history(target, store: Store):  # noqa: ANN001, ANN201 - a serving.sinks.Sink
    """``target`` as it is when it is the store's own database (its history is the store's), else wrapped."""
    engine = getattr(target, "engine", None)  # a SQL sink
    if engine is not None and store.same_database(engine.url.render_as_string(hide_password=False)):
        store.close()
        return target
    return WithHistory(target, store)
