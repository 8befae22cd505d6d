"""Every benchmark of this folder, one command, and a comparison of two such passes (before and after a change).

    python benchmarks/run_all.py --out before.json [--repeat 2] [--append] [--only NAME ...] [--work DIR]
    python benchmarks/run_all.py --compare before.json after.json [--md compare.md]

The first form runs each ``bench_*.py`` and ``check_*.py`` of this folder as a subprocess, with the fixed
command listed in ``run_all_entries.py`` (the smallest sizes its flags allow), with this interpreter and the
checkout's root as working directory, reads its headline figures (mostly ratios against the reference each
script measures in the same run) and writes ``--out`` (JSON) and the same name with ``.md`` (a table).
``--repeat N`` runs the whole pass N times, ``--append`` adds the passes to an existing file: several passes
on the same tree measure the run-to-run spread the comparison judges by. Only scripts are called, never the
project's modules, so the same runner works on trees whose module layout differs.

The second form compares two files figure by figure (see ``run_all_compare.py``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from run_all_compare import compare, compare_markdown, runs_markdown
from run_all_entries import ENTRIES, Entry

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
    return done.stdout.strip()


def unlisted() -> list[str]:
    """Benchmark scripts of this folder that have no entry: a new benchmark must be listed to be run."""
    listed = {e.script for e in ENTRIES}
    return sorted(p.name for p in [*HERE.glob("bench_*.py"), *HERE.glob("check_*.py")] if p.name not in listed)


def run_entry(entry: Entry, work: Path) -> dict:
    """Run one benchmark in its own process group (ended whole on timeout) and read its figures."""
    args = entry.args(work)
    command = [sys.executable, str(HERE / entry.script), *args]
    load_before, started = _load(), time.perf_counter()
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"})
    try:
        stdout, stderr = proc.communicate(timeout=entry.timeout)
        returncode = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        returncode = f"timeout after {entry.timeout} s"
    seconds = time.perf_counter() - started
    figures, parse_error = read_figures(entry, stdout, work)
    return {"command": " ".join(["python", f"benchmarks/{entry.script}", *[_shown(a, work) for a in args]]),
            "measures": entry.measures, "returncode": returncode, "seconds": round(seconds, 1),
            "load_before": load_before, "load_after": _load(), "figures": figures, "parse_error": parse_error,
            "stdout": stdout, "stderr_tail": stderr.splitlines()[-15:] if returncode else []}


def read_figures(entry: Entry, stdout: str, work: Path) -> tuple[dict, str | None]:
    try:
        return {k: {"value": v, "kind": kind} for k, (v, kind) in entry.parse(stdout, work).items()}, None
    except Exception as exc:  # noqa: BLE001 - a script whose output changed: say so, keep the pass going
        return {}, f"{type(exc).__name__}: {exc}"


def reparse(doc: dict) -> None:
    """Read every stored output again (after a parser was fixed). Figures read from a CSV need the pass's work
    folder: a pass whose folder is gone keeps the figures it had when nothing can be read now."""
    by_name = {e.name: e for e in ENTRIES}
    for run in doc["runs"]:
        for name, result in run["entries"].items():
            figures, error = read_figures(by_name[name], result["stdout"], Path(run["work"]))
            if figures or Path(run["work"]).exists():
                result["figures"], result["parse_error"] = figures, error


def _shown(arg: str, work: Path) -> str:
    return arg.replace(str(work), "<work>")


def run_pass(entries: list[Entry], work: Path, save: Callable[[dict], None] = lambda run: None) -> dict:
    """One pass over ``entries``; ``save(run)`` after each, so a long pass can be read (and is kept) as it goes."""
    started = dt.datetime.now(dt.UTC)
    out = {"started": started.isoformat(timespec="seconds"), "commit": _git("rev-parse", "HEAD"),
           "dirty": bool(_git("status", "--porcelain", "--untracked-files=no")), "python": sys.executable,
           "work": str(work), "load_before": _load(), "entries": {}}
    for entry in entries:
        print(f"[{dt.datetime.now(dt.UTC):%H:%M:%S}] {entry.name}: {entry.script}", flush=True)
        result = run_entry(entry, work)
        out["entries"][entry.name] = result
        status = "ok" if result["returncode"] == 0 else f"FAILED ({result['returncode']})"
        print(f"    {status} in {result['seconds']:.0f} s, {len(result['figures'])} figures, load "
              f"{result['load_after'][0]}", flush=True)
        save(out)
    out["load_after"], out["seconds"] = _load(), round((dt.datetime.now(dt.UTC) - started).total_seconds(), 1)
    return out


def _saver(doc: dict, out: Path) -> Callable[[dict], None]:
    """A function writing ``doc`` (JSON and table) with ``run`` as its newest pass, replaced as the pass grows."""
    earlier = list(doc["runs"])

    def save(run: dict) -> None:
        doc["runs"] = [*earlier, run]
        out.write_text(json.dumps(doc, indent=1) + "\n")
        out.with_suffix(".md").write_text(runs_markdown(doc) + "\n")

    return save


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="JSON file of the passes (the table goes beside it as .md)")
    parser.add_argument("--repeat", type=int, default=1, help="whole passes to run")
    parser.add_argument("--append", action="store_true", help="add the passes to the runs already in --out")
    parser.add_argument("--only", nargs="+", help="entry names to run (default: all)")
    parser.add_argument("--work", type=Path, help="folder for generated companies (default: a fresh temporary one)")
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("BEFORE", "AFTER"))
    parser.add_argument("--md", type=Path, help="compare mode: also write the table here")
    parser.add_argument("--reparse", action="store_true", help="read the figures of --out's stored outputs again")
    args = parser.parse_args()
    if args.reparse:
        doc = json.loads(args.out.read_text())
        reparse(doc)
        args.out.write_text(json.dumps(doc, indent=1) + "\n")
        args.out.with_suffix(".md").write_text(runs_markdown(doc) + "\n")
        return 0
    if args.compare:
        before, after = (json.loads(p.read_text()) for p in args.compare)
        text = compare_markdown(compare(before, after), before, after)
        print(text)
        if args.md:
            args.md.write_text(text + "\n")
        return 0
    if not args.out:
        parser.error("--out or --compare is required")
    missing = unlisted()
    if missing:
        parser.error(f"benchmark scripts without an entry in run_all_entries.py: {', '.join(missing)}")
    names = {e.name for e in ENTRIES}
    if args.only and not set(args.only) <= names:
        parser.error(f"unknown entries {sorted(set(args.only) - names)}; known: {sorted(names)}")
    entries = [e for e in ENTRIES if not args.only or e.name in args.only]
    doc = json.loads(args.out.read_text()) if args.append and args.out.exists() else {"runs": []}
    for _ in range(args.repeat):
        work = args.work or Path(tempfile.mkdtemp(prefix="run_all_"))
        work.mkdir(parents=True, exist_ok=True)
        save = _saver(doc, args.out)
        try:
            save(run_pass(entries, work, save))
        finally:
            if not args.work:
                shutil.rmtree(work, ignore_errors=True)
    failed = [n for r in doc["runs"][-args.repeat:] for n, e in r["entries"].items() if e["returncode"] != 0]
    print(f"wrote {args.out} and {args.out.with_suffix('.md')}" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
