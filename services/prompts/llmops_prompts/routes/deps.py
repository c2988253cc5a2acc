"""The prompts API's own dependencies, beside the shared ones (`llmops_shared.deps`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from llmops_prompts.served import ServedCache
from llmops_prompts.settings import PromptsSettings


async def _settings(request: Request) -> PromptsSettings:
    settings: PromptsSettings = request.app.state.settings
    return settings


async def _served(request: Request) -> ServedCache:
    cache: ServedCache = request.app.state.served
    return cache



Settings = Annotated[PromptsSettings, Depends(_settings)]
Served = Annotated[ServedCache, Depends(_served)]
