"""docs/architecture.md's diagram is the import graph: every arrow between layers it draws exists
in the code, and the code has no arrow it does not draw. The layers form no cycle.

(grimp is import-linter's graph library; the contracts in `make lint` forbid the dangerous arrows,
this keeps the picture a newcomer reads honest.)"""

from __future__ import annotations

import re

import grimp

from tests.conftest import REPO

LAYERS: dict[str, tuple[str, ...]] = {
    "wiring": ("visitlens.wiring", "visitlens.cli"),
    "http": ("visitlens.http",),
    "adapters": ("visitlens.adapters",),
    "observability": ("visitlens.adapters.metrics", "visitlens.adapters.logs"),
    "usecases": (
        "visitlens.identity", "visitlens.persons", "visitlens.staff", "visitlens.reports",
        "visitlens.retention", "visitlens.tenancy", "visitlens.auth", "visitlens.schemas",
    ),
    "ports": ("visitlens.ports",),
    "foundation": (
        "visitlens.contracts", "visitlens.errors", "visitlens.config", "visitlens.validation",
        "visitlens.pagination", "visitlens.lazy", "visitlens.vision",
        "visitlens.__init__", "visitlens",
    ),
    "edge": ("visitlens_edge",),
    "dev": ("visitlens_dev",),
}  # fmt: skip


def layer_of(module: str) -> str | None:
    best: tuple[int, str] | None = None
    for layer, prefixes in LAYERS.items():
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                if best is None or len(prefix) > best[0]:
                    best = (len(prefix), layer)
    return best[1] if best else None


def code_edges() -> set[tuple[str, str]]:
    graph = grimp.build_graph("visitlens", "visitlens_edge", "visitlens_dev")
    edges = set()
    for module in graph.modules:
        source = layer_of(module)
        for imported in graph.find_modules_directly_imported_by(module):
            target = layer_of(imported)
            if source and target and source != target:
                edges.add((source, target))
    return edges


def drawn_edges() -> set[tuple[str, str]]:
    text = (REPO / "docs" / "architecture.md").read_text()
    block = re.search(r"```mermaid\n(.*?)```", text, re.S)
    assert block, "docs/architecture.md has no mermaid diagram"
    return set(re.findall(r"^\s*(\w+)\s*-->\s*(\w+)\s*$", block[1], re.M))


def test_the_diagram_draws_exactly_the_import_graph() -> None:
    code, drawn = code_edges(), drawn_edges()
    assert not code - drawn, f"imports the diagram does not draw: {sorted(code - drawn)}"
    assert not drawn - code, f"arrows no import makes: {sorted(drawn - code)}"


def test_the_layers_form_no_cycle() -> None:
    edges = code_edges()
    order: list[str] = []
    remaining = set(LAYERS)
    while remaining:
        free = {n for n in remaining if not any(s == n and t in remaining for s, t in edges)}
        assert free, f"a cycle among {sorted(remaining)}"
        order.extend(sorted(free))
        remaining -= free
    assert order.index("foundation") < order.index("usecases") < order.index("wiring")


def test_no_two_packages_of_the_product_import_each_other() -> None:
    """No cycle between ``visitlens.*`` packages (the HTTP layer and the domain packages used to
    import each other)."""
    graph = grimp.build_graph("visitlens")
    edges: dict[str, set[str]] = {}
    for module in graph.modules:
        source = ".".join(module.split(".")[:2])
        for imported in graph.find_modules_directly_imported_by(module):
            target = ".".join(imported.split(".")[:2])
            if target != source:
                edges.setdefault(source, set()).add(target)

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in edges.get(start, ()):
            if nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})):
                return True
        return False

    cycles = sorted(p for p in edges if reaches(p, p, {p}))
    assert not cycles, f"packages on a cycle: {cycles}"
