"""What the API and the CLI do with monitor definitions: validate what the schema cannot (channels, limits),
store, and map rows to the public shape."""

from __future__ import annotations

from typing import Any

import asyncpg

from llmops_monitors.evaluation import Monitor, Reading, alert_message
from llmops_monitors.observe import split_key
from llmops_monitors.schemas import FiringPublic, FiringsPublic, MonitorCreate, MonitorPublic, MonitorsPublic
from llmops_monitors.store import Executor, outbox
from llmops_monitors.store import firings as firings_store
from llmops_monitors.store import monitors as store
from llmops_shared.problems import Conflict, Invalid, NotFound


def _public(row: dict[str, Any]) -> MonitorPublic:
    return MonitorPublic.model_validate({**row, "window": row["window_spec"], "channels": row["channel_ids"]})


def _definition(body: MonitorCreate) -> dict[str, Any]:
    return body.model_dump(mode="json")


async def _check_channels(db: Executor, tenant_id: str, body: MonitorCreate) -> None:
    unknown = await store.unknown_channels(db, tenant_id=tenant_id, channel_ids=body.channels)
    if unknown:
        raise Invalid("channels", f"not notification channels of this tenant: {', '.join(map(str, unknown))}")


async def list_monitors(db: Executor, *, tenant_id: str) -> MonitorsPublic:
    return MonitorsPublic(monitors=[_public(r) for r in await store.list_monitors(db, tenant_id=tenant_id)])


async def states(db: Executor, *, tenant_id: str, monitor_ids: list[int]) -> dict[int, dict[str, Any]]:
    """Each monitor's current state: `firing` when any of its groups fires, `ok` when evaluated and none does,
    `pending` before its first window closed; with the groups' counts and the last window closed."""
    found = {r["monitor_id"]: r for r in await firings_store.monitor_states(db, tenant_id=tenant_id,
                                                                              monitor_ids=monitor_ids)}
    out: dict[int, dict[str, Any]] = {}
    for monitor_id in monitor_ids:
        row = found.get(monitor_id)
        if row is None:
            out[monitor_id] = {"state": "pending", "groups": 0, "firing": 0, "last_window_end": None}
        else:
            out[monitor_id] = {"state": "firing" if row["firing"] else "ok", "groups": row["groups"],
                               "firing": row["firing"], "last_window_end": row["last_window_end"]}
    return out


async def get(db: Executor, *, tenant_id: str, monitor_id: int) -> MonitorPublic:
    row = await store.get_monitor(db, tenant_id=tenant_id, monitor_id=monitor_id)
    if row is None:
        raise NotFound(f"no monitor {monitor_id}")
    return _public(row)


async def create(db: Executor, *, tenant_id: str, body: MonitorCreate, limit: int) -> MonitorPublic:
    await _check_channels(db, tenant_id, body)
    if await store.count_monitors(db, tenant_id=tenant_id) >= limit:
        raise Conflict(f"the tenant has {limit} monitors, the most allowed; delete one first")
    return _public(await store.insert_monitor(db, tenant_id=tenant_id, definition=_definition(body)))


async def replace(db: asyncpg.Pool, *, tenant_id: str, monitor_id: int, body: MonitorCreate) -> MonitorPublic:
    """A new definition; disabling the monitor resolves its firings (their resolve messages are sent)."""
    await _check_channels(db, tenant_id, body)
    async with db.acquire() as conn, conn.transaction():
        row = await store.replace_monitor(conn, tenant_id=tenant_id, monitor_id=monitor_id,
                                          definition=_definition(body))
        if row is None:
            raise NotFound(f"no monitor {monitor_id}")
        if not row["enabled"]:
            await _resolve_all(conn, row, why="disabled")
    return _public(row)


async def delete(db: asyncpg.Pool, *, tenant_id: str, monitor_id: int) -> None:
    """Delete a monitor; its firings are resolved (their resolve messages are sent: no incident stays open)."""
    async with db.acquire() as conn, conn.transaction():
        row = await store.get_monitor(conn, tenant_id=tenant_id, monitor_id=monitor_id)
        if row is None or not await store.delete_monitor(conn, tenant_id=tenant_id, monitor_id=monitor_id):
            raise NotFound(f"no monitor {monitor_id}")
        await _resolve_all(conn, row, why="deleted")


async def _resolve_all(conn: asyncpg.Connection, row: dict[str, Any], *, why: str) -> None:
    """Resolve the monitor's open firings and put their resolve messages in the outbox (the worker's relay
    sends them within `outbox_relay_interval_s` or so)."""
    monitor = Monitor.from_record(row)
    alerts = []
    for state in await firings_store.close_firing_states(conn, monitor_id=monitor.monitor_id):
        if state["firing_id"] is None:
            continue
        await firings_store.resolve_firing(conn, firing_id=state["firing_id"], window_end=state["last_window_end"])
        alert = alert_message(monitor, state["group_key"], firing_id=state["firing_id"], status="resolved",
                              window_end=state["last_window_end"], reading=Reading(None, 0.0, None, False))
        alerts.append(alert.model_copy(update={"summary": f"the monitor was {why}; {alert.summary}"}))
    await outbox.add(conn, alerts=alerts)


async def list_firings(db: Executor, *, tenant_id: str, monitor_id: int, limit: int) -> FiringsPublic:
    await get(db, tenant_id=tenant_id, monitor_id=monitor_id)
    rows = await firings_store.list_firings(db, tenant_id=tenant_id, monitor_id=monitor_id, limit=limit)
    return FiringsPublic(firings=[FiringPublic(
        **{k: v for k, v in r.items() if k != "group_key"}, group=split_key(r["group_key"]),
        status="resolved" if r["resolved_at"] is not None else "firing") for r in rows])
