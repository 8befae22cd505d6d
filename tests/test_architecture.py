"""The layout the docs promise is the layout of the tree: every module listed once, imports one way only."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("features", "training", "serving")
LAYER = {name: i for i, name in enumerate(PACKAGES)}
DOC = ROOT / "docs" / "architecture.md"


def _modules() -> set[str]:
    found = {p.relative_to(ROOT).as_posix() for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    return found - {f"{pkg}/__init__.py" for pkg in PACKAGES}  # the three package markers hold nothing


def _section(title: str) -> str:
    text = DOC.read_text()
    start = text.index(title)
    end = text.find("\n## ", start + len(title))
    return text[start:] if end < 0 else text[start:end]


def test_every_module_is_listed_once_and_every_listed_module_exists() -> None:
    listed = re.findall(r"^\| `([a-z_/]+\.py)` \|", _section("## Every module, in one line"), flags=re.M)
    assert len(listed) == len(set(listed)), "a module is listed twice in docs/architecture.md"
    missing, stale = sorted(_modules() - set(listed)), sorted(set(listed) - _modules())
    assert not missing, f"docs/architecture.md does not list: {missing}"
    assert not stale, f"docs/architecture.md lists modules that do not exist: {stale}"


def test_rooms_for_what_comes_next_are_named() -> None:
    rooms = _section("## Rooms for what comes next")
    for room in ("features/importers/", "training/forecast.py", "serving/web/", "serving/alerts/"):
        assert f"`{room}`" in rooms


def _imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names & set(PACKAGES)


def test_imports_go_one_way_features_training_serving() -> None:
    upward = []
    for module in sorted(_modules()):
        own = module.split("/")[0]
        for imported in _imported_packages(ROOT / module):
            if LAYER[imported] > LAYER[own]:
                upward.append(f"{module} imports {imported}")
    assert not upward, upward


def test_readme_layout_names_the_rooms() -> None:
    readme = (ROOT / "README.md").read_text()
    layout = readme[readme.index("## Repository layout"):]
    for part in ("cli/", "web/", "alerts/", "importers/", "forecast.py", *(f"{pkg}/" for pkg in _serving_packages())):
        assert part in layout, f"README's layout section does not mention {part}"


def _serving_packages() -> list[str]:
    return sorted(p.parent.name for p in (ROOT / "serving").glob("*/__init__.py"))


def test_serving_holds_packages_only_and_the_tests_mirror_them() -> None:
    loose = sorted(p.name for p in (ROOT / "serving").glob("*.py") if p.name != "__init__.py")
    assert not loose, f"serving/ holds packages only; move {loose} into the package they serve"
    tests = ROOT / "tests" / "serving"
    stray = sorted(p.name for p in tests.glob("test_*.py"))
    assert not stray, f"tests/serving/ mirrors the packages; move {stray} into tests/serving/<package>/"
    unknown = sorted(p.name for p in tests.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))
    unknown = [name for name in unknown if name not in _serving_packages()]
    assert not unknown, f"tests/serving/{unknown} match no package of serving/"
    sections = _section("### serving/")
    for pkg in _serving_packages():
        assert f"#### `serving/{pkg}/`" in sections, f"docs/architecture.md has no section for serving/{pkg}/"

