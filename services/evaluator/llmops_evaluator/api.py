"""The evaluator API (FastAPI, port 8082): evaluators, human feedback, the review queue, agreement, results.

Every route is scoped to the tenant of the calling API key: another tenant's ids answer 404, exactly like
ids that do not exist. Scopes: `admin` for evaluators; `eval:write` (or `admin`) for everything else.
Every error answers RFC 9457 problem details (`llmops_shared.problems`): bad input is 422 with `errors`
naming each field (`{"loc": ["body", "score"], "msg": ...}`). This module only assembles the app: one
router per resource in `llmops_evaluator.routes`, the work in the domain modules they call.

    python -m llmops_evaluator.api      (LLMOPS_HOST, LLMOPS_EVALUATOR_PORT; default 127.0.0.1:8082)
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from prometheus_client import Counter

from llmops_evaluator.credentials import JudgeAccess
from llmops_evaluator.routes import agreement, evaluators, feedback, results, reviews
from llmops_evaluator.settings import EvaluatorSettings
from llmops_shared.clock import Clock, utc_now
from llmops_shared.egress import Resolver
from llmops_shared.http import api_backends, run_api, suite_api
from llmops_shared.logging import configure_logging

log = logging.getLogger("llmops_evaluator.api")

REQUESTS = Counter("llmops_evaluator_api_requests_total", "Evaluator API requests, by route and status",
                   ["route", "status"])


def create_app(settings: EvaluatorSettings, *, resolver: Resolver | None = None, clock: Clock = utc_now) -> FastAPI:
    """The app; `resolver` answers the egress check's DNS questions (the system's by default; tests give
    names fixed answers); `clock` says what "now" is (review locks: when one was taken, when it expires)."""
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with api_backends(app, settings):
            log.info("evaluator API ready", extra={"port": settings.port})
            yield

    app = suite_api(
        settings,
        title="LLMOps evaluator API",
        description="Evaluators (LLM-as-judge on production traffic), human feedback, the review queue, "
                    "judge-human agreement and judgment results. Tenant-scoped by API key. Errors are RFC 9457 "
                    "problem details.",
        lifespan=lifespan,
        json_body=False,
    )
    app.state.judge_access = JudgeAccess.of(settings, resolver=resolver)
    app.state.clock = clock

    @app.middleware("http")
    async def count(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        route = request.scope.get("route")
        REQUESTS.labels(getattr(route, "path", "unmatched"), str(response.status_code)).inc()
        return response

    for resource in (evaluators, feedback, reviews, agreement, results):
        app.include_router(resource.router)
    return app


def main() -> None:
    settings = EvaluatorSettings()
    configure_logging("evaluator-api", settings.log_level)
    run_api(create_app(settings), settings)


if __name__ == "__main__":
    main()
