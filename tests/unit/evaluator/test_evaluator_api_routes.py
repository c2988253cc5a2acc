"""The evaluator API's convention, checked on the app itself (no server, no database): every route declares
a pydantic response model, so OpenAPI shows what each answers, and every error is a problem-details answer."""

from __future__ import annotations

from typing import Any

from fastapi.routing import APIRoute
from pydantic import BaseModel

from llmops_evaluator.api import create_app
from llmops_evaluator.settings import EvaluatorSettings

OPS = {"/healthz", "/readyz", "/metrics"}  # llmops_shared.http.ops_router's, the same in every API


def routes() -> list[Any]:
    """The app's API routes as served: with the prefixes of the routers they were included with."""
    app = create_app(EvaluatorSettings())
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # a FastAPI that copies included routes into app.routes
        return [r for r in app.routes if isinstance(r, APIRoute) and r.path not in OPS and r.include_in_schema]
    return [c for c in iter_route_contexts(app.routes) if isinstance(c.original_route, APIRoute) and c.path not in OPS
            and c.original_route.include_in_schema]  # not the reference pages (llmops_shared.api_docs)


def test_every_route_declares_a_response_model() -> None:
    found = routes()
    assert len(found) == 11
    for route in found:
        if route.status_code == 204:  # no content: nothing to describe
            assert route.response_model is None, route.path
            continue
        model = route.response_model
        assert isinstance(model, type) and issubclass(model, BaseModel), f"{route.methods} {route.path}: {model}"


def test_openapi_shows_a_schema_for_every_answer_and_problem_details_for_errors() -> None:
    spec: dict[str, Any] = create_app(EvaluatorSettings()).openapi()
    operations = [(path, method, op) for path, item in spec["paths"].items() if path not in OPS
                  for method, op in item.items()]
    assert len(operations) == 11
    for path, method, op in operations:
        for status, response in op["responses"].items():
            if status == "204":
                continue
            schema = response["content"]["application/json"]["schema"]
            assert "$ref" in schema, (method, path, status)
            if status.startswith(("4", "5")):
                assert schema["$ref"] == "#/components/schemas/Problem", (method, path, status)
                assert "application/problem+json" in response["content"]
        assert {"401", "403", "422"} <= set(op["responses"]), (method, path)
