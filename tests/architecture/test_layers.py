"""The package's layers (docs/internals.md): imports point down, no import cycles between modules, no private names
across packages. Every import counts, the ones inside functions too (those under TYPE_CHECKING only for layers)."""

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
    {"export", "card"},
    {"model", "tailoring"},
    {"report"},
    {"config", "run", "_fit", "api", "probing", "preflighting"},
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


def import_graph() -> dict[str, set[str]]:
    """Module -> the finetuner modules it imports, at module level or inside functions (not under TYPE_CHECKING).

    ``from finetuner.a import b`` counts ``finetuner.a`` and, when it is a module, ``finetuner.a.b``. Edges to a
    module's own packages (they load first anyway) and to the package root (lazy re-exports only) are left out.
    """
    graph = {}
    for path in FILES:
        edges = set()
        for target, names, typing_only in imports(path):
            if not typing_only:
                edges.add(target)
                edges.update(f"{target}.{name}" for name in names)
        graph[module_name(path)] = edges
    modules = set(graph) - {"finetuner"}
    return {
        name: {e for e in edges if e in modules and e != name and not name.startswith(e + ".")}
        for name, edges in graph.items()
        if name != "finetuner"
    }


def test_no_import_cycles():
    """No module reaches itself through imports, module-level or inside functions (TYPE_CHECKING aside)."""
    graph = import_graph()
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                raise AssertionError(f"import cycle: {' -> '.join(stack[stack.index(nxt) :] + [nxt])}")
            if not state.get(nxt):
                visit(nxt, stack + [nxt])
        state[node] = 2

    for name in sorted(graph):
        if not state.get(name):
            visit(name, [name])


def test_the_cycle_check_sees_imports_inside_functions(tmp_path, monkeypatch):
    """The check would fail on a loop closed by a function-level import (what it exists to catch)."""
    package = tmp_path / "finetuner"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from finetuner.b import g\n")
    (package / "b.py").write_text("def g():\n    from finetuner.a import f\n")
    monkeypatch.setitem(globals(), "FILES", sorted(package.rglob("*.py")))
    monkeypatch.setitem(globals(), "ROOT", package)
    with pytest.raises(AssertionError, match="import cycle: finetuner.a -> finetuner.b -> finetuner.a"):
        test_no_import_cycles()
