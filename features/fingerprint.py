"""Fingerprints of what a stored feature snapshot was computed from: the definitions and the raw rows up to its as-of.

``definitions`` hashes the registry's column names, the source of every ``features`` module
the build imports, the settings the features read and the engine versions: any change to
one of them means every stored snapshot was computed by another definition.

``raw_digests`` is one cheap pass per table, in the engine: each row's hash, summed per day
of the row's date (its first event-time column; ``customer_since`` for accounts), then
accumulated up to each as-of. A snapshot at ``t`` reads only rows dated on or before ``t``
(the point-in-time guarantee the leakage tests check), so a row changed, added or removed
on day ``d`` changes the digests of exactly the as-ofs at or after ``d``. Tables without a
date (products, plan features) and rows without one count for every as-of. A row whose
later columns change (an opportunity closing, a subscription period ending) counts from its
first date: it invalidates more than strictly needed, never less.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.util
import json
import re
from collections.abc import Callable, Iterable
from pathlib import Path

import duckdb
import ibis
import pandas as pd
from ibis.expr.types import Table

from features.config import Settings
from features.contract import TABLES
from features.registry import feature_names, signal_names

#: Settings the feature definitions read (``settings.<name>`` in the modules the build imports);
#: the labels' horizon is not one: labels are computed afresh on every build, never stored.
FEATURE_SETTINGS = ("api_feature_pattern", "quota_alert_pct", "whitespace_cap_multiple", "opportunity_stages")
#: Where the definitions start: the build and every ``features`` module it imports, transitively.
ROOT_MODULE = "features.build"
#: Modules whose source is not a definition: the settings' values that matter are hashed instead.
NOT_DEFINITIONS = ("features.config",)
#: The date of a row of a table without an event-time column, when it has one.
ROW_DATES = {"accounts": "customer_since"}
#: An import statement's first line, and the ``features`` modules it names (a name in a comment on
#: that line counts too: that only hashes one module more).
IMPORT_LINE = re.compile(r"^[ \t]*(?:from|import)[ \t].*$", re.M)
FEATURES_MODULE = re.compile(r"\bfeatures(?:\.\w+)+")


def feature_modules(root: str = ROOT_MODULE) -> dict[str, Path]:
    """The ``features`` modules ``root`` imports, transitively (itself included), by name."""
    found: dict[str, Path] = {}
    todo = [root]
    while todo:
        name = todo.pop()
        spec = importlib.util.find_spec(name)
        if name in found or spec is None or spec.origin is None:
            continue
        found[name] = Path(spec.origin)
        for line in IMPORT_LINE.findall(found[name].read_text()):  # a regex: ast.parse cost ~0.1 s per job
            todo.extend(FEATURES_MODULE.findall(line))
    return dict(sorted(found.items()))


def definitions(settings: Settings, signals: bool = False) -> str:
    """The fingerprint of the feature definitions a snapshot is computed by (hex)."""
    digest = hashlib.sha256()
    names = feature_names() + (signal_names() if signals else [])
    values = {name: getattr(settings, name) for name in FEATURE_SETTINGS}
    versions = {"ibis": ibis.__version__, "duckdb": duckdb.__version__, "pandas": pd.__version__}
    digest.update(json.dumps([names, values, versions], default=str, sort_keys=True).encode())
    for name, path in feature_modules().items():
        if name not in NOT_DEFINITIONS:
            digest.update(name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def row_date(name: str) -> str | None:
    """The column that dates a row of table ``name`` (None: the table is undated)."""
    table = TABLES[name]
    return table.event_time[0] if table.event_time else ROW_DATES.get(name)


def daily_digests(table: Table, name: str) -> pd.DataFrame:
    """``day, n, lo, hi`` per day of the rows' date (NaT for undated rows): count and sums of each row's hash."""
    cols = [c for c in TABLES[name].column_names if c in table.columns]
    hashed = table.mutate(_h=ibis.struct({c: table[c] for c in cols}).hash())
    date_col = row_date(name)
    day = hashed[date_col].cast("date") if date_col else ibis.null("date")
    out = hashed.group_by(day=day).aggregate(
        n=hashed.count(), lo=(hashed["_h"] & 0xFFFFFFFF).sum(), hi=(hashed["_h"] >> 32).sum()
    ).execute()
    out["day"] = pd.to_datetime(out["day"])
    return out


def raw_digests(
    tables: dict[str, Table], as_of_dates: Iterable[dt.date], daily: Callable[[str], pd.DataFrame] | None = None,
) -> dict[dt.date, dict[str, str]]:
    """Per as-of: per canonical table present, a digest of its rows dated on or before that as-of.

    ``daily(name)`` gives a table's ``daily_digests`` (default: computed from ``tables``; the
    snapshot store passes its per-file cache).
    """
    dates = sorted(set(as_of_dates))
    out: dict[dt.date, dict[str, str]] = {d: {} for d in dates}
    for name in sorted(n for n in tables if n in TABLES):
        days = daily(name) if daily else daily_digests(tables[name], name)
        undated = days["day"].isna()
        base = [int(days.loc[undated, c].sum()) for c in ("n", "lo", "hi")]
        dated = days.loc[~undated].sort_values("day")
        sums, i = base, 0
        rows = list(zip(dated["day"], dated["n"], dated["lo"], dated["hi"]))
        for d in dates:
            while i < len(rows) and rows[i][0] <= pd.Timestamp(d):
                sums = [a + int(b) for a, b in zip(sums, rows[i][1:])]
                i += 1
            out[d][name] = hashlib.sha256(repr(tuple(sums)).encode()).hexdigest()[:16]
    return out
