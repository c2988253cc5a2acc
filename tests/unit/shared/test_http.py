"""Serving an API: the collector's thresholds and the freeze once the app has started."""

from __future__ import annotations

import gc
import importlib
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from llmops_shared import http
from llmops_shared.settings import ApiSettings

SERVICES = ("billing", "console", "evaluator", "guardrails", "ingest", "monitors", "prompts", "traces")


@pytest.fixture
def collector() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


class Model:
    """Stands for what an API loads at start-up (a model, word lists, pools): alive as long as the process."""

    def __init__(self) -> None:
        self.parts = [[i] for i in range(1000)]


def tracked(obj: object) -> bool:
    return any(o is obj for o in gc.get_objects())


def test_what_start_up_made_is_frozen_once_the_lifespan_has_started(collector: None) -> None:
    seen: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.model = Model()
        seen["tracked at start-up"] = tracked(app.state.model.parts)
        yield

    app = FastAPI(lifespan=lifespan)

    @app.get("/probe")
    async def probe() -> dict[str, bool]:
        later: list[int] = []
        return {"model": tracked(app.state.model.parts), "later": tracked(later)}

    http.freeze_after_start_up(app, (12_345, 17, 19))
    with TestClient(app) as client:
        assert seen == {"tracked at start-up": True}  # frozen after the lifespan started, not before
        assert gc.get_threshold() == (12_345, 17, 19)
        assert client.get("/probe").json() == {"model": False, "later": True}  # a request's objects: as before


def test_run_api_serves_on_the_settings_host_and_port_with_their_thresholds(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    calls: list[tuple[str, Any]] = []
    monkeypatch.setattr(http, "freeze_after_start_up", lambda app, thresholds: calls.append(("freeze", thresholds)))
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: calls.append(("serve", kwargs)))
    settings = ApiSettings(host="127.0.0.2", gc_thresholds=(50_000, 11, 12))
    http.run_api(FastAPI(), settings)
    assert calls[0] == ("freeze", (50_000, 11, 12))
    assert calls[1][0] == "serve" and calls[1][1]["host"] == "127.0.0.2"


@pytest.mark.parametrize("service", SERVICES)
def test_every_api_serves_through_run_api_with_collections_rarer_than_python_s_default(
        service: str, monkeypatch: pytest.MonkeyPatch) -> None:
    api = importlib.import_module(f"llmops_{service}.api")
    served: list[tuple[FastAPI, ApiSettings]] = []
    monkeypatch.setattr(api, "run_api", lambda app, settings: served.append((app, settings)))
    for name in ("configure_logging", "configure_service_logging"):
        if hasattr(api, name):
            monkeypatch.setattr(api, name, lambda *args, **kwargs: None)
    api.main()
    [(app, settings)] = served
    assert isinstance(app, FastAPI) and isinstance(settings, ApiSettings)
    young, middle, old = settings.gc_thresholds
    assert young >= 10_000 and middle >= 10 and old >= 10  # never more often than Python's default (700, 10, 10)
