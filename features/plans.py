"""Feature SQL compiled once and kept under the home; every build fills in its own dates.

Ibis takes about 2 s to build and compile the feature table's statements, whatever the
number of snapshot dates: as long as DuckDB then takes to compute one month end of 10,000
accounts. The text of those statements depends on the dates only through a build's
``features.calendar.Calendar``: the calendars' names and four literals. So a plan is compiled
once with stand-in literals and placeholder names (``PLACEHOLDER``), stored in
``Settings.plan_store`` (``<home>/snapshots/plans/<key>.json``), and every build, the first
included, runs its statements with its own prefix and literal text put in, after registering
its own calendars.

The key hashes everything else the text can depend on: the definitions' fingerprint (the
source of every ``features`` module the build imports, the settings they read, the engine
versions), the labels' horizon, each table's name, schema and place, the sqlglot version and
the build's options. In-memory tables that are not calendars (``usage._ages``) are constants:
kept in the plan as data, under fixed names. A plan that cannot be read is compiled again; one
that cannot be written is logged and the build goes on.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import json
import logging
import os
import re
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import ibis
import pyarrow as pa
import sqlglot
from ibis.expr.types import Table

from features.calendar import STAND_INS, Calendar
from features.config import Settings, private_folder
from features.fingerprint import definitions
from features.io import DataSource
from features.portable import memtables_of
from features.spine import to_day

log = logging.getLogger(__name__)

#: Stands for a build's own prefix in a plan's text: its temporary tables and calendars.
PLACEHOLDER = "_features_plan_"
#: Bumped when a plan's layout or meaning changes: older plans are then compiled again.
FORMAT = 1
#: Plans kept per store (the least recently used are removed): one per definition, option set and table layout.
KEEP = 16

#: ``make(calendar, materialize)``: the unordered result table, its intermediates passed through ``materialize``.
Maker = Callable[[Calendar, Callable[[Table], Table]], Table]


class PlanError(RuntimeError):
    """A feature expression cannot be kept as a plan (a definitions bug, not a data problem)."""


@dataclass
class Plan:
    """A build's statements: each step creates temporary table ``<prefix><i>``; ``final`` selects the result."""

    steps: list[str]
    final: str
    constants: dict[str, str]  # name -> Arrow IPC stream, base64

    def constant_tables(self) -> dict[str, pa.Table]:
        return {name: pa.ipc.open_stream(base64.b64decode(data)).read_all() for name, data in self.constants.items()}


def plan_key(backend: ibis.BaseBackend, tables: dict[str, Table], settings: Settings, options: dict) -> str:
    """What a plan's text depends on besides the dates (hex)."""
    places = {name: [_place(backend, t), str(t.schema())] for name, t in sorted(tables.items())}
    # The definitions' fingerprint holds the settings the features read (``fingerprint.FEATURE_SETTINGS``); the labels read the horizon.
    parts = [FORMAT, backend.name, sqlglot.__version__, definitions(settings, options.get("signals", False)),
             settings.horizon_days, places, options]
    return hashlib.sha256(json.dumps(parts, default=str, sort_keys=True).encode()).hexdigest()[:24]


def _place(backend: ibis.BaseBackend, table: Table) -> str:
    """Where a table's rows come from: its name and namespace, or the SQL of an expression over tables."""
    op = table.op()
    namespace = getattr(op, "namespace", None)
    return f"{op.name} in {namespace}" if namespace is not None else str(backend.compile(table))


class PlanStore:
    """Plans as JSON files in ``folder`` (``Settings.plan_store``); ``folder`` None keeps none (every build compiles)."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder

    def load(self, key: str) -> Plan | None:
        if self.folder is None:
            return None
        path = self.folder / f"{key}.json"
        try:
            data = json.loads(path.read_text())
            plan = Plan(list(data["steps"]), str(data["final"]), dict(data["constants"]))
            with contextlib.suppress(OSError):
                os.utime(path)  # used now: the pruning in ``save`` keeps the plans used last
            return plan
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("feature plan %s unreadable (%s): compiling the feature SQL again", key, exc)
            return None

    def save(self, key: str, plan: Plan) -> None:
        if self.folder is None:
            return
        path = self.folder / f"{key}.json"
        tmp = path.with_name(f".{os.getpid()}.{uuid.uuid4().hex}.tmp")
        try:
            private_folder(self.folder)
            tmp.write_text(json.dumps(asdict(plan)))
            tmp.chmod(0o600)
            os.replace(tmp, path)
        except OSError as exc:
            log.warning("feature plan not stored in %s (%s): the next build compiles the feature SQL again", self.folder, exc)
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
        self._prune()

    def _prune(self) -> None:
        """Remove all but the ``KEEP`` plans used last (best effort: another job may be pruning too)."""
        with contextlib.suppress(OSError):
            used = {p: p.stat().st_mtime for p in self.folder.glob("*.json")}
            for old in sorted(used, key=used.get)[:-KEEP]:
                old.unlink(missing_ok=True)


def compile_plan(backend: ibis.BaseBackend, make: Maker, stand_in: Calendar,
                 on_step: Callable[[str, dict[str, pa.Table]], None] = lambda sql, constants: None) -> Plan:
    """Compile ``make`` over a stand-in calendar named with ``PLACEHOLDER``; ``on_step`` hears each step as it is compiled.

    Each step's constants (in-memory tables that are not calendars) come with it; an in-memory
    table named by Ibis (whose name would change every build) is a ``PlanError``.
    """
    steps: list[str] = []
    constants: dict[str, pa.Table] = {}

    def new_constants(table: Table) -> dict[str, pa.Table]:
        found = {}
        for name, data in memtables_of(table).items():
            if name.startswith(PLACEHOLDER) or name in constants:
                continue
            if name.startswith("ibis_"):
                raise PlanError(f"in-memory table {name} has no fixed name: give it one (a calendar's or a constant's)")
            found[name] = constants[name] = data
        return found

    def materialize(table: Table) -> Table:
        steps.append(str(backend.compile(table)))
        on_step(steps[-1], new_constants(table))
        return ibis.table(table.schema(), name=f"{PLACEHOLDER}{len(steps) - 1}")

    final = make(stand_in, materialize)
    new_constants(final)
    encoded = {name: base64.b64encode(_ipc(data)).decode() for name, data in constants.items()}
    return Plan(steps, str(backend.compile(final)), encoded)


def _ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def filler(backend: ibis.BaseBackend, stand_in: Calendar, run: Calendar) -> Callable[[str], str]:
    """The function that turns a plan's text into ``run``'s: its prefix and literals in place of the stand-ins'."""
    swaps = [(PLACEHOLDER, run.prefix)]
    theirs = run.literals()
    for name, (value, kind) in stand_in.literals().items():
        swaps.append((_literal_sql(backend, value, kind), _literal_sql(backend, *theirs[name])))
    pattern = re.compile("|".join(f"(?<![\\w.]){re.escape(old)}(?![\\w.])" if old[-1].isdigit() else re.escape(old)
                                  for old, _ in swaps))
    new = {old: text for old, text in swaps}
    # A stand-in left in another form (a date computed in Python from one, a literal typed otherwise) would
    # silently shift a window: a number near a stand-in's year or day number in the filled text is refused.
    years = range(min(v.year for v in STAND_INS.values()) - 1, max(v.year for v in STAND_INS.values()) + 2)
    days = range(to_day(dt.date(years.start, 1, 1)), to_day(dt.date(years.stop, 1, 1)))

    def fill(sql: str) -> str:
        text = pattern.sub(lambda m: new[m.group(0)], sql)
        for number in re.finditer(r"(?<![\w.])\d{4,6}(?![\w.])", text):
            if int(number.group(0)) in years or int(number.group(0)) in days:
                near = text[max(0, number.start() - 60):number.end() + 20]
                raise PlanError(f"a stand-in date survived in a feature statement ({number.group(0)} in {near!r}): "
                                "build every date literal from the calendar (features.calendar)")
        return text

    return fill


def _literal_sql(backend: ibis.BaseBackend, value: object, kind: str) -> str:
    """How ``backend`` writes a literal of ``value`` in a statement."""
    sql = str(backend.compile(ibis.table({"x": "int64"}, name="t").select(v=ibis.literal(value, type=kind))))
    found = re.search(r"SELECT\s+(.*?)\s+AS\s+\"v\"", sql, re.S)
    if found is None:
        raise PlanError(f"cannot find the literal {value!r} in {sql!r}")
    return found.group(1)


def run_planned(
    source: DataSource, tables: dict[str, Table], settings: Settings, options: dict, make: Maker,
    dates: list[dt.date], data_end: dt.date, order: list[str] | None = None,
) -> pa.Table:
    """``make``'s result over ``dates`` on ``source``'s DuckDB connection, from the stored plan or one compiled now.

    The statements run in order on one worker thread, while this thread compiles the next
    step when there is no plan yet (Ibis spends about as long compiling as DuckDB running).
    Every temporary table and calendar of the run is dropped afterwards, whatever happened.
    """
    backend = source.ibis()
    store, key = PlanStore(settings.plan_store), plan_key(backend, tables, settings, options)
    prefix = f"_features_{uuid.uuid4().hex[:8]}_"
    stand_in, run = (Calendar.of(dates, data_end, PLACEHOLDER, stand_in=True), Calendar.of(dates, data_end, prefix))
    fill = filler(backend, stand_in, run)
    calendars = {name: data for table in run.tables().values() for name, data in memtables_of(table).items()}
    worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="features-engine")
    pending, created = [], []

    def create(name: str, sql: str, constants: dict[str, pa.Table]) -> None:
        register(constants)
        source.con.execute(f'CREATE TEMPORARY TABLE "{name}" AS {sql}')

    def register(tables: dict[str, pa.Table]) -> None:
        # On the connection itself: Ibis' own registration keeps the connection alive until exit (a finalizer
        # per table), which a service building every night would pile up.
        for name, data in tables.items():
            source.con.register(name, data)

    def step(sql: str, constants: dict[str, pa.Table]) -> None:
        created.append(f"{prefix}{len(created)}")
        pending.append(worker.submit(create, created[-1], fill(sql), constants))

    try:
        pending.append(worker.submit(register, calendars))
        plan = None if settings.rebuild_snapshots else store.load(key)
        if plan is None:
            plan = compile_plan(backend, make, stand_in, step)
            store.save(key, plan)
            log.info("feature plan %s compiled and stored (%d steps)", key, len(plan.steps))
        else:
            constants = plan.constant_tables()
            for sql in plan.steps:
                step(sql, constants)
                constants = {}
        for job in pending:
            job.result()  # the first failed step raises here, with the engine's message
        quoted = ", ".join('"' + column + '"' for column in order or ())
        ordered = f" ORDER BY {quoted}" if quoted else ""
        return source.con.sql(f"SELECT * FROM ({fill(plan.final)}){ordered}").to_arrow_table()
    finally:
        worker.shutdown(wait=True, cancel_futures=True)
        for name in created:
            source.con.execute(f'DROP TABLE IF EXISTS "{name}"')
        for name in calendars:
            source.con.unregister(name)
