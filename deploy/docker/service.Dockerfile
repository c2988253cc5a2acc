# One image per service, built from the repository root:
#   docker build -f deploy/docker/service.Dockerfile --build-arg SERVICE=ingest -t llmops-ingest .
# Each image installs the shared package and its own service only (and, for the console, the services it
# reads through, named by ALSO) (ingest carries no spaCy); never the
# development tools (devtools/: the local stack, the fake LLM, the demo), so `llmops` here has the
# operational commands only.
# Two stages: the wheels are built where a C compiler is (the guardrails engine's hot modules are compiled with
# mypyc, services/guardrails/setup.py; every other wheel is pure Python), and only the wheels reach the image.
# Not exercised by CI (no Docker engine there); kept in step with the native stack.
FROM python:3.11-slim AS wheels
ARG SERVICE
# the services whose functions this one imports (the console: "guardrails billing evaluator traces prompts monitors")
ARG ALSO=""
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends gcc libc6-dev >/dev/null \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY shared/ shared/
COPY services/ services/
RUN pip wheel --no-deps -w /wheels ./shared $(for s in ${ALSO}; do printf './services/%s ' "$s"; done) ./services/${SERVICE}

FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LLMOPS_MIGRATIONS_DIR=/app/deploy/migrations LLMOPS_HOST=0.0.0.0
WORKDIR /app
COPY deploy/migrations/ deploy/migrations/
COPY --from=wheels /wheels /wheels
RUN pip install /wheels/*.whl && rm -rf /wheels
RUN useradd --system --uid 10001 llmops
USER llmops
