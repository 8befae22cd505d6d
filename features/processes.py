"""Whether a process still runs on this host: how a job's leftovers (temporary folders, MLflow runs, deploy
staging) are told from those of a job that is still working."""

from __future__ import annotations

import os


def pid_alive(pid: int, *, own: bool = True) -> bool:
    """True while process ``pid`` exists on this host (one we may not signal exists too).

    ``own``: what this process's own pid counts as. A caller that meets its own pid on something a
    *previous* call of the same process left (a folder from an import that failed earlier in the same
    session) passes ``own=False``, so that the leftover counts as abandoned.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return own or pid != os.getpid()
