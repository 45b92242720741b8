"""A function's main.py (what its image runs) never imports the local dev tooling: the gateway and
runner of `make dev`, the demos, the e2e driver, the benchmarks, the deployment renderer. (The
packages below them are held to the same by an import-linter contract in `make lint`; main.py
files are not in a package, so they are checked here.)"""

from __future__ import annotations

import ast

from tests.conftest import REPO

DEV_TOOLING = (
    "visitlens.runtime.gateway", "visitlens.runtime.runner", "visitlens.demo",
    "visitlens.edge_demo", "visitlens.e2e", "visitlens.bench", "visitlens.deploy",
    "visitlens.stack.manager",
)  # fmt: skip


def imported(path: str) -> set[str]:
    tree = ast.parse((REPO / path).read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_no_function_imports_dev_tooling() -> None:
    mains = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "functions").glob("*/main.py"))
    assert len(mains) == 8
    for main in mains:
        bad = {n for n in imported(main) if n.startswith(DEV_TOOLING)}
        assert not bad, f"{main} imports {bad}"
