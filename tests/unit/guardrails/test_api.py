"""The guardrails app as assembled: every route declares a response model, and every route documents the
problem-details error shape. No infrastructure: the app is built, not started."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI, Response
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel

from llmops_guardrails.api import create_app
from llmops_guardrails.settings import GuardrailsSettings

OPS = {"/healthz", "/readyz", "/metrics"}  # llmops_shared.http.ops_router: the same in every API of the suite


@pytest.fixture(scope="module")
def app() -> FastAPI:
    return create_app(GuardrailsSettings())


def api_routes(app: FastAPI) -> list[tuple[str, APIRoute]]:
    """(full path, route) of every API route, included routers walked."""
    return [(ctx.path or "", ctx.original_route) for ctx in iter_route_contexts(app.routes)
            if isinstance(ctx.original_route, APIRoute)]


def test_every_route_declares_a_pydantic_response_model(app: FastAPI) -> None:
    checked = []
    for path, route in api_routes(app):
        if path in OPS or not route.include_in_schema:  # the reference pages (llmops_shared.api_docs) are HTML
            continue
        if route.status_code == 204:  # no body to describe
            assert route.response_class is Response, path
            continue
        model = route.response_model
        assert isinstance(model, type) and issubclass(model, BaseModel), f"{route.methods} {path}: {model!r}"
        checked.append((tuple(route.methods), path))
    assert len(checked) == 14  # every route but DELETE /v1/channels/{id} (204)
    assert {p for _, p in checked} >= {"/v1/alerts", "/v1/check", "/v1/policy", "/v1/channels"}


def test_openapi_shows_response_schemas_and_problem_details(app: FastAPI) -> None:
    paths: dict[str, dict[str, Any]] = app.openapi()["paths"]
    operations = [(p, m, op) for p, ops in paths.items() if p.startswith("/v1/") for m, op in ops.items()]
    assert operations
    for path, method, op in operations:
        responses = op["responses"]
        success = [code for code in responses if code.startswith("2")]
        assert len(success) == 1, (method, path)
        if success[0] != "204":
            assert "$ref" in responses[success[0]]["content"]["application/json"]["schema"], (method, path)
        for status in ("401", "403", "404", "422"):
            assert "application/problem+json" in responses[status]["content"], (method, path, status)
    assert "503" in paths["/v1/alerts/{alert_id}/resolve"]["post"]["responses"]
    assert "413" in paths["/v1/check"]["post"]["responses"]
    assert "409" in paths["/v1/channels"]["post"]["responses"]
