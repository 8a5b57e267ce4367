"""The modules of `harness` and of `reference_model` import each other without cycles, lazy imports inside functions and
imports only a type checker runs counted, so each can be read, tested and moved on its
own: a package's `__init__` re-exports its submodules and no submodule imports its package."""

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _modules() -> dict[str, Path]:
    out = {}
    for p in [*(ROOT / "harness").rglob("*.py"), *(ROOT / "reference_model").rglob("*.py")]:
        name = ".".join(p.relative_to(ROOT).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = p
    return out


def _imports(tree: ast.AST):
    """Every import node, those inside functions and under ``if TYPE_CHECKING:`` included."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node


def import_graph() -> dict[str, set[str]]:
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for m, path in mods.items():
        for node in _imports(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                if node.level or not node.module:
                    continue
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
                # "from pkg import sub" depends on the submodule, not on the package
                names = [n for n in names if n != node.module or not any(f"{n}.{a.name}" in mods for a in node.names)]
            else:
                names = [a.name for a in node.names]
            graph[m] |= {n for n in names if n in mods and n != m}
    return graph


def test_imports_have_no_cycle() -> None:
    graph = import_graph()
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as exc:
        raise AssertionError(f"import cycle: {' -> '.join(exc.args[1])}") from None


def test_the_check_finds_a_cycle() -> None:
    graph = import_graph()
    graph["harness.errors"].add("harness.cli")  # harness.cli imports harness.errors
    try:
        TopologicalSorter(graph).prepare()
    except CycleError:
        return
    raise AssertionError("a cycle went unnoticed")


def _layers() -> dict[str, int]:
    """The layer table of docs/architecture.md: module prefix -> layer."""
    import re

    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    table = text.split("<!-- layers: read by tests/unit/test_layers.py -->", 1)[1].split("\n\n", 1)[0]
    out = {}
    for line in table.splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        for name in re.findall(r"`([\w.]+)`", cells[1]):
            out[name] = int(cells[0])
    return out


def _layer(module: str, layers: dict[str, int]) -> int | None:
    best = max((p for p in layers if module == p or module.startswith(p + ".")), key=len, default=None)
    return None if best is None else layers[best]


def _upward(graph: dict[str, set[str]], layers: dict[str, int]) -> list[str]:
    return [
        f"{m} (layer {_layer(m, layers)}) imports {d} (layer {_layer(d, layers)})"
        for m, deps in sorted(graph.items())
        for d in sorted(deps)
        if _layer(d, layers) > _layer(m, layers)
    ]


def test_no_module_imports_from_a_layer_above_its_own() -> None:
    layers = _layers()
    graph = import_graph()
    unplaced = sorted(m for m in graph if _layer(m, layers) is None)
    assert not unplaced, f"modules in no layer of docs/architecture.md: {unplaced}"
    upward = _upward(graph, layers)
    assert not upward, "\n".join(upward)


def test_the_layer_check_finds_an_upward_import() -> None:
    graph = import_graph()
    graph["harness.records"].add("harness.canary.judge")  # data importing the judge
    assert _upward(graph, _layers()) == ["harness.records (layer 1) imports harness.canary.judge (layer 3)"]
