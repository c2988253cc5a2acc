"""A monitor's current state as the console shows it (`service.states`): pending before its first window
closed, ok, or firing with how many of its groups; another tenant's monitor has none."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from llmops_monitors import service
from llmops_monitors.observe import group_key
from llmops_monitors.store import firings
from tests.integration.monitors.conftest import define

pytestmark = pytest.mark.integration
END = datetime(2026, 12, 3, 11, 35, tzinfo=UTC)


async def _state(pool: asyncpg.Pool, monitor_id: int, tenant: str, app: str, *, status: str, end: datetime) -> None:
    key = group_key(tenant, app)
    async with pool.acquire() as conn, conn.transaction():
        await firings.lock_state(conn, monitor_id=monitor_id, group_key=key, tenant_id=tenant, window_end=end)
        firing_id = None
        if status == "firing":
            firing_id = await firings.open_firing(conn, monitor_id=monitor_id, tenant_id=tenant, group_key=key,
                                                  window_end=end, value=0.2, reference=0.1)
        await firings.save_state(conn, monitor_id=monitor_id, group_key=key, status=status, firing_id=firing_id,
                                 clear_streak=0, window_end=end)


async def test_pending_ok_and_firing_groups(pg_pool: asyncpg.Pool) -> None:
    tenant, other = f"ms-{uuid.uuid4().hex[:8]}", f"mo-{uuid.uuid4().hex[:8]}"
    body = {"metric": "error_rate", "window": "5m/1m", "condition": {"op": ">", "threshold": 0.1}}
    pending, quiet, loud = [await define(pg_pool, tenant, name=n, **body) for n in ("pending", "quiet", "loud")]
    await _state(pg_pool, quiet, tenant, "a", status="ok", end=END)
    await _state(pg_pool, loud, tenant, "a", status="ok", end=END - timedelta(minutes=1))
    await _state(pg_pool, loud, tenant, "b", status="firing", end=END)
    await _state(pg_pool, loud, tenant, "c", status="firing", end=END)

    found = await service.states(pg_pool, tenant_id=tenant, monitor_ids=[pending, quiet, loud])
    assert found[pending] == {"state": "pending", "groups": 0, "firing": 0, "last_window_end": None}
    assert found[quiet] == {"state": "ok", "groups": 1, "firing": 0, "last_window_end": END}
    assert found[loud] == {"state": "firing", "groups": 3, "firing": 2, "last_window_end": END}
    assert (await service.states(pg_pool, tenant_id=other, monitor_ids=[loud]))[loud]["state"] == "pending"
    assert await service.states(pg_pool, tenant_id=tenant, monitor_ids=[]) == {}
    # Workers of other tests evaluate every monitor in the database: leave no open firing behind.
    await pg_pool.execute("DELETE FROM monitor_firings WHERE tenant_id = $1", tenant)
    await pg_pool.execute("DELETE FROM monitor_states WHERE monitor_id = ANY($1::bigint[])", [pending, quiet, loud])
    await pg_pool.execute("DELETE FROM monitors WHERE tenant_id = $1", tenant)
