"""Broken files and unsafe targets: every one a clear error naming the source, table and rule (no traceback, nothing
written), and ``--out`` replaces only a folder an earlier import wrote."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from landing import FIXTURES, land

from features.importers import money
from features.importers.errors import ImportFailed
from features.importers.run import MARKER, clean_stale, import_sources

AS_OF = dt.date(2025, 6, 30)
SOURCES = ["stripe", "salesforce", "segment"]
CONFIG = {"stripe": {"match": "metadata.account_id"}, "segment": {"unattributed": "drop"}}
RATES = money.load("usd", FIXTURES / "rates.csv")


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return land("fivetran", tmp_path_factory.mktemp("bad") / "raw")


@pytest.fixture
def raw(pristine: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(pristine, tmp_path / "raw"))


def _problems(raw: Path, out: Path, config: dict = CONFIG) -> list[str]:
    with pytest.raises(ImportFailed) as caught:
        import_sources(SOURCES, raw, out, config, AS_OF, money=RATES)
    assert not out.exists() or (out / "keep.txt").exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")], "a temporary folder was left behind"
    return [str(p) for p in caught.value.problems]


def test_a_header_only_required_table_is_named(raw: Path, tmp_path: Path) -> None:
    path = raw / "stripe" / "subscription_item.csv"
    path.write_text(path.read_text().splitlines()[0] + "\n")
    got = _problems(raw, tmp_path / "out")
    assert any(p.startswith("stripe.subscription_item.*: no rows in ") and "only a header" in p for p in got), got


def test_a_csv_cut_mid_line_is_named(raw: Path, tmp_path: Path) -> None:
    path = raw / "stripe" / "invoice.csv"
    text = path.read_text()
    path.write_text(text[: len(text) - 40])
    got = _problems(raw, tmp_path / "out")
    assert any(p.startswith("stripe.invoice.*: cannot read ") and "CSV Error on Line" in p for p in got), got


def test_an_empty_events_table_is_refused_at_import(raw: Path, tmp_path: Path) -> None:
    path = raw / "segment" / "tracks.csv"
    path.write_text(path.read_text().splitlines()[0] + "\n")
    got = _problems(raw, tmp_path / "out")
    assert "segment.tracks.*: no events (an empty table: usage_daily would be empty)" in got


def test_events_all_without_account_are_refused_not_imported_empty(raw: Path, tmp_path: Path) -> None:
    path = raw / "segment" / "tracks.csv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0]] + [line.rsplit(",", 1)[0] + "," for line in lines[1:]]) + "\n")
    got = _problems(raw, tmp_path / "out")
    assert "segment.tracks.*: no usable events (every event was left out; see the notes)" in got


def test_the_cli_prints_the_problem_without_a_traceback(raw: Path, tmp_path: Path) -> None:
    path = raw / "stripe" / "subscription_item.csv"
    path.write_text(path.read_text().splitlines()[0] + "\n")
    run = subprocess.run([sys.executable, "-m", "serving.cli", "import", "stripe,salesforce,segment", "--from", str(raw),
                          "--out", str(tmp_path / "out"), "--as-of", "2025-06-30", "--currency", "usd",
                          "--rates", str(FIXTURES / "rates.csv")], capture_output=True, text=True,
                         env={**os.environ, "EXPANSION_HOME": str(tmp_path / "home")}, cwd=Path(__file__).resolve().parents[3])
    assert run.returncode != 0
    assert "stripe.subscription_item.*: no rows in" in run.stderr and "Traceback" not in run.stderr + run.stdout


def test_out_refuses_a_folder_it_did_not_write(raw: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    got = _problems(raw, out)
    assert any(p.startswith("import.--out.*: ") and "was not written by an import" in p for p in got), got
    assert (out / "keep.txt").read_text() == "mine" and sorted(p.name for p in out.iterdir()) == ["keep.txt"]


def test_out_replaces_its_own_earlier_import_atomically(raw: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    import_sources(SOURCES, raw, out, CONFIG, AS_OF, money=RATES)
    assert (out / MARKER).exists()
    (out / "stale.parquet").write_text("from the earlier import")
    import_sources(SOURCES, raw, out, CONFIG, AS_OF, money=RATES)
    assert not (out / "stale.parquet").exists() and (out / "subscriptions.parquet").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "raw"]


def test_a_killed_imports_temporary_folder_is_cleaned_by_the_next_run(tmp_path: Path) -> None:
    out = tmp_path / "out"
    dead = tmp_path / ".out.import-abc123"
    dead.mkdir()
    (dead / ".pid").write_text("999999999")  # no such process
    alive = tmp_path / ".out.import-def456"
    alive.mkdir()
    (alive / ".pid").write_text(str(os.getppid()))  # a running process: another import still writing
    assert clean_stale(out) == [".out.import-abc123"]
    assert not dead.exists() and alive.exists()


def test_map_renames_tables_and_columns_and_reads_json_paths(raw: Path, tmp_path: Path) -> None:
    (raw / "stripe" / "subscription_item.csv").rename(raw / "stripe" / "billing_lines_v2.csv")
    item = raw / "stripe" / "billing_lines_v2.csv"
    text = item.read_text().replace("subscription_id", "sub_ref", 1)
    item.write_text(text)
    sub = raw / "stripe" / "subscription.csv"
    lines = sub.read_text().splitlines()
    lines[0] = lines[0].replace("customer_id", "owner_blob", 1)
    header = lines[0].split(",")
    col = header.index("owner_blob")
    import csv
    import io

    rows = list(csv.reader(io.StringIO("\n".join(lines))))
    for r in rows[1:]:
        r[col] = '{"customer": {"id": "%s"}}' % r[col]
    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    sub.write_text(buf.getvalue())
    config = {**CONFIG, "stripe": {**CONFIG["stripe"], "tables": {"subscription_item": "billing_lines_v2"},
                                   "columns": {"subscription_item": {"subscription_id": "sub_ref"},
                                               "subscription": {"customer_id": "owner_blob.customer.id"}}}}
    result = import_sources(SOURCES, raw, tmp_path / "out", config, AS_OF, money=RATES)
    assert result.rows["subscriptions"] > 0
    bad = {**config, "stripe": {**config["stripe"], "tables": {"subscription_item": "nothing_like_it"}}}
    got = _problems(raw, tmp_path / "out2", bad)
    assert any(p.startswith('stripe.subscription_item.*: table named by [stripe.tables] subscription_item = "nothing_like_it" '
                            "does not exist") for p in got), got
