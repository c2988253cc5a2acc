"""The ingest API's own FastAPI dependencies, as `Annotated` aliases: settings, the per-key event limiter,
the Kafka publisher and the accepted `occurred_at` window, for both intake routes."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Request

from llmops_ingest.intake import TimeWindow
from llmops_ingest.publisher import EventPublisher
from llmops_ingest.settings import IngestSettings
from llmops_shared.ratelimit import RateLimiter


# `async def`, not `def`: FastAPI runs a plain function dependency in a worker thread, a hop per request.
async def _settings(request: Request) -> IngestSettings:
    return request.app.state.settings


async def _limiter(request: Request) -> RateLimiter:
    return request.app.state.limiter


async def _publisher(request: Request) -> EventPublisher:
    return request.app.state.publisher


async def _window(request: Request) -> TimeWindow:
    """The `occurred_at` instants this request may carry: around the app's clock, read once per request."""
    settings: IngestSettings = request.app.state.settings
    return TimeWindow(now=request.app.state.clock(), max_age=timedelta(days=settings.max_age_days),
                      max_ahead=timedelta(seconds=settings.max_ahead_s))


Settings = Annotated[IngestSettings, Depends(_settings)]
Limiter = Annotated[RateLimiter, Depends(_limiter)]
Publisher = Annotated[EventPublisher, Depends(_publisher)]
Window = Annotated[TimeWindow, Depends(_window)]
