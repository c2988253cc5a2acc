"""The guardrails app's own dependencies: what its lifespan puts on `app.state`, as `Annotated` aliases.

The principal, `Pool` and `Conn` aliases every API shares are in `llmops_shared.deps`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from llmops_guardrails.alerts_service import AlertAnnouncer
from llmops_guardrails.channels_service import ChannelGuards
from llmops_guardrails.engine import PolicyEngine
from llmops_guardrails.policies_service import PolicyStore
from llmops_guardrails.settings import GuardrailsSettings


async def _settings(request: Request) -> GuardrailsSettings:
    return request.app.state.settings


async def _engine(request: Request) -> PolicyEngine:
    return request.app.state.engine


async def _policies(request: Request) -> PolicyStore:
    return request.app.state.policies


async def _announcer(request: Request) -> AlertAnnouncer:
    return request.app.state.announcer


async def _channel_guards(request: Request) -> ChannelGuards:
    return request.app.state.channel_guards


Settings = Annotated[GuardrailsSettings, Depends(_settings)]
Engine = Annotated[PolicyEngine, Depends(_engine)]
"""The policy engine, loaded (and warmed up) at start-up."""
Policies = Annotated[PolicyStore, Depends(_policies)]
"""Effective policies per (tenant, app), cached a few seconds in this process."""
Announcer = Annotated[AlertAnnouncer, Depends(_announcer)]
"""Publishes `resolved` alert messages."""
Guards = Annotated[ChannelGuards, Depends(_channel_guards)]
"""The egress policy a channel's URL must pass and the cipher that seals its URL and secret."""
