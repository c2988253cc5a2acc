"""`python -m llmops_guardrails.notifier`: the notifier process."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis

from llmops_guardrails.notifier.service import Notifier, NotifierSettings, open_notifier
from llmops_shared.logging import configure_logging
from llmops_shared.worker import Resources, run_worker


async def main() -> int:
    settings = NotifierSettings()
    configure_logging("notifier", settings.log_level)
    # httpx logs every request's URL at INFO: a channel's URL is a secret (docs/security.md).
    for chatty in ("httpx", "httpcore"):
        logging.getLogger(chatty).setLevel(max(logging.WARNING, logging.getLogger().level))

    @asynccontextmanager
    async def notifier(resources: Resources) -> AsyncIterator[Notifier]:
        redis = aioredis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
        try:
            async with open_notifier(settings, resources, redis=redis) as handler:
                yield handler
        finally:
            await redis.aclose()

    return await run_worker(settings, notifier)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
