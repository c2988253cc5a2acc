"""The ingest app follows the API convention: every route declares what it answers, errors included.

Checked on the app's OpenAPI document, which is what a client sees (and which FastAPI builds from the
routes' response models): every success response of every operation has a schema, unless it is not
JSON (`/metrics` answers Prometheus text), and every declared error response is a problem document.
"""

from __future__ import annotations

from typing import Any

import pytest

from llmops_ingest.api import create_app
from llmops_ingest.settings import IngestSettings
from llmops_shared.problems import MEDIA_TYPE


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return create_app(IngestSettings()).openapi()  # nothing connects until the lifespan runs


def operations(spec: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(f"{method.upper()} {path}", op) for path, ops in spec["paths"].items() for method, op in ops.items()]


def test_every_route_declares_a_response_model(spec: dict[str, Any]) -> None:
    names = {name for name, _op in operations(spec)}
    assert names >= {"POST /v1/interactions", "GET /v1/schema", "GET /healthz", "GET /readyz", "GET /metrics"}
    missing = []
    for name, op in operations(spec):
        successes = {status: answer for status, answer in op["responses"].items() if status.startswith("2")}
        assert successes, f"{name} declares no success response"
        for status, answer in successes.items():
            content = answer.get("content") or {}
            json_schemas = [c.get("schema") for media, c in content.items() if "json" in media]
            if not content or (json_schemas and not all(json_schemas)):
                missing.append(f"{name} {status}")
    assert missing == [], "answers without a response model"


def test_the_batch_result_and_the_errors_are_documented(spec: dict[str, Any]) -> None:
    answers = spec["paths"]["/v1/interactions"]["post"]["responses"]
    for status in ("202", "207"):
        assert answers[status]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/BatchResult"}
    for status in ("400", "401", "403", "413", "422", "429", "503"):
        assert answers[status]["content"][MEDIA_TYPE]["schema"] == {"$ref": "#/components/schemas/Problem"}, status
