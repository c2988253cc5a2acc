"""The engine's hot modules compiled to C extensions with mypyc, and the guard that never runs stale ones.

`setup.py` (beside this package) compiles `MODULES` with mypyc into one shared library beside the package
(`llmops_guardrails_compiled__mypyc*.so`) and a small extension per module beside its `.py`, and writes `MANIFEST`:
the sha256 of the sources the compiled code was built from (`manifest`: the compiled modules and the modules of
this package they import). Python's importer prefers an extension module to the `.py` beside it, so without a
guard a developer who edits a compiled module would silently run the old code. `use_compiled` (called by the
package's `__init__`, before any compiled module can be imported) therefore checks, at import:

- `LLMOPS_GUARDRAILS_PURE_PYTHON=1`: the pure-Python modules, quietly (as asked);
- no compiled extension at all (no C compiler when installing): the pure-Python modules, quietly;
- extensions without a manifest, a manifest of other modules or other sources (a `.py` edited since the build),
  or a module's extension or the shared library missing: the pure-Python modules, with one `RuntimeWarning`
  saying how to rebuild (`make bootstrap`, whose stamp includes these sources' hash, or `python setup.py
  build_ext --inplace` in `services/guardrails`).

The pure-Python modules are imported by a finder placed first on `sys.meta_path` that loads each compiled
module from its `.py` (all of them or none: compiled modules call each other natively). `STATE` says which
path was taken and why. This module imports only the standard library: `setup.py` loads it by path.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import json
import os
import sys
import warnings
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType

PACKAGE = "llmops_guardrails"
# The hot modules (issue 17 item 1): the PII name code and the parts of the detector around it.
MODULES = (
    "llmops_guardrails.detectors.pii.classes",
    "llmops_guardrails.detectors.pii.cues",
    "llmops_guardrails.detectors.pii.lexicon",
    "llmops_guardrails.detectors.pii.names",
    "llmops_guardrails.detectors.pii.ner_gate",
    "llmops_guardrails.detectors.pii.numbers",
    "llmops_guardrails.detectors.pii.people",
    "llmops_guardrails.detectors.pii.places",
    "llmops_guardrails.detectors.pii.refinement",
    "llmops_guardrails.detectors.pii.results",
    "llmops_guardrails.detectors.pii.tagger",
    "llmops_guardrails.detectors.pii.detector",
    "llmops_guardrails.detectors.keys",
    "llmops_guardrails.detectors.secrets",
    "llmops_guardrails.detectors.injection",
    "llmops_guardrails.decision",
    "llmops_guardrails.redact",
)
# The shared library, `llmops_guardrails_compiled__mypyc`, beside the package (mypyc derives each module's `__file__`
# from its place: a library inside the package would give paths with the package's name twice).
GROUP = "llmops_guardrails_compiled"
MANIFEST = "_compiled.json"  # in the package directory, written by the build
PURE_ENV = "LLMOPS_GUARDRAILS_PURE_PYTHON"
REBUILD = ("run `make bootstrap` at the repository root (or `python setup.py build_ext --inplace` in "
           "services/guardrails), or set LLMOPS_GUARDRAILS_PURE_PYTHON=1")

STATE: dict[str, str] = {"mode": "unchecked", "why": ""}


def source_of(package_dir: Path, module: str) -> Path:
    """The `.py` of `module` (a module or package of this package) under `package_dir`."""
    parts = module.split(".")
    assert parts[0] == PACKAGE, module
    where = package_dir.joinpath(*parts[1:])
    return where / "__init__.py" if where.is_dir() else where.with_suffix(".py")


def package_imports(package_dir: Path, modules: Sequence[str]) -> list[str]:
    """`modules` and every module of this package they import, directly or not (from their sources' `ast`)."""
    import ast

    seen: set[str] = set()
    todo = list(modules)
    while todo:
        module = todo.pop()
        path = source_of(package_dir, module)
        if module in seen or not path.is_file():
            continue
        seen.add(module)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            todo += [name for name in names
                     if name.split(".")[0] == PACKAGE and source_of(package_dir, name).is_file()]
    return sorted(seen)


def sources_hash(package_dir: Path, sources: Sequence[str]) -> str:
    """The sha256 over `sources` (module names) and their bytes, in order."""
    digest = hashlib.sha256()
    for module in sources:
        digest.update(module.encode() + b"\0")
        digest.update(source_of(package_dir, module).read_bytes() + b"\0")
    return digest.hexdigest()


def manifest(package_dir: Path) -> dict[str, object]:
    """What a build of `MODULES` records: the modules, the sources they were compiled from and their hash."""
    sources = package_imports(package_dir, MODULES)
    return {"modules": list(MODULES), "sources": sources, "sha256": sources_hash(package_dir, sources)}


def _extension_of(package_dir: Path, module: str) -> Path | None:
    shared = module == GROUP + "__mypyc"
    stem = package_dir.parent / module if shared else source_of(package_dir, module).with_suffix("")
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        candidate = stem.with_name(stem.name + suffix)
        if candidate.is_file():
            return candidate
    return None


def stale_reason(package_dir: Path) -> str:
    """Why the compiled modules under `package_dir` must not run ("" when they are current, "none" when absent)."""
    extensions = [_extension_of(package_dir, m) for m in MODULES]
    if not any(extensions):
        return "none"
    missing = [m for m, e in zip(MODULES, extensions, strict=True) if e is None]
    if _extension_of(package_dir, GROUP + "__mypyc") is None:
        missing.append(f"the shared library {GROUP}__mypyc")
    if missing:
        return f"no compiled extension for {', '.join(missing)}"
    try:
        built = json.loads((package_dir / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return f"no readable {MANIFEST} beside the compiled modules"
    if built.get("modules") != list(MODULES):
        return "the compiled modules are another set than this source tree compiles"
    sources = built.get("sources")
    if not isinstance(sources, list) or not all(isinstance(s, str) for s in sources):
        return f"{MANIFEST} lists no sources"
    try:
        now = sources_hash(package_dir, sources)
    except OSError:
        return "a source the compiled modules were built from is gone"
    if now != built.get("sha256"):
        return "their sources changed since they were compiled"
    return ""


class PureFinder:
    """Imports the compiled modules from their `.py` (first on `sys.meta_path`, so the extensions are never loaded)."""

    def __init__(self, package_dir: Path) -> None:
        self.package_dir = package_dir
        self.modules = frozenset(MODULES)

    def find_spec(self, fullname: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> ModuleSpec | None:
        if fullname not in self.modules:
            return None
        return importlib.util.spec_from_file_location(fullname, source_of(self.package_dir, fullname))


def use_compiled(package_dir: Path, environ: dict[str, str] | None = None) -> bool:
    """Decide once per process whether the compiled modules run (see the module's docstring); True if they do."""
    env = os.environ if environ is None else environ
    if any(isinstance(f, PureFinder) for f in sys.meta_path):
        return False
    if env.get(PURE_ENV, "") not in ("", "0"):
        reason = f"{PURE_ENV} is set"
    else:
        reason = stale_reason(package_dir)
        if not reason:
            STATE.update(mode="compiled", why="")
            return True
        if reason == "none":
            reason = "no compiled modules are built"
        else:
            reason = f"compiled modules not used: {reason}"
            warnings.warn(f"llmops_guardrails: {reason}; running the pure-Python modules ({REBUILD})",
                          RuntimeWarning, stacklevel=3)
    sys.meta_path.insert(0, PureFinder(package_dir))
    STATE.update(mode="pure", why=reason)
    return False


def is_compiled(module: ModuleType) -> bool:
    """Whether `module` was loaded from a compiled extension."""
    return isinstance(getattr(module, "__loader__", None), importlib.machinery.ExtensionFileLoader)


def main(argv: Sequence[str]) -> int:
    """`python compiled.py sources-hash`: the hash a build of this tree records; `python compiled.py check`: exit
    0 when the compiled modules beside the sources are current, 1 (and why) otherwise (deploy/local/bootstrap.sh)."""
    package_dir = Path(__file__).resolve().parent
    if list(argv) == ["sources-hash"]:
        print(manifest(package_dir)["sha256"])
        return 0
    if list(argv) == ["check"]:
        reason = stale_reason(package_dir)
        print("compiled modules current" if not reason else f"compiled modules not current: {reason}")
        return 0 if not reason else 1
    print("usage: compiled.py sources-hash | check", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
