"""Fixtures for the monitors' integration tests: topics of their own, a closer on plain tables with a clock the
test moves, and helpers that put observations into windows as the faust app does."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson
import pytest_asyncio
from aiokafka import AIOKafkaProducer

from llmops_monitors import panes as pane_values
from llmops_monitors.closer import MonitorCache, WindowCloser
from llmops_monitors.evaluation import Monitor
from llmops_monitors.observe import Observation
from llmops_monitors.schemas import MonitorCreate
from llmops_monitors.service import create
from llmops_monitors.settings import MonitorsSettings
from llmops_monitors.windows import PANE_S, WindowSpec
from llmops_shared.config_changes import ConfigWatcher
from llmops_shared.kafka import durable_producer, ensure_topics
from llmops_shared.settings import CommonSettings
from llmops_shared.topics import PREFIX as TOPIC_PREFIX
from llmops_shared.topics import TopicSpec
from tests.support.events import collect, end_offsets

T0 = 1_796_299_800  # 2026-12-03T11:30:00Z (a multiple of 5 minutes): windows in these tests start here


def monitors_settings(stack: CommonSettings, **overrides: Any) -> MonitorsSettings:
    suffix = uuid.uuid4().hex[:8]
    mon = f"{TOPIC_PREFIX}mon.{suffix}"  # the session's topics, deleted with it (so are the changelogs)
    return MonitorsSettings(**stack.model_dump(), group=f"{TOPIC_PREFIX}monitors-test-{suffix}",
                            clean_topic=f"{mon}.clean", scores_topic=f"{mon}.scores", usage_topic=f"{mon}.usage",
                            observations_topic=f"{mon}.obs", alerts_topic=f"{mon}.alerts", lateness_s=0.0,
                            **overrides)


async def create_topics(settings: MonitorsSettings, *, partitions: int = 1) -> None:
    hour = 3_600_000
    await ensure_topics(settings.kafka_bootstrap, (
        TopicSpec(settings.clean_topic, partitions, hour), TopicSpec(settings.scores_topic, partitions, hour),
        TopicSpec(settings.usage_topic, partitions, hour), TopicSpec(settings.alerts_topic, 1, hour),
        TopicSpec(settings.observations_topic, settings.partitions, hour)))


def put(panes: dict[Any, Any], obs: Observation) -> None:
    """What the faust app's `aggregate` agent does with one observation."""
    start = int(obs.t // PANE_S) * PANE_S
    key = (obs.key, (float(start), start + PANE_S - 0.1))
    panes[key] = pane_values.apply(panes.get(key), obs)


async def define(pool: asyncpg.Pool, tenant: str, **body: Any) -> int:
    monitor = await create(pool, tenant_id=tenant, body=MonitorCreate.model_validate(body), limit=100)
    return monitor.monitor_id


class TenantMonitors(MonitorCache):
    """The enabled monitors of one tenant only."""

    def __init__(self, pool: asyncpg.Pool, watcher: ConfigWatcher, *, tenant: str) -> None:
        super().__init__(pool, watcher)
        self.tenant = tenant

    async def get(self) -> dict[WindowSpec, list[Monitor]]:
        mine = {spec: [m for m in found if m.tenant_id == self.tenant] for spec, found in (await super().get()).items()}
        return {spec: found for spec, found in mine.items() if found}


@dataclass
class ClosingWorld:
    settings: MonitorsSettings
    pool: asyncpg.Pool
    producer: AIOKafkaProducer
    watcher: ConfigWatcher
    tenant: str
    now: list[float] = field(default_factory=lambda: [float(T0)])
    panes: dict[Any, Any] = field(default_factory=dict)
    since: dict[Any, int] = field(default_factory=dict)

    def closer(self) -> WindowCloser:
        """A closer of this test's tenant's monitors: other tests' (the session shares one database) are not
        its business, and their open firings would resolve here."""
        return WindowCloser(self.settings, pool=self.pool, producer=self.producer, panes=self.panes,
                            monitors=TenantMonitors(self.pool, self.watcher, tenant=self.tenant),
                            clock=lambda: self.now[0])

    async def alerts(self, tenant: str, expected: int) -> list[dict[str, Any]]:
        records = await collect(self.settings.kafka_bootstrap, self.settings.alerts_topic, self.since,
                                until=lambda found: len(found) >= expected, timeout_s=3,
                                keep=lambda r: orjson.loads(r.value)["tenant_id"] == tenant)
        return [orjson.loads(r.value) for r in records]


@pytest_asyncio.fixture
async def closing(stack: CommonSettings, pg_pool: asyncpg.Pool, tenant: str) -> AsyncIterator[ClosingWorld]:
    settings = monitors_settings(stack)
    await create_topics(settings)
    producer = durable_producer(stack.kafka_bootstrap, client_id="monitors-test")
    await producer.start()
    watcher = ConfigWatcher(stack.database_url)
    await watcher.start()
    world = ClosingWorld(settings, pg_pool, producer, watcher, tenant)
    world.since = await end_offsets(stack.kafka_bootstrap, settings.alerts_topic)
    try:
        yield world
    finally:
        await producer.stop()
        await watcher.close()


async def wait_for(condition: Callable[[], Awaitable[bool]], timeout_s: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)
