"""Service commands: ``serve`` starts the scoring API, ``deploy`` imports champions into the BentoML store."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from serving.cli.common import EXIT_REGISTRY, console, err_console, fail, settings

EXIT_NO_KEY = 3
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
STOP_GRACE_SECONDS = 20.0
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the server gets SIGTERM when this process dies, even by SIGKILL (no orphan keeps the port)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _signal_group(pgid: int, signum: int) -> bool:
    """Send ``signum`` to a process group; False when no process of it is left."""
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        return False
    return True


def run_server(cmd: list[str], env: dict[str, str], grace_seconds: float = STOP_GRACE_SECONDS) -> int:
    """Run the server ``cmd`` until it exits, or until this process is asked to stop; returns its exit code.

    The server runs in its own process group (it and every worker it starts). SIGTERM,
    SIGINT or SIGHUP here is forwarded to that group as SIGTERM, and this function waits
    for the group to end; whatever is still running ``grace_seconds`` later is killed. So
    stopping ``expansion serve`` frees the port, where running the server as a plain
    child left it answering after the parent was gone.
    """
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, preexec_fn=_die_with_parent)  # noqa: PLW1509
    stop_at: list[float] = []

    def forward(signum: int, _frame: object) -> None:
        if not stop_at:
            stop_at.append(time.monotonic() + grace_seconds)
        _signal_group(proc.pid, signal.SIGTERM)

    previous = {s: signal.signal(s, forward) for s in STOP_SIGNALS}
    try:
        while proc.poll() is None:
            if stop_at and time.monotonic() > stop_at[0]:
                _signal_group(proc.pid, signal.SIGKILL)
            try:
                proc.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                pass
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        _stop_group(proc, grace_seconds)
    code = proc.returncode
    return 128 - code if code < 0 else code


def _stop_group(proc: subprocess.Popen, grace_seconds: float) -> None:
    """Leave no process of the server's group behind (workers outliving their arbiter, or an interrupted wait)."""
    if proc.poll() is None:
        _signal_group(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace_seconds)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    deadline = time.monotonic() + grace_seconds
    while _signal_group(proc.pid, 0) and time.monotonic() < deadline:
        time.sleep(0.1)
    _signal_group(proc.pid, signal.SIGKILL)


def serve(
    host: Annotated[str, typer.Option("--host", help="Interface to bind (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port.")] = 3000,
    insecure: Annotated[bool, typer.Option("--insecure", help="Allow running without EXPANSION_API_KEY (local use only).")] = False,
    features: Annotated[Path | None, typer.Option("--features", help="Feature snapshot Parquet to serve (default: <home>/serving/snapshot.parquet).")] = None,
) -> None:
    """Start the BentoML scoring service (Authorization: Bearer $EXPANSION_API_KEY on every non-health call)."""
    from features.config import api_key_problem

    problem = api_key_problem(settings().api_key, insecure)
    if problem:
        err_console.print(f"[red]error:[/red] {problem}", highlight=False)
        raise typer.Exit(EXIT_NO_KEY)
    # a registry that is down must not hold start-up for MLflow's default minutes of retries:
    # the service starts from the deployed models (or the baseline) and /refresh asks again
    env = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10", **os.environ,
           "OMP_NUM_THREADS": "1", "MLFLOW_DISABLE_TELEMETRY": "true"}
    if insecure:
        env["EXPANSION_INSECURE"] = "1"
    if features is not None:
        env["EXPANSION_SNAPSHOT_PATH"] = str(features.resolve())
    cmd = [sys.executable, "-m", "bentoml", "serve", "serving.api.service:ExpansionScoring", "--host", host, "--port", str(port)]
    raise typer.Exit(run_server(cmd, env))


def deploy(
    features: Annotated[Path | None, typer.Option("--features", help="Publish this feature Parquet as the service's snapshot.")] = None,
    models: Annotated[bool, typer.Option("--models/--no-models", help="Import the MLflow champions into the BentoML store.")] = True,
) -> None:
    """Import the MLflow `champion` models into the BentoML model store and/or publish a feature snapshot.

    The store is ``<home>/bentoml/models`` (``$BENTOML_HOME/models`` when that is set). Both
    champions are stored first and then named in ``<home>/serving/deployment.json`` by one
    rename: a deploy that stops part-way leaves the previous deployment whole.
    """
    from serving.scoring.models import deploy_champions, store_folder
    from training.registry import RegistryMissing

    cfg = settings()
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    if models:
        try:
            deployed = deploy_champions(cfg)
        except RegistryMissing as exc:
            fail(f"{exc}: nothing deployed, the previous deployment stays", EXIT_REGISTRY)
        for name, model in deployed.items():
            if model is None:
                err_console.print(f"[yellow]no champion[/yellow] registered for {name}: the service will use the baseline")
                continue
            console.print(f"deployed {name} v{model.version} (run {model.run_id}, registry {model.registry_uri}) "
                          f"into {store_folder(cfg) or 'the BENTOML_HOME store'}")
    if features is not None:
        from serving.api.deployment import publish_snapshot_file

        if not features.is_file():
            fail(f"--features {features}: no such file")
        target = publish_snapshot_file(features, cfg)  # a rename: a running service never reads half a file
        console.print(f"published feature snapshot {target}")
    console.print("running services pick this up on `POST /refresh`, or by themselves within "
                  f"{cfg.refresh_seconds:g} s (EXPANSION_REFRESH_SECONDS)")


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.command("deploy")(deploy)
