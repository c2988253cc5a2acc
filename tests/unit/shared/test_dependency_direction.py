"""Imports go one way: services -> shared; devtools -> services, shared, SDK; nothing -> devtools or tests.

A static scan with `ast` of every `import` and `from ... import` in every module of a package, those
inside functions and under `if TYPE_CHECKING:` included, plus `importlib.import_module("...")` and
`__import__("...")` with a literal name. `llmops_shared` is in every service image: if it imported a
service it would carry (or fail without) that service, and if it imported `llmops_devtools` it would
fail in an image, which has no development tools.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
SERVICES = ("llmops_ingest", "llmops_guardrails", "llmops_billing", "llmops_evaluator", "llmops_traces",
            "llmops_prompts")


def imported_modules(source: str, filename: str = "<source>") -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every import in `source`; relative imports are the package's own."""
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module:
                yield node.lineno, node.module
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str) and _is_dynamic_import(node.func):
            yield node.lineno, node.args[0].value


def _is_dynamic_import(func: ast.expr) -> bool:
    if isinstance(func, ast.Name):
        return func.id in {"__import__", "import_module"}
    return isinstance(func, ast.Attribute) and func.attr == "import_module"


def package_files(package: str) -> list[Path]:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        pytest.fail(f"{package} is not installed (run make bootstrap)")
    files = sorted(p for location in spec.submodule_search_locations for p in Path(location).rglob("*.py"))
    assert files, f"no modules found for {package}"
    return files


def violations(package: str, forbidden: Callable[[str], bool]) -> list[str]:
    """`path:line imports module` for each import of `package` that `forbidden(top_level_name)` refuses."""
    found = []
    for path in package_files(package):
        for line, module in imported_modules(path.read_text(), str(path)):
            if forbidden(module.split(".")[0]):
                where = path.relative_to(REPO) if path.is_relative_to(REPO) else path
                found.append(f"{where}:{line} imports {module}")
    return found


def test_the_shared_package_imports_no_service_and_no_devtools() -> None:
    def forbidden(top: str) -> bool:
        return top.startswith("llmops_") and top != "llmops_shared"

    assert violations("llmops_shared", forbidden) == []


@pytest.mark.parametrize("package", [*SERVICES, "llmops_sdk"])
def test_no_deployed_package_imports_the_development_tools(package: str) -> None:
    assert violations(package, lambda top: top == "llmops_devtools") == []


def test_the_sdk_imports_the_standard_library_only() -> None:
    # The extras `[kafka]`, `[openai]`, `[anthropic]`, `[langchain]`, `[llamaindex]` (pydantic comes with it) and
    # `[litellm]`: imported only by the module of that integration, or when used.
    optional = {"aiokafka", "openai", "anthropic", "langchain_core", "llama_index", "pydantic", "litellm"}
    allowed = set(sys.stdlib_module_names) | optional | {"__future__", "llmops_sdk"}
    assert violations("llmops_sdk", lambda top: top not in allowed) == []


def test_the_benchmarks_import_nothing_from_the_tests() -> None:
    found = [f"{path.name}:{line} imports {module}"
             for path in sorted((REPO / "bench").glob("*.py"))
             for line, module in imported_modules(path.read_text(), str(path))
             if module.split(".")[0] == "tests"]
    assert found == []


def test_the_scan_sees_imports_anywhere_in_a_module() -> None:
    """The scanner itself: imports inside functions, under TYPE_CHECKING and by name are all found."""
    source = '''
import os
from llmops_shared import db
from . import kafka
if TYPE_CHECKING:
    from llmops_billing.ledger import Ledger
def demo():
    import llmops_devtools.stack.local as local
    from llmops_evaluator.service import create_evaluator
    return importlib.import_module("llmops_guardrails.api"), __import__("llmops_ingest")
'''
    assert sorted(m for _line, m in imported_modules(source)) == [
        "llmops_billing.ledger", "llmops_devtools.stack.local", "llmops_evaluator.service",
        "llmops_guardrails.api", "llmops_ingest", "llmops_shared", "os",
    ]
