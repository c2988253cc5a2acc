"""The test tree itself: no test module hides another.

With `--import-mode=importlib` pytest names a module that sits in a package (a folder with `__init__.py`) by its
dotted path from the first folder above that is not a package: `tests/unit/monitors/test_worker.py` and
`tests/integration/monitors/test_worker.py` are both `monitors.test_worker`, and the second one collected runs the
first one's tests under its own path, silently (this happened: 40 tests collected instead of 41)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def module_name(path: Path) -> str | None:
    """The name importlib mode gives `path` when it is inside a package below `tests/`, else None (such a module
    is named by its whole path: unique)."""
    parts = [path.stem]
    folder = path.parent
    while folder != TESTS and (folder / "__init__.py").exists():
        parts.insert(0, folder.name)
        folder = folder.parent
    return ".".join(parts) if len(parts) > 1 and folder != TESTS else None


def test_no_two_test_modules_share_a_package_name() -> None:
    by_name: dict[str, list[str]] = defaultdict(list)
    for path in sorted(TESTS.rglob("*.py")):
        name = module_name(path) if path.name != "__init__.py" else None  # two packages may share a name, not a module
        if name is not None:
            by_name[name].append(str(path.relative_to(TESTS)))
    assert {name: paths for name, paths in by_name.items() if len(paths) > 1} == {}


def test_the_check_sees_the_collision_it_guards_against() -> None:
    unit = module_name(TESTS / "unit" / "monitors" / "test_worker.py")
    integration = module_name(TESTS / "integration" / "monitors" / "test_worker.py")
    assert unit == integration == "monitors.test_worker"
