"""SIGKILL the span writer (a real process) in the middle of the stream, restart it, count what was stored.

Ground truth: every sent event is exactly one span row, and the hourly and minute rollups count each span
exactly once (they are added only for rows the insert returned, in the same transaction)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest

from llmops_shared.clock import utc_now
from llmops_shared.settings import CommonSettings, environment
from tests.integration.traces.traces_support import (
    create_topic,
    send,
    span_count,
    span_event,
    traces_settings,
    wait_for,
)

pytestmark = pytest.mark.integration

EVENTS = 3_000


async def _start(env: dict[str, str], log: Path) -> asyncio.subprocess.Process:
    with log.open("ab") as out:
        return await asyncio.create_subprocess_exec(sys.executable, "-m", "llmops_traces.worker", env=env,
                                                    stdout=asyncio.subprocess.DEVNULL, stderr=out)


async def test_a_writer_killed_mid_stream_loses_and_duplicates_no_span(stack: CommonSettings, pg_pool: asyncpg.Pool,
                                                                       tenant: str, tmp_path: Path) -> None:
    settings = traces_settings(stack, batch_max_events=100, consumer_session_timeout_ms=6000)
    await create_topic(settings, partitions=3)
    at = utc_now() - timedelta(minutes=5)  # the process runs on the wall clock (its partition window)
    events = [span_event(tenant, at=at + timedelta(milliseconds=i), trace_id=f"tr-{i // 5}", span_id=f"sp-{i}")
              for i in range(EVENTS)]
    await send(settings.kafka_bootstrap, settings.topic, events)
    env = {**os.environ, **environment(settings, ("database_url", "kafka_bootstrap", "topic", "group",
                                                  "batch_max_events", "batch_max_wait_ms",
                                                  "consumer_session_timeout_ms"))}
    log = tmp_path / "worker.log"

    first = await _start(env, log)
    try:
        async def some_stored() -> bool:
            return await span_count(pg_pool, tenant) >= 300

        await wait_for(some_stored, timeout_s=60, what=f"the first spans\n{log}")
    finally:
        first.send_signal(signal.SIGKILL)
        await first.wait()
    at_kill = await span_count(pg_pool, tenant)
    assert first.returncode == -signal.SIGKILL
    assert 300 <= at_kill < EVENTS, log.read_text()[-2000:]

    second = await _start(env, log)
    try:
        async def all_stored() -> bool:
            return await span_count(pg_pool, tenant) >= EVENTS

        await wait_for(all_stored, timeout_s=90, what=f"every span after the restart\n{log}")
        await asyncio.sleep(1.0)  # anything still to come (a duplicate) would come now
    finally:
        second.send_signal(signal.SIGTERM)
        await asyncio.wait_for(second.wait(), 30)
    assert second.returncode == 0, log.read_text()[-2000:]

    rows = await pg_pool.fetch("SELECT event_id::text AS id FROM trace_spans WHERE tenant_id = $1", tenant)
    assert len(rows) == EVENTS and {r["id"] for r in rows} == {e["event_id"] for e in events}
    for table in ("trace_metrics_hourly", "trace_metrics_minute"):
        counted = await pg_pool.fetchval(f"SELECT sum(requests) FROM {table} WHERE tenant_id = $1", tenant)  # noqa: S608
        assert counted == EVENTS, table
