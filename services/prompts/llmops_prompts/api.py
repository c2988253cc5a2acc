"""The prompts API (FastAPI, port 8085): prompts, versions, labels, diffs, experiments and their reports.

    python -m llmops_prompts.api          (or `llmops run prompts-api`)

Every route reads or changes the calling key's tenant's prompts only; another tenant's prompt or
experiment is not found (404), exactly like one that does not exist. Reading needs `prompts:read`,
changing `prompts:write` (or `admin`). A version's author and a label move's mover are the calling key's
id. Errors are RFC 9457 problem details (`llmops_shared.problems`). This module only assembles the app.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from llmops_prompts.routes import experiments, prompts, recommendations
from llmops_prompts.served import ServedCache
from llmops_prompts.settings import PromptsSettings
from llmops_prompts.warmer import ReportWarmer
from llmops_shared.clock import Clock, utc_now
from llmops_shared.http import api_backends, run_api, suite_api
from llmops_shared.logging import configure_logging

log = logging.getLogger("llmops_prompts.api")


def create_app(settings: PromptsSettings, *, clock: Clock = utc_now) -> FastAPI:
    """The app; `clock` says what "now" is (experiment reports' windows, and the report warmer's hours: a task of
    the app's lifespan while `settings.report_warmer`, cancelled when the app stops)."""
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with api_backends(app, settings):
            # the process's watcher (api_backends'): a label moved elsewhere is in force here at once
            app.state.served = ServedCache(app.state.config_watcher, fallback_s=settings.cache_fallback_s)
            warmer = ReportWarmer(app.state.pool, clock=clock, interval_s=settings.report_warmer_interval_s)
            task = asyncio.create_task(warmer.run(), name="prompts-report-warmer") if settings.report_warmer else None
            app.state.report_warmer = task
            log.info("prompts API ready", extra={"port": settings.port})
            try:
                yield
            finally:  # before the pool closes
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task

    app = suite_api(
        settings,
        title="LLMOps prompts API",
        description="Versioned prompts with movable labels, diffs, and experiments between versions with "
        "sticky assignment and a statistical report. Keys see their own tenant only. Errors are RFC 9457 "
        "problem details.",
        lifespan=lifespan,
    )
    app.state.clock = clock
    app.include_router(prompts.router)
    app.include_router(experiments.router)
    app.include_router(recommendations.router)
    return app


def main() -> None:
    settings = PromptsSettings()
    configure_logging("prompts-api", settings.log_level)
    run_api(create_app(settings), settings)


if __name__ == "__main__":
    main()
