"""`monitor_events_seen`: which message (partition, offset) of a route first brought each event (a clean
interaction, a judge score, a ledger row); `consumer` is the worker's group and the route's code."""

from __future__ import annotations

from collections.abc import Sequence

from llmops_monitors.store import Executor


async def first_messages(conn: Executor, *, consumer: str,
                         messages: Sequence[tuple[str, str, int, int]]) -> set[tuple[int, int]]:
    """`messages`: (tenant_id, event_id, partition, offset). Records each event's first message (the first
    in `messages` if none is recorded yet) and returns the (partition, offset) of the first messages of all
    of them: a message not among those repeats an event another message brought."""
    if not messages:
        return set()
    rows = await conn.fetch(
        """WITH batch AS (SELECT * FROM unnest($2::text[], $3::uuid[], $4::int[], $5::bigint[])
                          AS b(tenant_id, event_id, source_partition, source_offset)),
           inserted AS (INSERT INTO monitor_events_seen (consumer, tenant_id, event_id, source_partition, source_offset)
                        SELECT $1, * FROM batch ON CONFLICT DO NOTHING
                        RETURNING source_partition, source_offset)
           SELECT source_partition, source_offset FROM inserted
           UNION ALL
           SELECT s.source_partition, s.source_offset FROM monitor_events_seen s
           JOIN batch b ON s.consumer = $1 AND s.tenant_id = b.tenant_id AND s.event_id = b.event_id""",
        consumer, [m[0] for m in messages], [m[1] for m in messages], [m[2] for m in messages],
        [m[3] for m in messages])
    return {(r["source_partition"], r["source_offset"]) for r in rows}


async def purge(conn: Executor, *, older_than_s: float) -> int:
    status = await conn.execute(
        "DELETE FROM monitor_events_seen WHERE seen_at < now() - make_interval(secs => $1)", older_than_s)
    return int(status.split()[-1])
