"""Tables of ``run_all.py`` passes, and the comparison of a before file with an after file.

The verdict per figure is judged against the run-to-run spread measured on the same tree, never against a
tolerance chosen in advance:

* a figure equal in every pass of both files is ``same``; one equal in every before pass (at least two, so
  it is deterministic there) and different after is ``differs`` whatever its size;
* otherwise the noise is the larger range (max - min) of the figure over the passes of either file; the
  figure is ``within noise`` when the medians of the two sides differ by no more than that range, and
  ``higher beyond spread`` / ``lower beyond spread`` when they differ by more. With one pass per side there
  is no spread to judge by: ``not judged`` (run at least two passes on one side).

With two or three passes a range underestimates the noise, so a verdict beyond spread says "look again"
(re-run both sides), not "regressed"; a figure within noise is within what the same tree did itself.
"""

from __future__ import annotations

import statistics


def _values(doc: dict) -> dict[tuple[str, str], list[float]]:
    out: dict[tuple[str, str], list[float]] = {}
    for run in doc["runs"]:
        for name, entry in run["entries"].items():
            for figure, f in entry["figures"].items():
                out.setdefault((name, figure), []).append(f["value"])
    return out


def _kinds(*docs: dict) -> dict[tuple[str, str], str]:
    return {(n, k): f["kind"] for d in docs for r in d["runs"] for n, e in r["entries"].items()
            for k, f in e["figures"].items()}


def _equal(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))


def verdict(before: list[float], after: list[float]) -> tuple[str, float | None]:
    """(verdict, the noise range used) for one figure's values on each side."""
    if not before or not after:
        return ("missing before" if not before else "missing after"), None
    if all(_equal(v, before[0]) for v in before + after):
        return "same", 0.0
    if len(before) >= 2 and all(_equal(v, before[0]) for v in before):
        return "differs (the same in every before pass)", 0.0
    noise = max(max(before) - min(before), max(after) - min(after))
    if noise == 0:
        return "not judged: one pass per side, no spread measured", None
    gap = statistics.median(after) - statistics.median(before)
    if abs(gap) <= noise:
        return "within noise", noise
    return ("higher beyond spread" if gap > 0 else "lower beyond spread"), noise


def compare(before: dict, after: dict) -> list[dict]:
    b, a, kinds = _values(before), _values(after), _kinds(before, after)
    rows = []
    for key in sorted(set(b) | set(a), key=lambda k: (k[0], k[1])):
        vb, va = b.get(key, []), a.get(key, [])
        judged, noise = verdict(vb, va)
        mb, ma = (statistics.median(vb) if vb else None), (statistics.median(va) if va else None)
        rows.append({"entry": key[0], "figure": key[1], "kind": kinds.get(key, "?"), "before": vb, "after": va,
                     "ratio": ma / mb if mb and ma is not None else None, "noise": noise, "verdict": judged})
    return rows


def _fmt(values: list[float]) -> str:
    return " / ".join(f"{v:.4g}" for v in values) if values else "-"


def _passes(doc: dict) -> str:
    return "; ".join(f"{r['started']} commit {r['commit'][:10]}{' (dirty)' if r['dirty'] else ''}, load "
                     f"{r['load_before'][0]} → {r.get('load_after', ['?'])[0]}, "
                     + (f"{r['seconds'] / 60:.1f} min" if "seconds" in r else "in progress") for r in doc["runs"])


def compare_markdown(rows: list[dict], before: dict, after: dict) -> str:
    lines = [f"Before: {_passes(before)}", "", f"After: {_passes(after)}", "",
             "| benchmark | figure | kind | before (each pass) | after (each pass) | after / before | noise (range) | verdict |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ratio = f"{r['ratio']:.3f}" if r["ratio"] is not None else "-"
        noise = f"{r['noise']:.3g}" if r["noise"] is not None else "-"
        lines.append(f"| {r['entry']} | {r['figure']} | {r['kind']} | {_fmt(r['before'])} | {_fmt(r['after'])} | "
                     f"{ratio} | {noise} | {r['verdict']} |")
    failed = [f"{n} ({side}: {e['returncode']})" for side, d in (("before", before), ("after", after))
              for r in d["runs"] for n, e in r["entries"].items() if e["returncode"] != 0]
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["verdict"]] = counts.get(r["verdict"], 0) + 1
    lines += ["", "Verdicts: " + ", ".join(f"{v} {n}" for v, n in sorted(counts.items())) + f" (of {len(rows)} figures)"]
    if failed:
        lines.append("Benchmarks that did not finish cleanly: " + ", ".join(failed))
    return "\n".join(lines)


def runs_markdown(doc: dict) -> str:
    """One section per benchmark: its command, time and load per pass, and its figures per pass."""
    runs = doc["runs"]
    lines = [f"Passes: {_passes(doc)}", ""]
    names = list(dict.fromkeys(n for r in runs for n in r["entries"]))
    for name in names:
        entries = [r["entries"].get(name) for r in runs]
        first = next(e for e in entries if e)
        lines += [f"### {name}: {first['measures']}", "", f"`{first['command']}`", "",
                  "passes: " + "; ".join(f"exit {e['returncode']}, {e['seconds']:.0f} s, load {e['load_before'][0]} → "
                                         f"{e['load_after'][0]}" if e else "not run" for e in entries), ""]
        if any(e and e["parse_error"] for e in entries):
            lines += ["output not read: " + "; ".join(e["parse_error"] for e in entries if e and e["parse_error"]), ""]
        figures = list(dict.fromkeys(k for e in entries if e for k in e["figures"]))
        if figures:
            lines += ["| figure | kind | " + " | ".join(f"pass {i + 1}" for i in range(len(runs))) + " |",
                      "|---|---|" + "---|" * len(runs)]
            for fig in figures:
                cells = [f"{e['figures'][fig]['value']:.4g}" if e and fig in e["figures"] else "-" for e in entries]
                kind = next(e["figures"][fig]["kind"] for e in entries if e and fig in e["figures"])
                lines.append(f"| {fig} | {kind} | " + " | ".join(cells) + " |")
            lines.append("")
    return "\n".join(lines)
