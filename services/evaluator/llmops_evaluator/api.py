"""The evaluator API (FastAPI, port 8082): evaluators, human feedback, the review queue, agreement, results.

Every route is scoped to the tenant of the calling API key: another tenant's ids answer 404, exactly like
ids that do not exist. Scopes: `admin` for evaluators; `eval:write` (or `admin`) for everything else.
Bad input answers 422 with FastAPI's shape, `{"detail": [{"loc": ["body", "score"], "msg": ...}]}`,
naming the field. The work is done in `llmops_evaluator.service`; routes only translate.

    python -m llmops_evaluator.api      (LLMOPS_HOST, LLMOPS_EVALUATOR_PORT; default 127.0.0.1:8082)
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Any

import asyncpg
from fastapi import Body, Depends, FastAPI, Query, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import Counter
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from llmops_evaluator import service
from llmops_evaluator.rubrics import RubricRef
from llmops_evaluator.service import Conflict, InvalidBody, InvalidField, NotFound, ResultFilter
from llmops_evaluator.settings import EvaluatorSettings
from llmops_shared.apikeys import Principal, Scope
from llmops_shared.contract import Identifier
from llmops_shared.http import api_backends, backend_checks, ops_router, require_scope, run_api
from llmops_shared.logging import configure_logging

log = logging.getLogger("llmops_evaluator.api")

REQUESTS = Counter("llmops_evaluator_api_requests_total", "Evaluator API requests, by route and status",
                   ["route", "status"])

Admin = Annotated[Principal, Depends(require_scope(Scope.ADMIN))]
Reviewer = Annotated[Principal, Depends(require_scope(Scope.EVAL_WRITE))]

Label = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=64)]
Comment = Annotated[str, StringConstraints(strict=True, max_length=2000)]


async def _connection(request: Request) -> AsyncIterator[asyncpg.Connection]:
    async with request.app.state.pool.acquire() as conn:
        yield conn


Conn = Annotated[asyncpg.Connection, Depends(_connection)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Rating(_Body):
    score: Annotated[int, Field(strict=True)] | None = Field(None, description="On the rubric's scale, e.g. 1-5")
    label: Label | None = Field(None, description="One of the rubric's labels, e.g. `relevant`")
    comment: Comment | None = None
    reviewer: Identifier | None = Field(None, description="Who rates; default: the API key's id")


class FeedbackCreate(Rating):
    event_id: uuid.UUID
    rubric: RubricRef


class ReviewNext(_Body):
    reviewer: Identifier | None = Field(None, description="Who takes the item; default: the API key's id")
    lock_minutes: Annotated[int, Field(ge=1, le=240)] = 15
    rubric: RubricRef | None = None
    evaluator_id: Identifier | None = None


_EVALUATOR_EXAMPLE = {
    "id": "support-quality", "apps": ["support-bot"], "rubrics": ["relevance@1", "safety@1"], "sample_rate": 0.05,
    "judge": {"model": "gpt-4o-mini", "base_url": "https://api.openai.com/v1", "api_key_env": "ACME_JUDGE_KEY"},
    "max_concurrency": 4, "daily_spend_cap_usd": "20.00", "review_sample_rate": 0.1,
}
EvaluatorBody = Annotated[dict[str, Any], Body(
    description="An evaluator config (docs/evaluator.md); `tenant_id` is the key's and may be omitted",
    openapi_examples={"evaluator": {"value": _EVALUATOR_EXAMPLE}})]


def create_app(settings: EvaluatorSettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with api_backends(app, settings):
            log.info("evaluator API ready", extra={"port": settings.port})
            yield

    app = FastAPI(
        title="LLMOps evaluator API",
        version="1.0",
        description="Evaluators (LLM-as-judge on production traffic), human feedback, the review queue, "
                    "judge-human agreement and judgment results. Tenant-scoped by API key.",
        lifespan=lifespan,
    )

    app.include_router(ops_router(backend_checks(app)))
    _errors(app)

    @app.middleware("http")
    async def count(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        route = request.scope.get("route")
        REQUESTS.labels(getattr(route, "path", "unmatched"), str(response.status_code)).inc()
        return response

    # -- evaluators (admin) ------------------------------------------------------------------------
    @app.get("/v1/evaluators", tags=["evaluators"], summary="The tenant's evaluators")
    async def list_evaluators(principal: Admin, conn: Conn) -> dict[str, Any]:
        return {"items": await service.list_evaluators(conn, tenant_id=principal.tenant_id)}

    @app.post("/v1/evaluators", tags=["evaluators"], status_code=201, summary="Create an evaluator",
              responses={409: {"description": "the id is taken"}, 422: {"description": "invalid config"}})
    async def create_evaluator(body: EvaluatorBody, principal: Admin, conn: Conn) -> dict[str, Any]:
        return await service.create_evaluator(conn, tenant_id=principal.tenant_id, body=body)

    @app.get("/v1/evaluators/{evaluator_id}", tags=["evaluators"], summary="One evaluator")
    async def get_evaluator(evaluator_id: str, principal: Admin, conn: Conn) -> dict[str, Any]:
        return await service.get_evaluator(conn, tenant_id=principal.tenant_id, evaluator_id=evaluator_id)

    @app.put("/v1/evaluators/{evaluator_id}", tags=["evaluators"], summary="Replace an evaluator's config")
    async def replace_evaluator(evaluator_id: str, body: EvaluatorBody, principal: Admin,
                                conn: Conn) -> dict[str, Any]:
        return await service.replace_evaluator(conn, tenant_id=principal.tenant_id, evaluator_id=evaluator_id,
                                               body=body)

    @app.delete("/v1/evaluators/{evaluator_id}", tags=["evaluators"], status_code=204,
                summary="Disable an evaluator (its results stay; PUT with enabled: true restarts it)")
    async def disable_evaluator(evaluator_id: str, principal: Admin, conn: Conn) -> Response:
        await service.disable_evaluator(conn, tenant_id=principal.tenant_id, evaluator_id=evaluator_id)
        return Response(status_code=204)

    # -- human feedback ----------------------------------------------------------------------------
    @app.post("/v1/feedback", tags=["feedback"], status_code=201,
              summary="A person's score or label for a judged interaction on a rubric",
              responses={200: {"description": "replaced this reviewer's earlier feedback"},
                         404: {"description": "no judged interaction with this event_id"}})
    async def submit_feedback(body: FeedbackCreate, principal: Reviewer, conn: Conn) -> JSONResponse:
        feedback, created = await service.submit_feedback(
            conn, tenant_id=principal.tenant_id, event_id=body.event_id, rubric_ref=body.rubric, score=body.score,
            label=body.label, comment=body.comment, reviewer=body.reviewer or principal.key_id)
        return _json(feedback, 201 if created else 200)

    # -- the review queue --------------------------------------------------------------------------
    @app.post("/v1/review/next", tags=["review"], summary="Take the next review item, locked for you",
              responses={204: {"description": "nothing to review"}})
    async def review_next(principal: Reviewer, conn: Conn,
                          body: Annotated[ReviewNext | None, Body()] = None) -> Response:
        options = body or ReviewNext()
        item = await service.next_review_item(
            conn, tenant_id=principal.tenant_id, reviewer=options.reviewer or principal.key_id,
            lock_minutes=options.lock_minutes, rubric=options.rubric, evaluator_id=options.evaluator_id)
        return Response(status_code=204) if item is None else _json(item)

    @app.post("/v1/review/{item_id}/submit", tags=["review"], summary="Rate the item you hold; completes it",
              responses={404: {"description": "no such item"},
                         409: {"description": "not locked by you, or already completed"}})
    async def review_submit(item_id: int, body: Rating, principal: Reviewer, conn: Conn) -> dict[str, Any]:
        return await service.submit_review(conn, tenant_id=principal.tenant_id, item_id=item_id,
                                           reviewer=body.reviewer or principal.key_id, score=body.score,
                                           label=body.label, comment=body.comment)

    # -- agreement and results ---------------------------------------------------------------------
    @app.get("/v1/agreement", tags=["agreement"], summary="Judge vs people on one rubric")
    async def agreement(principal: Reviewer, conn: Conn, rubric: Annotated[RubricRef, Query()],
                        evaluator_id: str | None = None) -> dict[str, Any]:
        return await service.agreement_report(conn, tenant_id=principal.tenant_id, rubric_ref=rubric,
                                              evaluator_id=evaluator_id)

    @app.get("/v1/results", tags=["results"], summary="Judgment results, newest first, paginated")
    async def results(*, principal: Reviewer, conn: Conn, event_id: uuid.UUID | None = None,
                      evaluator_id: str | None = None, rubric: str | None = None, status: str | None = None,
                      since: datetime | None = None, until: datetime | None = None,
                      limit: Annotated[int, Query(ge=1, le=500)] = 50, cursor: str | None = None) -> dict[str, Any]:
        filters = ResultFilter(event_id=event_id, evaluator_id=evaluator_id, rubric=rubric, status=status,
                               since=since, until=until)
        return await service.list_results(conn, tenant_id=principal.tenant_id, filters=filters, limit=limit,
                                          cursor=cursor)

    @app.get("/v1/results/{event_id}", tags=["results"], summary="Every result of one judged interaction")
    async def event_results(event_id: uuid.UUID, principal: Reviewer, conn: Conn) -> dict[str, Any]:
        page = await service.list_results(conn, tenant_id=principal.tenant_id, filters=ResultFilter(event_id=event_id),
                                          limit=500)
        if not page["items"]:
            raise NotFound(f"no judged interaction {event_id}")
        return {"items": page["items"]}

    return app


def _errors(app: FastAPI) -> None:
    @app.exception_handler(NotFound)
    async def not_found(_request: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(Conflict)
    async def conflict(_request: Request, exc: Conflict) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    @app.exception_handler(InvalidField)
    async def invalid_field(_request: Request, exc: InvalidField) -> JSONResponse:
        return JSONResponse({"detail": exc.detail()}, status_code=422)

    @app.exception_handler(InvalidBody)
    async def invalid_body(_request: Request, exc: InvalidBody) -> JSONResponse:
        return JSONResponse({"detail": exc.errors}, status_code=422)


def _json(content: Any, status_code: int = 200) -> JSONResponse:
    from fastapi.encoders import jsonable_encoder

    return JSONResponse(jsonable_encoder(content), status_code=status_code)


def main() -> None:
    settings = EvaluatorSettings()
    configure_logging("evaluator-api", settings.log_level)
    run_api(create_app(settings), host=settings.host, port=settings.port)


if __name__ == "__main__":
    main()
