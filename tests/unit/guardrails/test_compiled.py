"""The engine's hot modules compiled with mypyc (`llmops_guardrails.compiled`, services/guardrails/setup.py).

- the test environment runs the compiled modules (so CI exercises them), unless LLMOPS_GUARDRAILS_PURE_PYTHON is
  set, when it runs none of them;
- the guard never runs stale compiled code: a build's manifest against the sources (`stale_reason`), the import
  path it picks (`use_compiled`), and end to end, in a copy of the package whose compiled module's `.py` was
  edited, in a fresh interpreter;
- what mypyc would have changed: `str.lower` keeps CPython's final sigma in compiled code.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import json
import os
import shutil
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

import llmops_guardrails
from llmops_guardrails import compiled

PACKAGE_DIR = Path(llmops_guardrails.__file__).parent
PURE = os.environ.get(compiled.PURE_ENV, "") not in ("", "0")
SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]


def test_the_test_environment_runs_the_compiled_modules_unless_told_not_to() -> None:
    modules = [importlib.import_module(m) for m in compiled.MODULES]
    loaded = {m.__name__: compiled.is_compiled(m) for m in modules}
    if PURE:
        assert compiled.STATE["mode"] == "pure"
        assert not any(loaded.values()), loaded
    else:
        assert compiled.STATE == {"mode": "compiled", "why": ""}, (
            f"the guardrails engine's compiled modules are not in use ({compiled.STATE['why']}): {compiled.REBUILD}")
        assert all(loaded.values()), loaded
        assert all(Path(m.__file__ or "").name.endswith(SUFFIX) for m in modules)


def test_lower_keeps_the_final_sigma_in_the_compiled_tagger() -> None:
    from llmops_guardrails.detectors.pii import tagger

    own = tagger.word_info("ΠΑΦΟΣ", False)[3]
    assert "w=παφος" in own and "s2=ος" in own
    assert "ΟΔΥΣΣΕΑΣ ΟΔΟΣ".lower() == "οδυσσεας οδος"  # (CPython's rule, which the compiled code must follow)


@pytest.fixture
def built(tmp_path: Path) -> Path:
    """A package directory with every compiled module's `.py`, an extension file beside each, the shared library
    beside the package and the manifest of a build of those sources (the extensions are empty files: only their
    presence is read)."""
    root = tmp_path / compiled.PACKAGE
    (tmp_path / f"{compiled.GROUP}__mypyc{SUFFIX}").touch()
    for module in compiled.MODULES:
        source = compiled.source_of(root, module)
        source.parent.mkdir(parents=True, exist_ok=True)
        for parent in [source.parent, *source.parent.parents]:
            if parent == tmp_path:
                break
            (parent / "__init__.py").touch()
        source.write_text(f"X = {module!r}\n", encoding="utf-8")
        source.with_name(source.stem + SUFFIX).touch()
    (root / compiled.MANIFEST).write_text(json.dumps(compiled.manifest(root)), encoding="utf-8")
    return root


def test_a_build_of_these_very_sources_is_current(built: Path) -> None:
    assert compiled.stale_reason(built) == ""


def test_an_edited_source_makes_the_build_stale(built: Path) -> None:
    source = compiled.source_of(built, compiled.MODULES[-1])
    source.write_text(source.read_text(encoding="utf-8") + "# edited\n", encoding="utf-8")
    assert compiled.stale_reason(built) == "their sources changed since they were compiled"


def test_an_edited_module_the_compiled_ones_import_makes_the_build_stale(built: Path) -> None:
    helper = built / "helper.py"
    helper.write_text("Y = 1\n", encoding="utf-8")
    first = compiled.source_of(built, compiled.MODULES[0])
    first.write_text(f"from {compiled.PACKAGE} import helper\n", encoding="utf-8")
    (built / compiled.MANIFEST).write_text(json.dumps(compiled.manifest(built)), encoding="utf-8")
    assert f"{compiled.PACKAGE}.helper" in compiled.manifest(built)["sources"]  # type: ignore[operator]
    assert compiled.stale_reason(built) == ""
    helper.write_text("Y = 2\n", encoding="utf-8")
    assert compiled.stale_reason(built) == "their sources changed since they were compiled"


def test_extensions_without_a_manifest_or_of_another_set_are_stale(built: Path) -> None:
    manifest = built / compiled.MANIFEST
    recorded = json.loads(manifest.read_text(encoding="utf-8"))
    manifest.write_text(json.dumps({**recorded, "modules": recorded["modules"][:-1]}), encoding="utf-8")
    assert compiled.stale_reason(built) == "the compiled modules are another set than this source tree compiles"
    manifest.unlink()
    assert compiled.stale_reason(built) == f"no readable {compiled.MANIFEST} beside the compiled modules"


def test_a_missing_extension_makes_the_whole_build_unusable(built: Path) -> None:
    source = compiled.source_of(built, compiled.MODULES[1])
    source.with_name(source.stem + SUFFIX).unlink()
    assert compiled.stale_reason(built) == f"no compiled extension for {compiled.MODULES[1]}"


def test_a_missing_shared_library_makes_the_whole_build_unusable(built: Path) -> None:
    (built.parent / f"{compiled.GROUP}__mypyc{SUFFIX}").unlink()
    assert compiled.stale_reason(built) == f"no compiled extension for the shared library {compiled.GROUP}__mypyc"


def test_no_extension_at_all_is_the_pure_python_install(built: Path) -> None:
    (built.parent / f"{compiled.GROUP}__mypyc{SUFFIX}").unlink()
    for module in compiled.MODULES:
        source = compiled.source_of(built, module)
        source.with_name(source.stem + SUFFIX).unlink()
    assert compiled.stale_reason(built) == "none"


@pytest.fixture
def meta_path() -> Iterator[None]:
    """`use_compiled` decides once per process: the finders it adds are taken away again."""
    before = list(sys.meta_path)
    state = dict(compiled.STATE)
    yield
    sys.meta_path[:] = before
    compiled.STATE.update(state)


def _pure_finders() -> list[compiled.PureFinder]:
    return [f for f in sys.meta_path if isinstance(f, compiled.PureFinder)]


@pytest.mark.usefixtures("meta_path")
def test_use_compiled_runs_a_current_build(built: Path) -> None:
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, compiled.PureFinder)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert compiled.use_compiled(built, {}) is True
    assert compiled.STATE == {"mode": "compiled", "why": ""}
    assert _pure_finders() == []


@pytest.mark.usefixtures("meta_path")
def test_use_compiled_falls_back_to_the_sources_of_a_stale_build_with_one_warning(built: Path) -> None:
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, compiled.PureFinder)]
    source = compiled.source_of(built, compiled.MODULES[0])
    source.write_text("X = 'edited'\n", encoding="utf-8")
    with pytest.warns(RuntimeWarning, match="their sources changed since they were compiled") as caught:
        assert compiled.use_compiled(built, {}) is False
    assert len(caught) == 1
    assert compiled.STATE["mode"] == "pure"
    [finder] = _pure_finders()
    assert sys.meta_path[0] is finder
    spec = finder.find_spec(compiled.MODULES[0])
    assert spec is not None and spec.origin == str(source)
    assert finder.find_spec(f"{compiled.PACKAGE}.engine") is None  # what is never compiled is found as before
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert compiled.use_compiled(built, {}) is False  # decided once: no second warning, no second finder
    assert len(_pure_finders()) == 1


@pytest.mark.usefixtures("meta_path")
def test_the_environment_variable_forces_pure_python_quietly(built: Path) -> None:
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, compiled.PureFinder)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert compiled.use_compiled(built, {compiled.PURE_ENV: "1"}) is False
    assert {"mode": "pure", "why": f"{compiled.PURE_ENV} is set"} == compiled.STATE
    assert len(_pure_finders()) == 1


def _import_in_fresh_interpreter(root: Path, env_extra: dict[str, str]) -> tuple[str, str]:
    """Import a compiled module from the package under `root` in a new interpreter: (its file, stderr)."""
    env = {k: v for k, v in os.environ.items() if k != compiled.PURE_ENV}
    env["PYTHONPATH"] = os.pathsep.join([str(root), env.get("PYTHONPATH", "")])
    env.update(env_extra)
    code = ("import llmops_guardrails.detectors.pii.classes as m, llmops_guardrails.compiled as c; "
            "print(m.__file__); print(c.STATE['mode'])")
    done = subprocess.run([sys.executable, "-W", "default", "-c", code], env=env, capture_output=True, text=True,
                          timeout=120, check=True)
    file, mode = done.stdout.split()
    return f"{mode} {file}", done.stderr


def test_an_edited_module_never_runs_as_its_old_compiled_code_end_to_end(tmp_path: Path) -> None:
    """A copy of the installed package (with its build, when there is one), imported in a fresh interpreter: as
    built, then with a compiled module's `.py` edited, then forced to pure Python."""
    copy = tmp_path / "site"
    shutil.copytree(PACKAGE_DIR, copy / compiled.PACKAGE, ignore=shutil.ignore_patterns("__pycache__", "data"))
    (copy / compiled.PACKAGE / "data").mkdir()
    for library in PACKAGE_DIR.parent.glob(f"{compiled.GROUP}__mypyc*"):
        shutil.copy(library, copy)
    classes = copy / compiled.PACKAGE / "detectors" / "pii" / "classes.py"
    got, err = _import_in_fresh_interpreter(copy, {})
    if PURE:  # this environment was told to run pure Python: its build (if any) must still be current or absent
        assert got.startswith(("compiled ", "pure ")), got
    else:
        assert got == f"compiled {classes.with_name('classes' + SUFFIX)}", err
        assert "RuntimeWarning" not in err
    classes.write_text(classes.read_text(encoding="utf-8") + "\nEDITED = True\n", encoding="utf-8")
    got, err = _import_in_fresh_interpreter(copy, {})
    assert got == f"pure {classes}"
    if not PURE:
        assert err.count("RuntimeWarning") == 1 and "their sources changed since they were compiled" in err, err
    got, err = _import_in_fresh_interpreter(copy, {compiled.PURE_ENV: "1"})
    assert got == f"pure {classes}"
    assert "RuntimeWarning" not in err
