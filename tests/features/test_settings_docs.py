"""docs/operations.md lists every EXPANSION_* setting as the settings object declares it; docs/own-data.md every enumeration."""

from __future__ import annotations

import re
from pathlib import Path

from features.config import Settings
from features.settings_docs import render_into, settings_table, variable

PAGE = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


def test_the_settings_table_in_the_operations_page_is_current() -> None:
    page = PAGE.read_text(encoding="utf-8")
    assert page == render_into(page), "regenerate: python -m features.settings_docs"


def test_every_setting_has_a_row_with_its_variable_and_a_meaning() -> None:
    table = settings_table()
    rows = [line for line in table.splitlines()[2:]]
    assert len(rows) == len(Settings.model_fields)
    for name, field in Settings.model_fields.items():
        assert field.description, f"setting {name} has no description"
        assert any(row.startswith(f"| `{variable(name)}` |") for row in rows), name
    assert variable("mlflow_tracking_uri") == "MLFLOW_TRACKING_URI" and variable("home") == "EXPANSION_HOME"


def test_every_expansion_variable_the_docs_name_exists() -> None:
    """A variable named anywhere in the docs or the README is a real setting (or BentoML's / MLflow's own)."""
    known = {variable(n) for n in Settings.model_fields}
    root = PAGE.parents[1]
    for doc in [root / "README.md", *sorted((root / "docs").glob("*.md"))]:
        for name in set(re.findall(r"\bEXPANSION_[A-Z_]+[A-Z]\b", doc.read_text(encoding="utf-8"))):
            assert name in known or name in {"EXPANSION_INSECURE", "EXPANSION_DATA", "EXPANSION_AS_OF", "EXPANSION_SHARED_SAMPLES",
                                             "EXPANSION_ACCOUNT", "EXPANSION_TREND_MONTHS", "EXPANSION_TEST_POSTGRES_URL"}, \
                f"{doc.name} names {name}, which no setting reads"


def test_the_own_data_page_lists_every_enumeration_of_the_contract() -> None:
    from features.contract import TABLES

    page = (PAGE.parent / "own-data.md").read_text(encoding="utf-8")
    rows = {line.split("|")[1].strip().strip("`"): line for line in page.splitlines() if line.startswith("| `")}
    for table in TABLES.values():
        for column in table.columns:
            if column.allowed:
                key = f"{table.name}.{column.name}"
                assert key in rows, f"docs/own-data.md has no row for {key}"
                listed = set(re.findall(r"`([a-z_]+)`", rows[key].split("|")[2]))
                assert listed == set(column.allowed), f"{key}: page lists {sorted(listed)}, contract {column.allowed}"
    for table in TABLES.values():
        for column in table.columns:
            if column.nullable and table.required:
                assert f"`{column.name}`" in page, f"docs/own-data.md does not name the nullable column {column.name}"
