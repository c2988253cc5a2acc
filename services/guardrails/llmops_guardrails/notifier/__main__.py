"""`python -m llmops_guardrails.notifier`: the notifier process."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import redis.asyncio as aioredis

from llmops_guardrails.notifier.service import Notifier, NotifierSettings, open_notifier
from llmops_shared.logging import configure_logging
from llmops_shared.worker import Resources, run_worker


async def main() -> int:
    settings = NotifierSettings()
    configure_logging("notifier", settings.log_level)

    @asynccontextmanager
    async def notifier(resources: Resources) -> AsyncIterator[Notifier]:
        redis = aioredis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
        try:
            # One connection per channel lane at most (lanes send one at a time); the deadline of each
            # attempt is enforced around the call (`delivery.attempt`), httpx's time-outs are per operation.
            unbounded = httpx.Limits(max_connections=None)
            async with httpx.AsyncClient(timeout=settings.timeout_s, limits=unbounded) as http, \
                    open_notifier(settings, resources, redis=redis, http=http) as handler:
                yield handler
        finally:
            await redis.aclose()

    return await run_worker(settings, notifier)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
