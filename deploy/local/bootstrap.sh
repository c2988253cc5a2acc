#!/usr/bin/env bash
# Sets up a development machine: system packages, then the virtualenv `.venv` at the repository root
# with every distribution of the suite installed in editable mode, the development tools (devtools/:
# the local stack, `llmops up | down | status | demo`, the fake LLM) included. Quick when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/../.."

bash deploy/local/install-system-packages.sh

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
[ -x .venv/bin/python ] || "$PY" -m venv .venv

stamp=.venv/.llmops-installed
want=$(cat requirements-dev.txt shared/pyproject.toml services/*/pyproject.toml sdk/pyproject.toml devtools/pyproject.toml \
  | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  editable=(-e shared -e "sdk[kafka,openai]")
  for svc in services/*/; do
    [ -f "$svc/pyproject.toml" ] && editable+=(-e "$svc")
  done
  editable+=(-e devtools)  # the development tools: here, never in a service image
  .venv/bin/python -m pip install -q "${editable[@]}" -r requirements-dev.txt
  echo "$want" > "$stamp"
fi

# The guardrails engine's modules compiled with mypyc (services/guardrails/setup.py, docs/guardrails.md): the
# editable install above builds them beside their sources; rebuilt here whenever those sources (or the build's
# recipe) changed since, so that an edited module never runs as its old compiled code (at import, the package
# would also refuse stale ones and fall back to pure Python, with a warning). Without a C compiler nothing is
# built and the pure-Python modules run. The stamp is the hash of the compiled sources and of the recipe.
cstamp=.venv/.llmops-guardrails-compiled
cwant=$(.venv/bin/python services/guardrails/llmops_guardrails/compiled.py sources-hash)-$(
  cat services/guardrails/setup.py services/guardrails/mypyc.ini | sha256sum | cut -d' ' -f1)
old=$(cat "$cstamp" 2>/dev/null || true)
if [ "$old" != "$cwant" ]; then
  if { [ -n "$old" ] && [ "${old#*-}" != "${cwant#*-}" ]; } \
     || ! .venv/bin/python services/guardrails/llmops_guardrails/compiled.py check >/dev/null; then
    echo "building the guardrails engine's compiled modules (mypyc)"
    (cd services/guardrails && ../../.venv/bin/python setup.py -q build_ext --inplace >/dev/null) \
      || echo "the guardrails engine's compiled modules were not built: its pure-Python modules run" >&2
  fi
  echo "$cwant" > "$cstamp"
fi
