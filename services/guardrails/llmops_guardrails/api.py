"""The guardrails API (FastAPI, port 8081): alerts, the inline check, policies, notification channels.

`python -m llmops_guardrails.api`. Every route is scoped to the tenant of the calling key; another
tenant's alert or channel is a 404. Scopes: `alerts:read` (list, get), `alerts:write` (acknowledge,
resolve), `guardrails:check` (POST /v1/check), `admin` (policies, channels; admin also passes every other
scope check). This module only assembles the app: one router per resource in `routes/`, the work in
`alerts_service`, `inline`, `policies_service` and `channels_service`, the SQL in `store/`. Every error
is an RFC 9457 problem (`llmops_shared.problems`). The reference is `docs/guardrails.md`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from llmops_guardrails import policies_service
from llmops_guardrails.alerts_service import AlertAnnouncer
from llmops_guardrails.channels_service import ChannelGuards
from llmops_guardrails.engine import PolicyEngine
from llmops_guardrails.logs import configure_service_logging
from llmops_guardrails.policy import default_policy
from llmops_guardrails.routes import alerts, channels, check, policies
from llmops_guardrails.settings import GuardrailsSettings
from llmops_shared.egress import Resolver, egress_policy
from llmops_shared.http import api_backends, run_api, suite_api

log = logging.getLogger("llmops_guardrails.api")


def create_app(settings: GuardrailsSettings, *, engine: PolicyEngine | None = None,
               resolver: Resolver | None = None) -> FastAPI:
    """`engine`: tests pass one already loaded; otherwise one is built and warmed up at start-up. `resolver`
    answers the egress check's DNS questions for channel URLs (the system's by default)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with api_backends(app, settings):
            app.state.settings = settings
            app.state.engine = engine or PolicyEngine(settings)
            # the process's watcher (api_backends'): a stored policy change is in force at once
            app.state.policies = policies_service.PolicyStore(settings.policy_cache_ttl_s,
                                                              watcher=app.state.config_watcher)
            app.state.announcer = AlertAnnouncer(settings)
            try:
                await asyncio.to_thread(app.state.engine.warm_up, default_policy())  # spaCy loads now, not later
                log.info("guardrails API ready", extra={"port": settings.port})
                yield
            finally:
                await app.state.announcer.close()

    async def kafka_check() -> None:
        await app.state.announcer.check()

    app = suite_api(
        settings,
        title="LLMOps guardrails API",
        description="Alerts (list, get, acknowledge, resolve), the inline check, policies and notification "
        "channels. Every call is scoped to the tenant of its API key. Errors are RFC 9457 problem details "
        "(application/problem+json).",
        lifespan=lifespan,
        json_body=False,
        extra_checks={"kafka": kafka_check},
    )
    app.state.channel_guards = ChannelGuards(egress_policy(settings, resolver=resolver), settings.channel_cipher())
    if app.state.channel_guards.cipher is None:
        log.warning("LLMOPS_GUARDRAILS_CHANNEL_KEYS is not set: notification channels cannot be created or "
                    "changed (503) until it is (docs/security.md)")

    for resource in (alerts, check, policies, channels):
        app.include_router(resource.router)
    return app


def main() -> None:
    settings = GuardrailsSettings()
    configure_service_logging("guardrails-api", settings.log_level)
    run_api(create_app(settings), settings)


if __name__ == "__main__":
    main()
