"""The as-of of a job: given, or the data end; said either way (``DataSource.as_of`` / ``DataSource.checked``)."""

from __future__ import annotations

import datetime as dt

from features.io import DataError, DataSource
from serving.jobs.errors import InvalidInput, Say


def as_of_day(source: DataSource, as_of: dt.date | None, command: str, say: Say) -> dt.date:
    """``as_of``, else the data end (its last complete usage day); InvalidInput when the data has no end."""
    try:
        chosen = source.as_of(as_of)
    except (DataError, ValueError) as exc:
        raise InvalidInput(str(exc)) from exc
    say(chosen.describe(command))
    return chosen.day


def checked_day(source: DataSource, as_of: dt.date | None, command: str, say: Say) -> dt.date:
    """``DataSource.checked``: the as-of (said before the check), then the contract; InvalidInput naming what is wrong
    (its cause a ``features.io.ContractError`` listing every violation)."""
    try:
        return source.checked(as_of, on_as_of=lambda chosen: say(chosen.describe(command))).day
    except (DataError, ValueError) as exc:
        raise InvalidInput(str(exc)) from exc
