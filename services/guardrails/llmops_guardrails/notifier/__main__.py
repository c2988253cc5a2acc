"""`python -m llmops_guardrails.notifier`: the notifier process."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import redis.asyncio as aioredis

from llmops_guardrails.notifier.service import Notifier, NotifierSettings
from llmops_shared.logging import configure_logging
from llmops_shared.worker import Resources, run_worker


async def main() -> int:
    settings = NotifierSettings()
    configure_logging("notifier", settings.log_level)

    @asynccontextmanager
    async def notifier(resources: Resources) -> AsyncIterator[Notifier]:
        redis = aioredis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
        try:
            async with httpx.AsyncClient(timeout=settings.timeout_s) as http:
                yield Notifier(settings, redis=redis, http=http, pool=resources.pool, stopping=resources.stopping)
        finally:
            await redis.aclose()

    return await run_worker(settings, notifier)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
