"""The analyst notebooks: stored without outputs, and each runs end to end on a small generated company.

Execution uses the shared ``generated_company`` (600 accounts, 18 months) and one empty
model home for the module: the notebooks never register or promote a model unless a cell
says so (``REGISTER_MODELS = True``, stored False), so ``model_evaluation`` reviews models
it trains for itself, ``account_drilldown`` scores with the baseline, and the home's
store is still empty afterwards.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS_DIR = Path(__file__).resolve().parents[2] / "notebooks"
CELL_TIMEOUT_S = 300

# Per notebook: the fewest charts and non-empty tables it must show, and text its outputs must contain.
EXPECTED = {
    "nrr_and_cohorts.ipynb": (8, 7, ["NRR %", "trailing twelve months", "expansion_penetration_pct", "months_median"]),
    "model_evaluation.ipynb": (8, 8, ["roc_auc", "cut-offs won", "mean_abs_contribution", "gate reasons"]),
    "account_drilldown.ipynb": (4, 8, ["recommended play", "whitespace_usd", "baseline readiness points gained"]),
}


def _outputs(nb: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]


def _text(output: nbformat.NotebookNode) -> str:
    data = output.get("data", {})
    return output.get("text", "") + data.get("text/plain", "") + data.get("text/html", "")


def test_every_notebook_is_listed() -> None:
    assert sorted(p.name for p in NOTEBOOKS_DIR.glob("*.ipynb")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_stored_notebook_has_no_outputs(name: str) -> None:
    nb = nbformat.read(NOTEBOOKS_DIR / name, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    assert nb.cells[0].cell_type == "markdown" and "EXPANSION_DATA" in nb.cells[0].source
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{name} cell {i} is stored with outputs"
            assert cell.execution_count is None, f"{name} cell {i} is stored with an execution count"


REGISTERING = ("train_and_register(", "register_and_gate(", "promote(", "rollback(", "set_registered_model_alias(")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_notebook_registers_only_where_a_cell_says_so(name: str) -> None:
    nb = nbformat.read(NOTEBOOKS_DIR / name, as_version=4)
    code = [cell.source for cell in nb.cells if cell.cell_type == "code"]
    switches = [c for c in code if re.search(r"^REGISTER_MODELS = (True|False)$", c, re.M)]
    for source in code:
        for line in source.splitlines():
            if any(call in line for call in REGISTERING) and not line.lstrip().startswith(("from ", "import ", "#")):
                assert switches, f"{name}: {line.strip()!r} without a REGISTER_MODELS cell"
                assert "if REGISTER_MODELS:" in source and source.index("if REGISTER_MODELS:") < source.index(line), line
    assert all("REGISTER_MODELS = False" in c for c in switches), f"{name} is stored registering models"


@pytest.fixture(scope="module")
def notebook_env(generated_company: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Environment the kernels inherit: the generated company, a fresh model home, no telemetry."""
    work = tmp_path_factory.mktemp("notebooks")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EXPANSION_DATA", str(generated_company))
        mp.setenv("EXPANSION_HOME", str(work / "home"))
        mp.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mp.delenv("EXPANSION_AS_OF", raising=False)
        mp.delenv("EXPANSION_ACCOUNT", raising=False)
        yield work


@pytest.mark.slow
@pytest.mark.parametrize("name", ["nrr_and_cohorts.ipynb", "model_evaluation.ipynb", "account_drilldown.ipynb"])
def test_notebook_runs(name: str, notebook_env: Path) -> None:
    nb = nbformat.read(NOTEBOOKS_DIR / name, as_version=4)
    client = NotebookClient(nb, kernel_name="python3", timeout=CELL_TIMEOUT_S,
                            resources={"metadata": {"path": str(notebook_env)}})
    client.execute()  # raises CellExecutionError naming the cell on any error

    outputs = _outputs(nb)
    assert not [o for o in outputs if o.output_type == "error"]
    min_charts, min_tables, phrases = EXPECTED[name]
    charts = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(charts) >= min_charts, f"{name}: {len(charts)} charts drawn, expected at least {min_charts}"
    tables = [o["data"]["text/html"] for o in outputs if "<table" in o.get("data", {}).get("text/html", "")]
    body_rows = [len(re.findall(r"<tr", re.sub(r"<thead>.*?</thead>", "", t, flags=re.S))) for t in tables]
    filled = sum(r >= 1 for r in body_rows)
    assert filled >= min_tables, f"{name}: {filled} tables with rows, expected at least {min_tables}: {body_rows}"
    text = "\n".join(_text(o) for o in outputs)
    for phrase in phrases:
        assert phrase in text, f"{name}: no output mentions {phrase!r}"
    # The parameters were honoured: the given folder was read (nothing generated), the given home used.
    assert f"data: {os.environ['EXPANSION_DATA']}" in text and "generated a demo company" not in text
    if name != "nrr_and_cohorts.ipynb":
        assert f"MLflow store: sqlite:///{Path(os.environ['EXPANSION_HOME']).resolve()}" in text
        assert "no registered model in this store" in text
        from features.config import get_settings
        from training.registry import list_versions, registry_exists

        assert not registry_exists(get_settings()) or list_versions(get_settings()) == [], \
            f"{name} registered a model without being told to"
