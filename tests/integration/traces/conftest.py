"""Fixtures for the traces service's integration tests: a span writer running in this process on a topic of
its own, with its clock fixed at `NOW` (its partition window)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest_asyncio

from llmops_shared.clock import fixed
from llmops_shared.kafka import durable_producer
from llmops_shared.settings import CommonSettings
from llmops_shared.worker import StreamWorker
from llmops_traces.worker import SpanWriter
from tests.integration.traces.traces_support import NOW, RunningWriter, create_topic, traces_settings


@pytest_asyncio.fixture
async def span_writer(stack: CommonSettings, pg_pool: asyncpg.Pool) -> AsyncIterator[RunningWriter]:
    """A span writer consuming a fresh topic with a fresh consumer group; stopped after the test."""
    settings = traces_settings(stack)
    await create_topic(settings)
    producer = durable_producer(stack.kafka_bootstrap, client_id="traces-test-worker")
    await producer.start()
    worker: StreamWorker[Any, Any] = StreamWorker(SpanWriter(settings, clock=fixed(NOW)), settings, pool=pg_pool,
                                                  producer=producer)
    task = asyncio.create_task(worker.run())
    try:
        yield RunningWriter(settings, worker, task, producer)
    finally:
        worker.stopping.set()
        await asyncio.wait_for(task, 15)
        await producer.stop()
