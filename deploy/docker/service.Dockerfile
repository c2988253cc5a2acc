# One image per service, built from the repository root:
#   docker build -f deploy/docker/service.Dockerfile --build-arg SERVICE=ingest -t llmops-ingest .
# Each image installs the shared package and its own service only (and, for the console, the services it
# reads through, named by ALSO) (ingest carries no spaCy); never the
# development tools (devtools/: the local stack, the fake LLM, the demo), so `llmops` here has the
# operational commands only.
# Not exercised by CI (no Docker engine there); kept in step with the native stack.
FROM python:3.11-slim
ARG SERVICE
# the services whose functions this one imports (the console: "guardrails billing evaluator traces prompts monitors")
ARG ALSO=""
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LLMOPS_MIGRATIONS_DIR=/app/deploy/migrations LLMOPS_HOST=0.0.0.0
WORKDIR /app
COPY shared/ shared/
COPY services/ services/
COPY deploy/migrations/ deploy/migrations/
RUN pip install ./shared $(for s in ${ALSO}; do printf './services/%s ' "$s"; done) ./services/${SERVICE}
RUN useradd --system --uid 10001 llmops
USER llmops
