"""How a job fails: typed errors carrying the command's exit code (the CLI maps them; jobs never exit).

Exit codes, the same for every command (docs/operations.md says what to do for each):
0 done; 1 an unexpected error (the traceback is in the log); 2 bad input (data, files,
options); 3 the model registry (unreachable, no such version) or a missing key;
4 ``retrain`` ran but the gate kept the current models (no new champion); 5 ``alerts``
could not deliver every message that was due (kept for the next run, or parked), or
another alerts run holds the lease.
"""

from __future__ import annotations

from collections.abc import Callable

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_INVALID_DATA = 2
EXIT_REGISTRY = 3
EXIT_KEPT = 4
EXIT_UNDELIVERED = 5

#: How a job says what it is doing (the as-of it chose, the models it loaded, progress): one line at a time.
Say = Callable[[str], None]


def quiet(_: str) -> None:
    """The default ``say``: a notebook that wants the lines passes ``print``."""


class JobError(Exception):
    """A job could not do what it was asked; ``exit_code`` is the command's exit status."""

    exit_code = EXIT_ERROR


class InvalidInput(JobError):
    """Bad input: the data, a file or an option (exit 2)."""

    exit_code = EXIT_INVALID_DATA


class RegistryError(JobError):
    """The model registry cannot be asked, or refuses what the job needs (exit 3)."""

    exit_code = EXIT_REGISTRY


class Undelivered(JobError):
    """Messages that were due were not delivered, or another run holds the lease (exit 5)."""

    exit_code = EXIT_UNDELIVERED
