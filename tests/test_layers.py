"""The modules of `harness` and of `reference_model` import each other without cycles, lazy imports inside functions and
imports only a type checker runs counted, so each can be read, tested and moved on its
own: a package's `__init__` re-exports its submodules and no submodule imports its package."""

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


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
