"""The package's layers (docs/internals.md): imports point down, no module cycles, no private names across
packages. Every import counts, the ones inside functions too."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "finetuner"

# Lowest first; a module may import its own package and any package of a lower (or the same) layer.
LAYERS = [
    {"core"},
    {"data", "tailor", "search"},
    {"evaluation", "models"},
    {"inference"},
    {"training"},
    {"export"},
    {"model", "tailoring"},
    {"report"},
    {"config", "run", "_fit", "api", "probing"},
    {"cli", "__main__"},
]
LAYER_OF = {name: level for level, names in enumerate(LAYERS) for name in names}


def unit(module: str) -> str:
    """``finetuner.training.cache`` -> ``training``; the package's ``__init__`` is the root."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "finetuner"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[str, list[str], bool]]:
    """(imported finetuner module, imported names, under TYPE_CHECKING) for every import in ``path``."""
    tree = ast.parse(path.read_text())
    typing_only = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            typing_only.update(id(child) for child in ast.walk(node))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            assert not node.level, f"{path}: use absolute imports (from finetuner.x import y)"
            base = node.module or ""
            if base == "finetuner" or base.startswith("finetuner."):
                found.append((base, [alias.name for alias in node.names], id(node) in typing_only))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("finetuner"):
                    found.append((alias.name, [], id(node) in typing_only))
    return found


FILES = sorted(ROOT.rglob("*.py"))


def test_every_unit_has_a_layer():
    units = {unit(module_name(path)) for path in FILES} - {"finetuner"}
    assert units <= set(LAYER_OF), f"add to LAYERS (and docs/internals.md): {sorted(units - set(LAYER_OF))}"


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_point_down_and_use_public_names(path):
    source = unit(module_name(path))
    for target, names, typing_only in imports(path):
        destination = unit(target)
        if source == "finetuner" or destination == "finetuner":
            continue  # the package root re-exports lazily and holds only __version__
        if not typing_only:
            assert LAYER_OF[destination] <= LAYER_OF[source], f"{module_name(path)} imports {target} (a higher layer)"
        if destination != source:
            private = [n for n in [target.rpartition(".")[2], *names] if n.startswith("_") and n != "__version__"]
            assert not private, f"{module_name(path)} uses private {private} of {target}"


def test_no_module_cycles_at_import_time():
    """Module-level imports (those that run when a module loads) form no cycle."""
    graph = {}
    for path in FILES:
        tree = ast.parse(path.read_text())
        name = module_name(path)
        edges = set()
        for node in tree.body:
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("finetuner"):
                edges.add(node.module)
                edges.update(f"{node.module}.{alias.name}" for alias in node.names)
        graph[name] = {edge for edge in edges if edge != name}
    modules = set(graph)
    graph = {name: {e for e in edges if e in modules and not name.startswith(e + ".")} for name, edges in graph.items()}
    state: dict[str, int] = {}

    def visit(node, stack):
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                raise AssertionError(f"import cycle: {' -> '.join(stack[stack.index(nxt):] + [nxt])}")
            if not state.get(nxt):
                visit(nxt, stack + [nxt])
        state[node] = 2

    for name in sorted(graph):
        if not state.get(name):
            visit(name, [name])
