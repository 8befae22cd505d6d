"""The fixed command of every benchmark run by ``run_all.py`` and how its headline figures are read from its output.

Each entry is one script of this folder with the smallest sizes its flags allow (the whole pass has to fit in
about 20 minutes on 2 shared cores) and a parser of what the script prints (or of the CSV it writes). A
figure is ``(value, kind)``: ``ratio`` is measured against the script's own in-run reference, ``check`` a
count or quality figure expected to be the same whenever the code does the same thing, ``absolute`` a
time or size that follows the machine's load (reported, judged like the others by the measured spread).
"""

from __future__ import annotations

import ast
import csv
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

NUMBER = r"[-+]?[\d,]*\.?\d+(?:e[-+]?\d+)?"
Figures = dict[str, tuple[float, str]]


@dataclass(frozen=True)
class Entry:
    """One benchmark: ``args`` after the script, given the pass's work folder; ``parse(stdout, work)``."""

    name: str
    script: str
    args: Callable[[Path], list[str]]
    parse: Callable[[str, Path], Figures]
    measures: str
    timeout: int = 600


def num(text: str) -> float:
    return float(text.replace(",", ""))


def one(pattern: str, text: str) -> float | None:
    m = re.search(pattern, text)
    return num(m.group(1)) if m else None


def put(out: Figures, name: str, value: float | bool | None, kind: str) -> None:
    if value is not None and value == value:  # NaN (nothing measured) is no figure
        out[name] = (float(value), kind)


def _metrics(text: str, _: Path) -> Figures:
    out: Figures = {}
    for name, ratio in re.findall(rf"^(\S.*?)\s+{NUMBER} s\s+({NUMBER})x reference", text, re.M):
        put(out, f"{name.strip()} / pandas NRR", num(ratio), "ratio")
    return out


def figures(*specs: tuple[str, str | Callable[[str], float | bool | None], str]) -> Callable[[str, Path], Figures]:
    """A parser of ``(name, pattern or reader, kind)`` rows: a pattern's first group read as a number."""

    def parse(text: str, _: Path) -> Figures:
        out: Figures = {}
        for name, read, kind in specs:
            put(out, name, one(read, text) if isinstance(read, str) else read(text), kind)
        return out

    return parse


def passed(text: str) -> bool:
    return "\nPASS" in text


_generate = figures(("generate / bare parquet write", rf"generate / reference = ({NUMBER})x", "ratio"),
                    ("limits pass", passed, "check"))
_raw = figures(("peak RSS 10x accounts / 1x", rf"peak RSS ratio .*? = ({NUMBER})x", "ratio"),
               ("events 10x / 1x", rf"for ({NUMBER})x the events", "check"),
               ("limit pass (peak RSS ratio < 1.5x)", passed, "check"))
_features = figures(("pipeline / bare GROUP BY", rf"pipeline / bare aggregation:\s+({NUMBER})x", "ratio"),
                    ("feature rows", rf"feature rows: ({NUMBER})", "check"))


def _median(values: list[float]) -> float | None:
    values = sorted(values)
    return None if not values else (values[(len(values) - 1) // 2] + values[len(values) // 2]) / 2


def _snapshots(text: str, _: Path) -> Figures:
    out: Figures = {}
    pairs = re.findall(rf"ratio wall ({NUMBER})x, CPU ({NUMBER})x; every raw file digested again: .*?ratio wall ({NUMBER})x",
                       text)
    put(out, "all but the newest month end stored / none, CPU (median of pairs)", _median([num(p[1]) for p in pairs]), "ratio")
    put(out, "all but the newest month end stored / none, wall (median of pairs)", _median([num(p[0]) for p in pairs]), "ratio")
    put(out, "raw digested again / none, wall (median of pairs)", _median([num(p[2]) for p in pairs]), "ratio")
    return out


def _train(text: str, _: Path) -> Figures:
    out: Figures = {}
    put(out, "train_all / bare lgb.train", one(rf"ratio to reference: ({NUMBER})x", text), "ratio")
    for name, auc in re.findall(rf"^\s+(\w+): .*?pooled ROC-AUC ({NUMBER})", text, re.M):
        put(out, f"{name} pooled ROC-AUC", num(auc), "check")
    return out


def _service(text: str, _: Path) -> Figures:
    out: Figures = {}
    m = re.search(rf"single-account overhead vs bare endpoint: p50 ({NUMBER})x, p99 ({NUMBER})x", text)
    if m:
        put(out, "single account / bare echo, p50", num(m.group(1)), "ratio")
        put(out, "single account / bare echo, p99", num(m.group(2)), "ratio")
    rows = {name.strip(): (num(a), num(b)) for name, a, b in re.findall(rf"^(\S.*?)\s+({NUMBER})\s+({NUMBER})$", text, re.M)}
    batch, echo = rows.get("1,000 accounts by id, reasons (warm cache)"), rows.get("bare echo, 1,000 accounts")
    if batch and echo:
        put(out, "1,000 by id with reasons / echo of 1,000, p50", batch[0] / echo[0], "ratio")
        put(out, "1,000 by id with reasons / echo of 1,000, p99", batch[1] / echo[1], "ratio")
    m = re.search(rf"first request once precomputed p50 ({NUMBER}) ms, p99 ({NUMBER}) ms .*?\(({NUMBER})x\); "
                  rf"first / second request p99 ({NUMBER})x", text)
    if m:
        put(out, "first request once precomputed, p99 ms", num(m.group(2)), "absolute")
        put(out, "lazy first request / precomputed first request, p99", num(m.group(3)), "ratio")
        put(out, "precomputed first / second request, p99", num(m.group(4)), "ratio")
    for n, ratio in re.findall(rf"^({NUMBER}) accounts\s+{NUMBER}\s+{NUMBER}\s+({NUMBER})\s+{NUMBER}$", text, re.M):
        put(out, f"every reason / scoring without reasons, {n} accounts", num(ratio), "ratio")
    return out


def _load(text: str, _: Path) -> Figures:
    out: Figures = {}
    put(out, "single p99 / echo p99 (16 clients)", one(rf"vs bare echo p99 {NUMBER} ms: ({NUMBER})x", text), "ratio")
    put(out, "5xx answers", one(rf"5xx: ({NUMBER}) \(target 0\)", text), "check")
    put(out, "dropped connections", one(rf"dropped connections: ({NUMBER})", text), "check")
    put(out, "requests/s", one(rf"({NUMBER}) requests/s", text), "absolute")
    m = re.search(rf"malformed answered 4xx: ({NUMBER}) of ({NUMBER})", text)
    if m:
        put(out, "malformed answered 4xx, share", num(m.group(1)) / max(num(m.group(2)), 1), "check")
    return out


_restart = figures(("requests lost across the restart", rf"lost \(cut \+ timeouts \+ 5xx\): ({NUMBER})", "check"),
                   ("longest gap without a 200 / steady gap", rf"ratio ({NUMBER})x\)", "ratio"),
                   ("start to ready, s", rf"start to ready ({NUMBER}) s", "absolute"))


def _batch(text: str, _: Path) -> Figures:
    out: Figures = {}
    put(out, "full scorer / bare predict", one(rf"full scorer / bare predict: ({NUMBER})x", text), "ratio")
    for sink, share in re.findall(rf"^(\w+): writing adds ({NUMBER})% to the scorer", text, re.M):
        put(out, f"whole job into {sink} / scorer", 1 + num(share) / 100, "ratio")
    return out


def _forecast(text: str, _: Path) -> Figures:
    out: Figures = {}
    for n, ratio in re.findall(rf"^\s*({NUMBER}) accounts: .*?x reference \(both\)\s+({NUMBER})", text, re.M):
        put(out, f"forecast and method choice / predict, {n} accounts", num(ratio), "ratio")
    for n, amount in re.findall(rf"^\s*({NUMBER}) accounts: .*?expansion ARR ({NUMBER}) \(model\)", text, re.M):
        put(out, f"expansion ARR forecast, {n} accounts", num(amount), "check")
    return out


def _import(text: str, _: Path) -> Figures:
    out: Figures = {}
    for label, x_s, x_mb in re.findall(rf"^\| (.+?) \| {NUMBER} \| ({NUMBER}) \| {NUMBER} \| ({NUMBER}) \|$", text, re.M):
        if label.startswith("reference"):
            continue
        short = label.split(":")[0].split(" (")[0]
        put(out, f"{short} / bare read, seconds", num(x_s), "ratio")
        put(out, f"{short} / bare read, peak MB", num(x_mb), "ratio")
    return out


def _play_effects(text: str, _: Path) -> Figures:
    out: Figures = {}
    lines = [line.split() for line in text.splitlines()]
    header = next((i for i, parts in enumerate(lines) if parts[:3] == ["seeds", "measured", "covers"]), None)
    if header is not None:  # the summary per play: a header, the index name ("play") alone, then one line per play
        for parts in lines[header + 1:]:
            if parts == ["play"]:
                continue
            if len(parts) != 9:
                break
            put(out, f"{parts[0]}: interval covers the truth, seeds", num(parts[3]), "check")
            put(out, f"{parts[0]}: estimate mean", num(parts[6]), "check")
    put(out, "placebo interval covers 0, seeds", one(r"interval covers 0 in (\d+) of", text), "check")
    return out


def _play_uplift(text: str, _: Path) -> Figures:
    out: Figures = {}
    for line in re.findall(r"^\{'seed'.*\}$", text, re.M):
        row = ast.literal_eval(line)
        key = f"seed {row['seed']} {row['play']}"
        for field in ("qini_uplift", "qini_readiness", "gain"):
            put(out, f"{key}: {field}", one(f"({NUMBER})", row[field]), "check")
        put(out, f"{key}: uplift in force", row["uplift_in_force"], "check")
    return out


def csv_rows(path: Path) -> list[dict[str, str]]:
    """The rows of a CSV a benchmark wrote, none when it wrote none."""
    return list(csv.DictReader(path.open())) if path.exists() else []


def _small_books(_: str, work: Path) -> Figures:
    out: Figures = {}
    for row in csv_rows(work / "small_books" / "small_books_seeds.csv"):
        for column in ("expansion_auc", "expansion_gain", "churn_auc", "churn_gain", "expansion_promotions",
                       "churn_promotions"):
            if row.get(column):
                put(out, f"seed {row['seed']} {column}", num(row[column]), "check")
    return out


def _spark(text: str, _: Path) -> Figures:
    out: Figures = {}
    m = re.search(rf"ratio spark/duckdb: wall ({NUMBER})x, compute ({NUMBER})x, memory ({NUMBER})x", text)
    if m:
        for i, what in enumerate(("wall", "compute", "peak memory"), 1):
            put(out, f"spark / duckdb, {what}", num(m.group(i)), "ratio")
    return out


def _web(_: str, work: Path) -> Figures:
    out: Figures = {}
    for row in csv_rows(work / "web" / "web.csv"):
        if row.get("x_rank_p95"):
            put(out, f"{row['request']} / POST /rank, p95", num(row["x_rank_p95"]), "ratio")
        elif row["request"].startswith("search index"):
            put(out, f"{row['request']}, p95 ms", num(row["p95_ms"]), "absolute")
    return out


def _alert_delivery(text: str, _: Path) -> Figures:
    out: Figures = {}
    for run, *counts in re.findall(r"run (\d): due (\d+), sent (\d+), parked (\d+), kept (\d+), attempts (\d+), exit (\d+)",
                                   text):
        for what, value in zip(("due", "sent", "parked", "kept", "attempts", "exit code"), counts, strict=True):
            put(out, f"run {run} {what}", num(value), "check")
    put(out, "relay received", one(r"relay received (\d+) of", text), "check")
    return out


def _roundtrip(text: str, _: Path) -> Figures:
    out: Figures = {}
    for table, differ in re.findall(r"^(\w+): [\d,]+ generated, [\d,]+ imported, rows differing: (\S+)", text, re.M):
        put(out, f"{table} rows differing", None if differ == "n/a" else num(differ), "check")
    for col, diff in re.findall(rf"^(\w+): max \|difference\| over \d+ months = ({NUMBER})", text, re.M):
        put(out, f"{col} max difference", num(diff), "check")
    put(out, "feature cells differing", one(r"cells differing: (\d+)", text), "check")
    return out


def _forecast_choice(text: str, _: Path) -> Figures:
    out: Figures = {}
    put(out, "live minus better naive, mean |error| pts", one(rf"mean \|error\| difference per cut-off x group: ({NUMBER})",
                                                                text), "check")
    for level, held, n in re.findall(r"live (\d+) % interval held (\d+)/(\d+)", text):
        put(out, f"live {level} % interval hit rate", num(held) / max(num(n), 1), "check")
    for rule, episodes in re.findall(r"^\| (\w+) \| (\d+) \| [\d.]+ % of", text, re.M):
        put(out, f"alert rule {rule} episodes", num(episodes), "check")
    return out


_reasons = figures(
    ("play premise fails", r"play premise fails in the account's own numbers: (\d+)", "check"),
    ("accounts with >= 3 reasons, share", rf"accounts with at least 3 reasons: [\d,]+ of [\d,]+ = ({NUMBER})%", "check"),
    ("reason texts without a comparison", r"reason texts without a comparison: (\d+)", "check"),
    ("all hard checks pass", lambda text: "all hard checks pass" in text, "check"))


ENTRIES = [
    Entry("metrics", "bench_metrics.py", lambda w: ["--accounts", "1000", "--months", "12"], _metrics,
          "revenue movements and retention metrics against plain pandas monthly NRR"),
    Entry("generate", "bench_generate.py", lambda w: ["--accounts", "1000", "--months", "12"], _generate,
          "expansion generate against a bare pyarrow write of its usage rows"),
    Entry("raw", "bench_raw.py", lambda w: ["--accounts", "500", "--months", "2"], _raw,
          "raw Segment export: peak memory at 10x the accounts"),
    Entry("features", "bench_features.py", lambda w: ["--accounts", "1000", "--months", "12", "--work", str(w)],
          _features, "feature pipeline against a bare DuckDB GROUP BY of the usage"),
    Entry("snapshots", "bench_snapshots.py",
          lambda w: ["--accounts", "1000", "--months", "12", "--repeats", "2", "--work", str(w)], _snapshots,
          "monthly feature step with every month end but the newest stored against none"),
    Entry("train", "bench_train.py", lambda w: ["--rows", "20000", "--accounts", "500", "--months", "18"], _train,
          "train_all (backtest, refit, calibration) against one bare lgb.train"),
    Entry("service", "bench_service.py", lambda w: [], _service,
          "scoring service latency on loopback against a bare BentoML echo (fixed sizes)", timeout=900),
    Entry("load", "bench_load.py", lambda w: ["--seconds", "20"], _load,
          "16 concurrent clients, mixed workload with a reload, against the bare echo"),
    Entry("restart", "bench_restart.py", lambda w: ["--snapshot-accounts", "500", "--steady-seconds", "3"], _restart,
          "a supervised restart under load: requests lost, longest gap against the steady gap"),
    Entry("batch", "bench_batch.py", lambda w: ["--accounts", "5000", "--chunk-size", "2500"], _batch,
          "batch scoring: full scorer against bare predict, whole job into SQLite and PostgreSQL"),
    Entry("forecast", "bench_forecast.py", lambda w: ["--accounts", "5000", "--draws", "200"], _forecast,
          "forecast and live method choice against the models' predict"),
    Entry("import", "bench_import.py",
          lambda w: ["--accounts", "500", "--months", "12", "--segment-every", "50", "--work", str(w / "import")],
          _import, "importers against DuckDB reading the same raw files"),
    Entry("play_effects", "bench_play_effects.py",
          lambda w: ["--accounts", "400", "--months", "24", "--seeds", "1", "--replicates", "100", "--small", "0"],
          _play_effects, "play effects recovered against the generated truth"),
    Entry("play_uplift", "bench_play_uplift.py",
          lambda w: ["--accounts", "800", "--months", "24", "--seeds", "1", "--replicates", "100"], _play_uplift,
          "uplift ranking against readiness (Qini, gain)"),
    Entry("small_books", "bench_small_books.py",
          lambda w: ["--parts", "seeds", "--seeds", "1", "--work", str(w / "small_books")], _small_books,
          "replayed backtest on a 300-account company: model and baseline ROC-AUC"),
    Entry("spark", "bench_spark.py",
          lambda w: ["--accounts", "1000", "--months", "12", "--snapshots", "2", "--work", str(w)], _spark,
          "Spark local mode against DuckDB for the same features"),
    Entry("web", "bench_web.py", lambda w: ["--requests", "20", "--work", str(w / "web")], _web,
          "pages against POST /rank for the same accounts (fixed 10,000-account company)", timeout=900),
    Entry("alert_delivery", "check_alert_delivery.py", lambda w: ["--messages", "60", "--poisoned", "5"],
          _alert_delivery, "alert delivery with poisoned recipients: sent, parked, exit codes"),
    Entry("import_roundtrip", "check_import_roundtrip.py", lambda w: [], _roundtrip,
          "a generated company exported and imported back: differences"),
    Entry("forecast_choice", "check_forecast_choice.py",
          lambda w: ["--accounts", "400", "--seeds", "1", "--generators", "synth", "--rounds", "50",
                     "--work", str(w / "forecast_choice")], _forecast_choice,
          "live forecast method against the naive ones; alert rules' episodes"),
    Entry("reasons", "check_reasons.py", lambda w: ["--accounts", "300", "--work", str(w / "reasons")], _reasons,
          "reasons and plays on a whole company: hard checks"),
]
