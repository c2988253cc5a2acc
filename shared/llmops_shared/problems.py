"""One error shape for every API: RFC 9457 problem details, and the domain errors that map to them.

Every error answer of the suite is `application/problem+json`:

    {"type": "about:blank", "title": "Unprocessable Content", "status": 422,
     "detail": "group_by: unknown grouping 'colour'",
     "errors": [{"loc": ["query", "group_by"], "msg": "unknown grouping 'colour'", "type": "value_error"}]}

`errors` is there for 422s only and names each bad field (`loc` as FastAPI gives it). Service code raises
the domain errors below (`NotFound`, `Conflict`, `Invalid`, ...) and never builds a response: each app
calls `install(app)` once and the handlers map them (and FastAPI's own `HTTPException` and validation
errors) to this shape.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, Field
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from llmops_shared.db import UNAVAILABLE

log = logging.getLogger(__name__)

MEDIA_TYPE = "application/problem+json"
RETRY_AFTER_S = 5
"""What a 503 for a backend outage tells the caller to wait."""
BACKEND_UNAVAILABLE: tuple[type[Exception], ...] = (*UNAVAILABLE, RedisConnectionError, RedisTimeoutError)


class FieldError(BaseModel):
    loc: list[str | int] = Field(description="where: ['query', 'group_by'], ['body', 'amount', 0], ...")
    msg: str
    type: str = "value_error"


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    errors: list[FieldError] | None = Field(None, description="422 only: each bad field")


class DomainError(Exception):
    """A request the domain refuses; `status` says how. Raise a subclass."""

    status: int = 400

    def __init__(self, detail: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers


class BadRequest(DomainError):
    status = 400


class Forbidden(DomainError):
    status = 403


class NotFound(DomainError):
    status = 404


class Conflict(DomainError):
    status = 409


class Invalid(DomainError):
    """422 naming the field: `Invalid("group_by", "unknown grouping 'colour'", location="query")`."""

    status = 422

    def __init__(self, field: str | Sequence[str | int], message: str, *, location: str = "body") -> None:
        path = [field] if isinstance(field, str | int) else list(field)
        super().__init__(f"{'.'.join(str(p) for p in path)}: {message}")
        self.errors = [FieldError(loc=[location, *path], msg=message)]


class Unavailable(DomainError):
    status = 503


def problem_response(status: int, detail: str | None = None, *, errors: Sequence[FieldError] | None = None,
                     headers: Mapping[str, str] | None = None) -> Response:
    """The one error response of the suite."""
    body: dict[str, Any] = {"type": "about:blank", "title": _title(status), "status": status}
    if detail is not None:
        body["detail"] = detail
    if errors is not None:
        body["errors"] = [e.model_dump() for e in errors]
    return Response(orjson.dumps(body), status_code=status, headers=headers, media_type=MEDIA_TYPE)


def validation_errors(raw: Sequence[Any]) -> list[FieldError]:
    """FastAPI/pydantic error dicts as `FieldError`s (`loc`, `msg`, `type` kept; input values dropped)."""
    return [FieldError(loc=[p if isinstance(p, int) else str(p) for p in e.get("loc", ())],
                       msg=str(e.get("msg", "")), type=str(e.get("type", "value_error"))) for e in raw]


def install(app: FastAPI) -> None:
    """Map domain errors, `HTTPException` and request validation errors to problem details, once per app."""

    async def domain(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, DomainError)
        return problem_response(exc.status, exc.detail, errors=getattr(exc, "errors", None), headers=exc.headers)

    async def http(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        detail = exc.detail
        if isinstance(detail, list):  # a route that named fields itself
            errors = validation_errors(detail)
            return problem_response(exc.status_code, _summary(errors), errors=errors, headers=exc.headers)
        return problem_response(exc.status_code, None if detail is None else str(detail), headers=exc.headers)

    async def invalid(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = validation_errors(exc.errors())
        return problem_response(422, _summary(errors), errors=errors)

    async def backend_down(request: Request, exc: Exception) -> Response:
        log.warning("a backend is unavailable; answered 503", extra={
            "path": request.url.path, "error_type": type(exc).__name__})
        return problem_response(503, "a backend of this API is unavailable; retry later",
                                headers={"Retry-After": str(RETRY_AFTER_S)})

    app.add_exception_handler(DomainError, domain)
    app.add_exception_handler(StarletteHTTPException, http)
    app.add_exception_handler(RequestValidationError, invalid)
    for unavailable in BACKEND_UNAVAILABLE:
        app.add_exception_handler(unavailable, backend_down)


def response(description: str) -> dict[str, Any]:
    """An OpenAPI `responses` entry for an error answered as problem details: `responses={409: response(...)}`."""
    return {"model": Problem, "description": description,
            "content": {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}}


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: response(description)
    for status, description in ((400, "bad request"), (401, "missing, invalid or revoked API key"),
                                (403, "the key lacks the scope"), (404, "not found (or another tenant's)"),
                                (422, "a field is invalid: `errors` names it"))
}
"""For `FastAPI(responses=ERROR_RESPONSES)`: the problem shape in every route's OpenAPI entry."""


def _summary(errors: Sequence[FieldError]) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e.loc[1:]) or e.loc[0]}: {e.msg}" for e in errors[:5])


def _title(status: int) -> str:
    if status == 422:
        return "Unprocessable Content"  # RFC 9110's name; Python 3.11 still says "Entity"
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
