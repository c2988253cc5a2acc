"""Configuration changes reach a running process within a second, through Postgres LISTEN/NOTIFY."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from llmops_shared.config_changes import APPLICATION_NAME, ConfigWatcher
from llmops_shared.settings import CommonSettings

pytestmark = pytest.mark.integration

CONFIG_TABLES = ("evaluators", "model_prices", "model_price_tiers", "tenant_price_discounts", "budgets",
                 "guardrail_policies", "notification_channels", "api_keys")


@pytest.mark.parametrize("table", CONFIG_TABLES)
async def test_a_committed_change_to_a_configuration_table_moves_its_stamp_within_a_second(
        stack: CommonSettings, pg_pool: asyncpg.Pool, table: str) -> None:
    watcher = ConfigWatcher(stack.database_url)
    await watcher.start()
    try:
        assert watcher.connected
        before = watcher.stamp([table])
        others = watcher.stamp([t for t in CONFIG_TABLES if t != table])
        async with pg_pool.acquire() as conn, conn.transaction():
            await conn.execute(f"DELETE FROM {table} WHERE false")  # noqa: S608 (a statement changes config)
            assert not await watcher.wait_for_change([table], before, timeout_s=0.3)  # not before the commit
        assert await watcher.wait_for_change([table], before, timeout_s=1.0)
        assert watcher.stamp([t for t in CONFIG_TABLES if t != table]) == others
    finally:
        await watcher.close()


async def test_a_rolled_back_change_notifies_nobody(stack: CommonSettings, pg_pool: asyncpg.Pool) -> None:
    watcher = ConfigWatcher(stack.database_url)
    await watcher.start()
    try:
        before = watcher.stamp(["budgets"])
        async with pg_pool.acquire() as conn:
            tx = conn.transaction()
            await tx.start()
            await conn.execute("DELETE FROM budgets WHERE false")
            await tx.rollback()
        assert not await watcher.wait_for_change(["budgets"], before, timeout_s=1.0)
    finally:
        await watcher.close()


async def test_a_lost_listener_reconnects_and_every_stamp_moves(stack: CommonSettings, pg_pool: asyncpg.Pool) -> None:
    watcher = ConfigWatcher(stack.database_url, max_backoff_s=0.5)
    await watcher.start()
    try:
        before = watcher.stamp(["evaluators"])
        killed = await pg_pool.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = $1 AND datname = current_database()", APPLICATION_NAME)
        assert killed == 1
        assert await watcher.wait_for_change(["evaluators"], before, timeout_s=5)  # missed changes: reload all
        for _ in range(100):
            if watcher.connected:
                break
            await asyncio.sleep(0.05)
        assert watcher.connected
        after = watcher.stamp(["evaluators"])
        await pg_pool.execute("DELETE FROM evaluators WHERE false")
        assert await watcher.wait_for_change(["evaluators"], after, timeout_s=1.0)
    finally:
        await watcher.close()
