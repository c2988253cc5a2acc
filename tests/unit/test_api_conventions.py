"""What every API of the suite shares, checked on each app as built: a body cap before anything reads the
body (authentication included), answered as problem details; nothing of a request handed to a thread."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient


def _apps() -> list[tuple[str, Callable[[], FastAPI], str]]:
    from llmops_billing.api import create_app as billing
    from llmops_billing.settings import BillingSettings
    from llmops_evaluator.api import create_app as evaluator
    from llmops_evaluator.settings import EvaluatorSettings
    from llmops_guardrails.api import create_app as guardrails
    from llmops_guardrails.settings import GuardrailsSettings
    from llmops_ingest.api import create_app as ingest
    from llmops_ingest.settings import IngestSettings
    from llmops_monitors.api import create_app as monitors
    from llmops_monitors.settings import MonitorsSettings
    from llmops_prompts.api import create_app as prompts
    from llmops_prompts.settings import PromptsSettings
    from llmops_traces.api import create_app as traces
    from llmops_traces.settings import TracesSettings

    return [("ingest", lambda: ingest(IngestSettings(max_body_bytes=4096)), "/v1/interactions"),
            ("guardrails", lambda: guardrails(GuardrailsSettings(max_body_bytes=4096)), "/v1/check"),
            ("billing", lambda: billing(BillingSettings(max_body_bytes=4096)), "/v1/budgets"),
            ("evaluator", lambda: evaluator(EvaluatorSettings(max_body_bytes=4096)), "/v1/evaluators"),
            ("traces", lambda: traces(TracesSettings(max_body_bytes=4096)), "/v1/settings"),
            ("monitors", lambda: monitors(MonitorsSettings(max_body_bytes=4096)), "/v1/monitors"),
            ("prompts", lambda: prompts(PromptsSettings(max_body_bytes=4096)), "/v1/prompts")]


@pytest.mark.parametrize(("name", "make", "path"), _apps(), ids=[a[0] for a in _apps()])
def test_a_body_over_the_cap_is_refused_before_the_key_is_even_looked_at(
        name: str, make: Callable[[], FastAPI], path: str) -> None:
    client = TestClient(make())  # not started: no database, no key store; the cap answers first
    method = "PUT" if name == "traces" else "POST"  # the traces API's one body is its settings
    resp = client.request(method, path, content=b"{" + b" " * 5000 + b"}", headers={"content-type": "application/json"})
    assert resp.status_code == 413, (name, resp.text)
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.json()["detail"] == "the body is 5002 bytes; the limit is 4096"


@pytest.mark.parametrize(("name", "make", "path"), _apps(), ids=[a[0] for a in _apps()])
def test_the_reference_pages_need_nothing_from_the_internet(name: str, make: Callable[[], FastAPI], path: str) -> None:
    client = TestClient(make())
    for page in ("/docs", "/redoc"):
        html = client.get(page).text
        assert "http://" not in html and "https://" not in html, (name, page)  # no CDN, no web fonts
        assets = re.findall(r'(?:src|href)="(/[^"]+)"', html)
        assert assets, (name, page)
        for asset in assets:
            assert client.get(asset).status_code == 200, (name, asset)


def test_the_vendored_files_are_the_versions_the_vendor_script_pins() -> None:
    root = Path(__file__).resolve().parents[2]
    script = (root / "deploy" / "frontend" / "vendor.sh").read_text()
    pins = dict(re.findall(r"^([A-Z_]+)=(\S+)", script, flags=re.MULTILINE))
    versions = dict(line.split() for line in (root / "shared" / "llmops_shared" / "static" / "vendor" / "VERSIONS")
                    .read_text().splitlines())
    assert versions == {"swagger-ui-dist": pins["SWAGGER_UI_DIST"], "redoc": pins["REDOC"],
                        "htmx.org": pins["HTMX_ORG"], "uplot": pins["UPLOT"]}


def _routes(routes: list[Any]) -> Iterator[APIRoute]:
    for route in routes:
        if hasattr(route, "original_router"):  # FastAPI keeps an included router's routes on it
            yield from _routes(route.original_router.routes)
        elif isinstance(route, APIRoute):
            yield route


def _sync_calls(dependant: Dependant) -> Iterator[str]:
    call = dependant.call
    if call is not None and not (inspect.iscoroutinefunction(call) or inspect.isasyncgenfunction(call)):
        yield f"{call.__module__}.{call.__qualname__}"
    for sub in dependant.dependencies:
        yield from _sync_calls(sub)


def _console() -> FastAPI:
    from llmops_console.api import create_app
    from llmops_console.settings import ConsoleSettings

    return create_app(ConsoleSettings())


@pytest.mark.parametrize(("name", "make"), [(n, m) for n, m, _ in _apps()] + [("console", _console)],
                         ids=[a[0] for a in _apps()] + ["console"])
def test_no_route_or_dependency_runs_in_the_thread_pool(name: str, make: Callable[[], FastAPI]) -> None:
    """FastAPI runs a plain `def` dependency or route in a worker thread: a thread hand-off per call, and, with
    the GIL, milliseconds on a busy machine (the prompts API's two made its authenticated get, in-process, 6 ms
    instead of 3; bench/RESULTS.md). Every one of the suite's is `async def`."""
    sync = sorted({call for route in _routes(make().routes) for call in _sync_calls(route.dependant)})
    assert sync == [], (name, sync)
