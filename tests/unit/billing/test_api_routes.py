"""The billing app's routes, without servers: every route declares what it answers (OpenAPI shows it)."""

from __future__ import annotations

from typing import Any

from fastapi.responses import StreamingResponse
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel

from llmops_billing.api import create_app
from llmops_billing.settings import BillingSettings


def billing_routes() -> list[Any]:
    """Every route of the app under /v1 (routers included), as FastAPI resolves them."""
    app = create_app(BillingSettings())
    return [r for r in iter_route_contexts(app.routes)
            if isinstance(r.original_route, APIRoute) and (r.path or "").startswith("/v1/")]


def test_every_route_declares_a_response_model() -> None:
    routes = billing_routes()
    assert len(routes) == 15
    for route in routes:
        what = f"{sorted(route.methods)} {route.path}"
        original: APIRoute = route.original_route
        if original.status_code == 204:  # archiving a budget: no body at all
            assert original.response_model is None, what
        elif original.response_class is StreamingResponse:  # the CSV export: documented as text/csv
            assert "text/csv" in original.responses[200]["content"], what
        else:
            assert isinstance(original.response_model, type) and issubclass(original.response_model, BaseModel), what


def test_openapi_shows_a_schema_for_every_answer_and_the_problem_shape_for_errors() -> None:
    spec = create_app(BillingSettings()).openapi()
    for path, operations in spec["paths"].items():
        if not path.startswith("/v1/"):
            continue
        for method, operation in operations.items():
            responses = operation["responses"]
            ok = next(status for status in responses if status.startswith("2"))
            if ok != "204":
                content = responses[ok]["content"]
                assert any("schema" in media for media in content.values()), (method, path)
            assert responses["422"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Problem"}
    assert "from" in spec["components"]["schemas"]["UsagePage"]["properties"]
