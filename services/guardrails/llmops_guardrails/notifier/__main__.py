"""`python -m llmops_guardrails.notifier`: the notifier process."""

from __future__ import annotations

import asyncio
import sys

import asyncpg
import httpx
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer

from llmops_guardrails.notifier.service import Notifier, NotifierSettings
from llmops_shared.logging import configure_logging
from llmops_shared.worker import run_worker


async def main() -> int:
    settings = NotifierSettings()
    configure_logging("notifier", settings.log_level)
    redis = aioredis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
    async with httpx.AsyncClient(timeout=settings.notify_timeout_s) as http:
        notifier = Notifier(settings, redis=redis, http=http)

        async def attach(pool: asyncpg.Pool, _producer: AIOKafkaProducer) -> None:
            notifier.pool = pool

        try:
            return await run_worker(notifier, settings, on_start=attach)
        finally:
            await redis.aclose()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
