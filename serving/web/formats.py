"""How the pages write values people read: money, percents, enum values, dates and times (template filters).

Nothing from the data is shown raw: ``mid_market`` reads "mid market", ``2027-03-12 00:00:00`` reads
"12 Mar 2027", a float reads with the digits that matter, and every missing marker (None, NaN,
``pd.NA``) reads "–".
"""

from __future__ import annotations

from typing import Any

import pandas as pd

DASH = "–"
#: Words for codes the scorer and the contract use, where replacing ``_`` is not enough.
WORDS = {"nps": "NPS", "csat": "CSAT", "qbr": "QBR", "smb": "SMB", "csm": "CSM"}


def missing(value: Any) -> bool:
    return value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and value != value)


def clean(record: dict[str, Any]) -> dict[str, Any]:
    """A copy of a score record with every missing marker as None (a NaN text is truthy in a template)."""
    return {k: None if missing(v) else v for k, v in record.items()}


def money(value: Any, symbol: str = "$") -> str:
    """Money as people scan it: $1.2M, $35.0k, $900."""
    if missing(value):
        return DASH
    value = float(value)
    for size, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{'-' if value < 0 else ''}{symbol}{abs(value) / size:,.1f}{suffix}"
    return f"{'-' if value < 0 else ''}{symbol}{abs(value):,.0f}"


def pct(value: Any, digits: int = 0) -> str:
    return DASH if missing(value) else f"{float(value):.{digits}f} %"


def signed(value: Any, digits: int = 0) -> str:
    return DASH if missing(value) else f"{float(value):+.{digits}f}"


def number(value: Any, digits: int = 0) -> str:
    return DASH if missing(value) else f"{float(value):,.{digits}f}"


def label(value: Any) -> str:
    """An enum value in words: ``mid_market`` -> "mid market", ``nps`` -> "NPS"."""
    if missing(value):
        return DASH
    text = str(value)
    return WORDS.get(text, text.replace("_", " "))


def day(value: Any) -> str:
    """A date (or a timestamp, of which the date) as "12 Mar 2027"."""
    if missing(value) or value == "":
        return DASH
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError):
        return str(value)
    return f"{stamp.day} {stamp:%b %Y}"


def when(value: Any) -> str:
    """A moment as "12 Mar 2027, 14:05" (UTC)."""
    if missing(value):
        return DASH
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC")
    return f"{stamp.day} {stamp:%b %Y, %H:%M}"


def days_until(value: Any, as_of: Any) -> str:
    """"in 12 days" from the snapshot date."""
    if missing(value) or missing(as_of) or as_of is None:
        return ""
    n = (pd.Timestamp(value).normalize() - pd.Timestamp(str(as_of)[:10])).days
    return "today" if n == 0 else f"in {n} days" if n > 0 else f"{-n} days ago"


FILTERS = {"money": money, "pct": pct, "signed": signed, "number": number, "label": label, "day": day,
           "when": when, "days_until": days_until}
