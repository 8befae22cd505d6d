"""Publishing what serves: the feature snapshot the service looks accounts up in, and what a rollback changes.

``expansion deploy`` and ``expansion retrain --deploy`` call these; so can a notebook.
The snapshot is written beside its target (``<name>.<pid>.tmp``, 0600) and renamed over it,
so a running service never reads half a file (it reloads the new one on its own, or on
``POST /refresh``); a publish killed half-way leaves a temporary file the next one removes.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from features.config import Settings, private_folder
from training.registry import pid_alive


def clean_stray_files(target: Path) -> list[Path]:
    """Remove the temporary files killed publishes of ``target`` left beside it (``<name>.<pid>.tmp`` of a process
    that is gone, and the pid-less ``<name>.tmp`` of older releases); returns them."""
    removed = []
    for stray in target.parent.glob(f"{target.name}*.tmp") if target.parent.is_dir() else ():
        middle = stray.name.removeprefix(target.name).removesuffix(".tmp").strip(".")
        if middle and (not middle.isdigit() or pid_alive(int(middle))):
            continue
        stray.unlink(missing_ok=True)
        removed.append(stray)
    return removed


def _private_tmp(target: Path) -> Path:
    """A temporary file beside ``target``, named after this process, created 0600 under a 0700 folder."""
    private_folder(target.parent)
    clean_stray_files(target)
    tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    os.close(os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600))
    return tmp


def publish_snapshot(frame: pd.DataFrame, settings: Settings) -> Path:
    """Write the newest snapshot of a feature frame as the service's snapshot file (0600); returns its path."""
    if not len(frame):
        raise ValueError("feature frame: no rows, so no snapshot to publish")
    newest = frame[frame["as_of"] == frame["as_of"].max()]
    target = settings.snapshot_file
    tmp = _private_tmp(target)
    newest.to_parquet(tmp, index=False)
    os.replace(tmp, target)
    return target


def publish_snapshot_file(path: Path, settings: Settings) -> Path:
    """Copy a feature snapshot Parquet file over the service's snapshot file (0600), by rename; returns its path."""
    target = settings.snapshot_file
    tmp = _private_tmp(target)
    shutil.copyfile(path, tmp)
    os.replace(tmp, target)
    return target


@dataclass(frozen=True)
class RollbackPlan:
    """Where a champion change takes effect, in words an operator can act on."""

    model: str
    from_version: str
    to_version: str
    registry: str
    deployed_version: str | None  # what the BentoML store's deployment names for this model, if any
    refresh_seconds: float = 0.0  # EXPANSION_REFRESH_SECONDS of the services (0: only on POST /refresh)

    def lines(self) -> list[str]:
        """One line per place that serves models: the registry, batch scoring, the store, the service."""
        deployed = (f"the BentoML store still holds the deployed v{self.deployed_version}: run `expansion deploy` so "
                    "a service started from the store (or a bento built from it) serves the new champion"
                    if self.deployed_version is not None and self.deployed_version != self.to_version
                    else "the BentoML store needs no change" if self.deployed_version is not None
                    else "nothing is deployed in the BentoML store")
        return [
            f"registry {self.registry}: {self.model} champion alias moves v{self.from_version} -> v{self.to_version}",
            f"batch scoring (`expansion score`): the next run scores with v{self.to_version} (it asks the registry)",
            f"running services: serve v{self.to_version} after `POST /refresh`"
            + (f", or by themselves within {self.refresh_seconds:g} s (EXPANSION_REFRESH_SECONDS)"
               if self.refresh_seconds > 0 else " (EXPANSION_REFRESH_SECONDS is 0: only then)"),
            deployed,
        ]
