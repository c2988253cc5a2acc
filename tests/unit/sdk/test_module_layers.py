"""The SDK's modules import each other one way: no cycle, and no import hidden inside a function to
break one (as `tracing` once did to reach `client`)."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path


def sdk_modules() -> dict[str, ast.Module]:
    spec = importlib.util.find_spec("llmops_sdk")
    assert spec is not None and spec.submodule_search_locations
    folder = Path(next(iter(spec.submodule_search_locations)))
    return {p.stem: ast.parse(p.read_text(), str(p)) for p in sorted(folder.glob("*.py"))}


def internal_imports(tree: ast.Module, *, top_level_only: bool) -> set[str]:
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("llmops_sdk."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("llmops_sdk."))
    return found


def test_no_module_imports_another_inside_a_function() -> None:
    hidden = {name: internal_imports(tree, top_level_only=False) - internal_imports(tree, top_level_only=True)
              for name, tree in sdk_modules().items()}
    assert {name: deps for name, deps in hidden.items() if deps} == {}


def test_the_modules_import_each_other_without_a_cycle() -> None:
    graph = {name: internal_imports(tree, top_level_only=False) for name, tree in sdk_modules().items()
             if name != "__init__"}
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"import cycle: {' -> '.join((*path, name))}"
        if name in done:
            return
        for dep in graph.get(name, ()):
            visit(dep, (*path, name))
        done.add(name)

    for name in graph:
        visit(name, ())
    assert "tracing" not in graph["client"] and "client" in graph["tracing"]
    assert {"sender", "recorder", "client", "tracing"} <= set(graph)
