"""The product store: the product's own state in one SQL database, apart from the CRM sink.

``EXPANSION_STORE_URI`` (``Settings.state_uri``; default ``sqlite:///<home>/state.db``) names it;
PostgreSQL is how replicas of the service share it. Every store class (the pages' users and
play log, the alert state, the monitoring record, the forecasts, the score history the
product reads) gets its engine and tables here: :func:`state_store` opens it,
:mod:`serving.store.engine` is the one engine set-up, :mod:`serving.store.schema` the one
declared schema, :mod:`serving.store.migrate` the additive migrations and the one-time move
of an older home's state out of ``<home>/crm.db``.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from features.config import Settings
from serving.store.engine import engine_url, shown, sql_engine
from serving.store.migrate import has_state, migrate
from serving.store.schema import state_metadata

__all__ = ["Store", "OnStore", "state_store", "open_store", "LEGACY_FILE"]

#: Where releases before the product store kept the state: the CRM database under home.
LEGACY_FILE = "crm.db"


class Store:
    """An engine on the store at ``uri`` and its declared tables (``prefix``-ed in tests).

    ``legacy``: an older home's ``crm.db``; its state tables are copied in at open when the store has
    none yet. :meth:`ensure` creates what is missing (tables, columns) before the first write.
    """

    def __init__(self, uri: str, *, prefix: str = "", legacy: Path | None = None) -> None:
        self.engine = sql_engine(uri)
        self.shown = shown(self.engine)
        self.prefix = prefix
        self.metadata = state_metadata(prefix)
        self._ready = False
        if legacy is not None and legacy.is_file() and not has_state(self.engine, prefix):
            migrate(self.engine, self.metadata, prefix, legacy)  # checks again under the lock
            self._ready = True

    def table(self, name: str) -> sa.Table:
        """The declared table ``name`` (without the prefix)."""
        return self.metadata.tables[f"{self.prefix}{name}"]

    def has(self, name: str) -> bool:
        """Whether table ``name`` exists yet (reads before the first write find nothing)."""
        return self._ready or sa.inspect(self.engine).has_table(self.table(name).name)

    def ensure(self) -> None:
        """Create missing tables and add missing columns (once per instance; additive, never drops)."""
        if not self._ready:
            migrate(self.engine, self.metadata, self.prefix, None)
            self._ready = True

    def insert(self, table: sa.Table):  # noqa: ANN201 - the dialect's INSERT, with ON CONFLICT
        return (postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert)(table)

    def same_database(self, uri: str) -> bool:
        """Whether ``uri`` names this store's database (the score history need not be copied there)."""
        other = sa.engine.make_url(engine_url(uri)) if "://" in uri else None
        if other is None or other.get_backend_name() != self.engine.dialect.name:
            return False
        if self.engine.dialect.name == "sqlite":
            return bool(other.database) and Path(other.database).resolve() == Path(self.engine.url.database).resolve()
        keys = ("host", "port", "database", "username")
        return all(getattr(other, k) == getattr(self.engine.url, k) for k in keys)

    def close(self) -> None:
        self.engine.dispose()


def state_store(settings: Settings) -> Store:
    """The product store of ``settings`` (``EXPANSION_STORE_URI``), taking over ``<home>/crm.db``'s state once."""
    return Store(settings.state_uri, legacy=settings.home.resolve() / LEGACY_FILE)


def open_store(where: str | Store | Settings, *, prefix: str = "") -> Store:
    """A :class:`Store` from a URI (tests, tools), an open store, or settings (:func:`state_store`)."""
    if isinstance(where, Store):
        return where
    if isinstance(where, Settings):
        return state_store(where)
    return Store(where, prefix=prefix)


class OnStore:
    """What every store class of the product stands on: the product store opened from a URI (tests, tools), an
    open store or settings, its engine and declared tables; subclasses name the tables they use."""

    def __init__(self, where: str | Store | Settings, *, table_prefix: str = "") -> None:
        self.store = open_store(where, prefix=table_prefix)
        self.engine, self.metadata = self.store.engine, self.store.metadata

    def close(self) -> None:
        self.store.close()

    def create_tables(self) -> None:
        """Create what is missing (tables, columns) before the first write; additive, never drops."""
        self.store.ensure()
