"""Each function's main.py (what its image runs) is a thin entry point: it imports the composition
root and the framework's decorator, nothing of the product's inner layers and nothing of the dev
tooling. (Packages are held to their layers by the import-linter contracts in `make lint`; main.py
files are not in a package, so they are checked here.)"""

from __future__ import annotations

import ast

import yaml

from tests.conftest import REPO

ALLOWED = {"__future__", "functions_framework.aio", "starlette.requests", "starlette.responses"}


def imported(path: str) -> set[str]:
    tree = ast.parse((REPO / path).read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names |= {f"{node.module}.{a.name}" if node.module == "visitlens" else node.module
                      for a in node.names}  # fmt: skip
    return names


def test_every_main_imports_only_the_composition_root() -> None:
    mains = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "functions").glob("*/main.py"))
    assert len(mains) == 8
    for main in mains:
        outside = imported(main) - ALLOWED - {"visitlens.wiring"}
        assert not outside, f"{main} imports {outside}: compose in visitlens.wiring instead"
        assert "visitlens.wiring" in imported(main)


def test_every_function_is_wired_under_its_declared_name_and_target() -> None:
    from visitlens.wiring import FUNCTIONS

    declared = {}
    for spec in sorted((REPO / "functions").glob("*/function.yaml")):
        data = yaml.safe_load(spec.read_text())
        declared[data["name"]] = data["target"]
        main = (spec.parent / "main.py").read_text()
        assert f'wiring.function("{data["name"]}")' in main
        assert f"async def {data['target']}(request: Request)" in main
    assert set(declared) == set(FUNCTIONS)
