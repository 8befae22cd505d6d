"""Typing raw connector columns: timestamps in mixed formats, ``TRUE``/``true`` booleans, numbers, JSON metadata.

CSV exports arrive as text and database tables arrive typed; every parser accepts both.
"""

from __future__ import annotations

import functools
import json

import numpy as np
import pandas as pd

from features.importers.errors import Problems

#: ISO 4217 codes and the power of ten of their smallest unit (Stripe amounts are in that unit).
CURRENCY_EXPONENT: dict[str, int] = {
    **{c: 2 for c in ("usd", "eur", "gbp", "cad", "aud", "nzd", "chf", "sek", "nok", "dkk", "pln", "czk", "huf",
                       "sgd", "hkd", "inr", "brl", "mxn", "zar", "ils", "aed", "cny", "ron", "bgn", "try", "thb",
                       "myr", "php", "idr", "sar", "twd")},
    **{c: 0 for c in ("jpy", "krw", "vnd", "clp", "isk", "ugx", "xaf", "xof", "pyg", "rwf")},
    **{c: 3 for c in ("bhd", "jod", "kwd", "omr", "tnd")},
}

_FAR_FUTURE = pd.Timestamp("2200-01-01")


def require_columns(problems: Problems, table: str, frame: pd.DataFrame, columns: tuple[str, ...]) -> bool:
    """Record every column of ``columns`` that ``frame`` lacks; True when all are there."""
    missing = [c for c in columns if c not in frame.columns]
    for c in missing:
        problems.add(table, c, "required column is missing")
    return not missing


def text(series: pd.Series) -> pd.Series:
    """Strings with empty values as missing."""
    out = series.astype("string").str.strip()
    return out.mask(out == "")


def ident(series: pd.Series) -> pd.Series:
    """Ids as given (spaces kept: an id is exact), empty or blank values as missing."""
    out = series.astype("string")
    return out.mask(out.str.strip() == "")


def timestamps(series: pd.Series) -> pd.Series:
    """Naive UTC timestamps (microseconds) from ISO text in mixed precisions, epoch seconds or milliseconds, or typed values.

    Dates past 2200 (``9999-12-31`` and ``2050``-style "open" markers are handled by the caller) become NaT
    only when unparseable; values with a time zone are converted to UTC and made naive.
    """
    if pd.api.types.is_datetime64_any_dtype(series):
        out = series
        if getattr(out.dt, "tz", None) is not None:
            out = out.dt.tz_convert("UTC").dt.tz_localize(None)
        return out.astype("datetime64[us]")
    values = text(series)
    numeric = pd.to_numeric(values, errors="coerce")
    is_epoch = numeric.notna() & values.str.fullmatch(r"\d{9,10}(\.0*)?").fillna(False).astype(bool)  # epoch seconds
    is_ms = numeric.notna() & values.str.fullmatch(r"\d{12,13}(\.0*)?").fillna(False).astype(bool)  # epoch ms (HubSpot's v2 API)
    out = pd.Series(pd.NaT, index=series.index, dtype="datetime64[us]")
    if is_epoch.any():
        out[is_epoch] = pd.to_datetime(numeric[is_epoch], unit="s").astype("datetime64[us]")
    if is_ms.any():
        out[is_ms] = pd.to_datetime(numeric[is_ms], unit="ms").astype("datetime64[us]")
    rest = values.notna() & ~is_epoch & ~is_ms
    if rest.any():
        capped = values[rest].str.replace(r"^(9999|[3-9]\d{3})-", "2199-", regex=True)
        parsed = pd.to_datetime(capped, format="mixed", errors="coerce", utc=True)
        out[rest] = parsed.dt.tz_localize(None).astype("datetime64[us]")
    return out


def is_open_end(series: pd.Series) -> pd.Series:
    """True where a validity end means "still current" (null, or a far-future marker such as 9999-12-31 or 2050-01-01)."""
    ts = timestamps(series)
    return ts.isna() | (ts >= pd.Timestamp("2049-12-31"))


def booleans(series: pd.Series) -> pd.Series:
    """Nullable booleans from ``TRUE``/``true``/``t``/``1`` and their opposites, or typed values."""
    if pd.api.types.is_bool_dtype(series):
        return series.astype("boolean")
    values = text(series).str.lower()
    out = pd.Series(pd.NA, index=series.index, dtype="boolean")
    out[values.isin(["true", "t", "1", "yes", "y"])] = True
    out[values.isin(["false", "f", "0", "no", "n"])] = False
    return out


_DECIMAL_COMMA = r"[-+]?\d+,\d{1,2}"  # 12,00 or 1200,5: a comma before one or two digits is a decimal point
_THOUSANDS = r"[-+]?\d{1,3}(,\d{3})+(\.\d+)?"  # 1,200 or 12,000.50


def _number_text(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """(text rewritten to parse, mask of values whose comma was read as a decimal point)."""
    comma = values.str.fullmatch(_DECIMAL_COMMA).fillna(False).astype(bool)
    thousands = values.str.fullmatch(_THOUSANDS).fillna(False).astype(bool)
    fixed = values.mask(comma, values.str.replace(",", ".", regex=False))
    fixed = fixed.mask(thousands, values.str.replace(",", "", regex=False))
    return fixed, comma


def numbers(series: pd.Series) -> pd.Series:
    """Floats from numeric text or typed numbers (missing stays missing); ``12,00`` is 12.0 and ``1,200`` is 1200.

    Use :func:`counted_numbers` where a value that does not parse must be counted."""
    if pd.api.types.is_numeric_dtype(series):
        return pd.to_numeric(series, errors="coerce").astype("Float64")
    fixed, _ = _number_text(text(series))
    return pd.to_numeric(fixed, errors="coerce").astype("Float64")


def counted_numbers(problems: Problems, table: str, column: str, series: pd.Series, ids: pd.Series,
                    error: bool = False) -> pd.Series:
    """:func:`numbers`, with every value that is not a number (read as missing) and every decimal comma counted in the
    ledger with its first ids; with ``error`` a value that is not a number is a problem instead."""
    if pd.api.types.is_numeric_dtype(series):
        return numbers(series)
    values = text(series)
    fixed, comma = _number_text(values)
    out = pd.to_numeric(fixed, errors="coerce").astype("Float64")
    bad = values.notna() & out.isna()
    if bad.any():
        shown = ", ".join(sorted(set(values[bad].astype(str)))[:3])
        if error:
            problems.check(table, column, f"not a number ({shown})", bad, ids)
        else:
            problems.ledger.coerce(table, column, f"not a number ({shown}), read as missing", ids[bad])
    problems.ledger.coerce(table, column, "decimal comma read as a decimal point", ids[comma])
    return out


@functools.lru_cache(maxsize=1 << 18)
def _parse_json(value: str) -> dict | None:
    try:
        obj = json.loads(value)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def json_field(series: pd.Series, key: str) -> pd.Series:
    """The value of ``key`` in a JSON object per row (metadata, properties); missing when absent or unparseable.

    Each distinct text is parsed once (metadata repeats a lot, and several keys are read from one column).
    """
    codes, uniques = pd.factorize(series, use_na_sentinel=True)

    def one(value: object) -> object:
        obj = value if isinstance(value, dict) else _parse_json(str(value))
        if obj is None or obj.get(key) in (None, ""):
            return pd.NA
        return str(obj[key])

    values = np.array([one(v) for v in uniques] + [pd.NA], dtype=object)
    return pd.Series(values[codes], index=series.index, dtype="string")


def field_or_metadata(frame: pd.DataFrame, name: str, metadata_column: str = "metadata", strip: bool = True) -> pd.Series | None:
    """A column ``name``, or ``<column>.<key>`` read from a JSON column (or its flattened ``<column>_<key>``); None when
    neither exists."""
    if "." in name:
        column, key = name.split(".", 1)
        flat = f"{column}_{key}".replace(".", "_").lower()
        if column in frame.columns:
            return json_field(frame[column], key)
        if flat in frame.columns:  # the object flattened by the connector (dlt: metadata__key) or the layout layer
            return text(frame[flat]) if strip else ident(frame[flat])
        return None
    if name in frame.columns:
        return text(frame[name]) if strip else ident(frame[name])
    return None


def minor_unit_divisor(problems: Problems, table: str, column: str, currency: pd.Series) -> pd.Series:
    """10 ** exponent per row from its ISO currency code; unknown codes are recorded as a problem."""
    codes = text(currency).str.lower()
    known = codes.isin(list(CURRENCY_EXPONENT))
    bad = codes.notna() & ~known
    if bad.any():
        names = ", ".join(sorted(set(codes[bad].dropna())))
        problems.add(table, column, f"unknown currency ({names})", int(bad.sum()))
    exponent = codes.map(CURRENCY_EXPONENT).astype("Float64").fillna(2)
    return 10.0 ** exponent
