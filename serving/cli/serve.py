"""Service commands: ``serve`` starts the scoring API, ``deploy`` imports champions into the BentoML store."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from serving.cli.common import console, err_console, fail, settings

EXIT_NO_KEY = 3


def serve(
    host: Annotated[str, typer.Option("--host", help="Interface to bind (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port.")] = 3000,
    insecure: Annotated[bool, typer.Option("--insecure", help="Allow running without EXPANSION_API_KEY (local use only).")] = False,
    features: Annotated[Path | None, typer.Option("--features", help="Feature snapshot Parquet to serve (default: <home>/serving/snapshot.parquet).")] = None,
) -> None:
    """Start the BentoML scoring service (Authorization: Bearer $EXPANSION_API_KEY on every non-health call)."""
    if not settings().api_key and not insecure:
        err_console.print("[red]error:[/red] EXPANSION_API_KEY is not set; set it, or pass --insecure for local use only")
        raise typer.Exit(EXIT_NO_KEY)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MLFLOW_DISABLE_TELEMETRY": "true"}
    if insecure:
        env["EXPANSION_INSECURE"] = "1"
    if features is not None:
        env["EXPANSION_SNAPSHOT_PATH"] = str(features.resolve())
    cmd = [sys.executable, "-m", "bentoml", "serve", "serving.service:ExpansionScoring", "--host", host, "--port", str(port)]
    raise typer.Exit(subprocess.call(cmd, env=env))


def deploy(
    features: Annotated[Path | None, typer.Option("--features", help="Publish this feature Parquet as the service's snapshot.")] = None,
    models: Annotated[bool, typer.Option("--models/--no-models", help="Import the MLflow champions into the BentoML store.")] = True,
) -> None:
    """Import the MLflow `champion` models into the BentoML model store and/or publish a feature snapshot."""
    from serving.models import save_to_store
    from training.names import MODEL_NAMES
    from training.registry import load_champion

    cfg = settings()
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    if models:
        for name in MODEL_NAMES:
            model = load_champion(name, cfg)
            if model is None:
                err_console.print(f"[yellow]no champion[/yellow] registered for {name}: the service will use the baseline")
                continue
            console.print(f"deployed {name} version {model.version} as {save_to_store(model)}")
    if features is not None:
        if not features.is_file():
            fail(f"--features {features}: no such file")
        target = cfg.snapshot_file
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".parquet.tmp")
        shutil.copyfile(features, tmp)
        os.replace(tmp, target)  # a rename: a running service never reads half a file
        console.print(f"published feature snapshot {target}")


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.command("deploy")(deploy)
