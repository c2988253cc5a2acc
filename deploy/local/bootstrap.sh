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
