"""Compiles the guardrails engine's hot modules to C extensions with mypyc (docs/guardrails.md, "Compiled modules").

Which modules, the manifest of the sources they are built from and the guard that never runs stale ones live in
`llmops_guardrails/compiled.py` (loaded here by path: it imports only the standard library). Everything else of
the distribution is in `pyproject.toml`. The extensions are optional: without a C compiler (or mypyc), or with
LLMOPS_GUARDRAILS_PURE_PYTHON=1 set while building, the package installs and runs as pure Python.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Any

from setuptools import setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent
PACKAGE_DIR = HERE / "llmops_guardrails"


def _compiled_module() -> Any:
    spec = importlib.util.spec_from_file_location("_llmops_guardrails_compiled", PACKAGE_DIR / "compiled.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


compiled = _compiled_module()
MANIFEST = compiled.manifest(PACKAGE_DIR)  # the sources as mypyc reads them now


class BuildExt(build_ext):
    """`build_ext` that writes the manifest beside the extensions once they are all built."""

    def run(self) -> None:
        super().run()
        if not self.extensions:
            return
        built = {ext.name: Path(self.get_ext_fullpath(ext.name)) for ext in self.extensions}
        if not all(path.is_file() for path in built.values()):  # an optional extension failed: the guard sees it
            return
        module = compiled.MODULES[0]  # its extension is in the package's tree, as many levels down as its name
        target = built[module].parents[module.count(".") - 1]
        (target / compiled.MANIFEST).write_text(json.dumps(MANIFEST, indent=1) + "\n", encoding="utf-8")


def _without_unsafe_primitives() -> None:
    """mypyc's `str.lower` primitive (CPyStr_Lower, before Python 3.13) lowercases character by character,
    without CPython's final-sigma rule ("ΠΑΦΟΣ".lower() is "παφος", not "παφοσ"): it is dropped, so that `lower()`
    calls CPython's own method and compiled code gives the same words as pure Python
    (tests/unit/guardrails/test_compiled.py)."""
    from mypyc.primitives import registry

    ops = registry.method_call_ops.get("lower", [])
    ops[:] = [op for op in ops if op.c_function_name != "CPyStr_Lower"]


def extensions() -> list[Any]:
    if os.environ.get(compiled.PURE_ENV, "") not in ("", "0"):
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        print("llmops-guardrails: mypyc is not installed: pure-Python modules only", file=sys.stderr)
        return []
    _without_unsafe_primitives()
    os.chdir(HERE)  # mypyc's paths and its `build/` directory are relative
    paths = [str(compiled.source_of(Path("llmops_guardrails"), m)) for m in compiled.MODULES]
    exts = mypycify(["--config-file", "mypyc.ini", *paths], group_name=compiled.GROUP, opt_level="3")
    for ext in exts:
        ext.optional = True  # a failed C build leaves the pure-Python modules (and the guard says why)
    return exts


setup(ext_modules=extensions(), cmdclass={"build_ext": BuildExt})
