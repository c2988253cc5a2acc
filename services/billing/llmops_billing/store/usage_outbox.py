"""`billing_usage_outbox`: `billing.usage` messages written with their ledger rows, deleted once sent.

`add` runs in the batch's transaction. Whoever sends a row first **takes** it: `take` (the rows a batch just
inserted) and `take_pending` (what a crashed process left, for the relay) delete the rows they return,
skipping rows another transaction holds (`FOR UPDATE SKIP LOCKED`), in the caller's transaction, which
must last until Kafka has the messages: if the send fails the transaction rolls back and the rows are
pending again. So two billing workers never both send a row; a row is sent twice only when a process
dies after the send and before its commit, or a send is retried (the message keeps its `(tenant_id, event_id)`).
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from llmops_billing.ledger import UsageRecord


async def add(conn: asyncpg.Connection, *, messages: Sequence[UsageRecord]) -> None:
    """In the caller's transaction (the ledger's)."""
    if not messages:
        return
    await conn.execute(
        """INSERT INTO billing_usage_outbox (tenant_id, event_id, msg_key, payload)
           SELECT * FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[])
           ON CONFLICT (tenant_id, event_id) DO NOTHING""",
        [m.tenant_id for m in messages], [m.event_id for m in messages], [m.key.decode() for m in messages],
        [m.value.decode() for m in messages],
    )


# Both takes lock their rows first (SKIP LOCKED), collect the locked rows' ctids in an array (an InitPlan: run
# once), then delete by TID. The form they replaced (`DELETE ... USING (SELECT ... FOR UPDATE SKIP LOCKED) c
# WHERE o.key = c.key`) was planned, whenever autovacuum had last seen the table empty (reltuples 0 over
# non-empty pages: the usual state of an outbox), as a nested loop running the locking subquery again for
# every outbox row: quadratic, 2 s for 2,000 rows and past the pool's 30 s command timeout under a backlog.
# The batch's rows are found one key at a time (LATERAL: a primary-key probe each, whatever the statistics).
# A locked row cannot move, so its ctid holds until this transaction ends.
_TAKE = """
    DELETE FROM billing_usage_outbox
    WHERE ctid = ANY (ARRAY(
        SELECT o.ctid FROM unnest($1::text[], $2::uuid[]) AS k(tenant_id, event_id)
        CROSS JOIN LATERAL (SELECT ctid FROM billing_usage_outbox o
                            WHERE o.tenant_id = k.tenant_id AND o.event_id = k.event_id
                            FOR UPDATE SKIP LOCKED) o))
    RETURNING msg_key, payload
"""

_TAKE_PENDING = """
    DELETE FROM billing_usage_outbox
    WHERE ctid = ANY (ARRAY(
        SELECT ctid FROM billing_usage_outbox
        WHERE created_at <= now() - make_interval(secs => $1)
        ORDER BY created_at LIMIT $2
        FOR UPDATE SKIP LOCKED))
    RETURNING msg_key, payload, created_at
"""


async def take(conn: asyncpg.Connection, *, messages: Sequence[UsageRecord]) -> list[asyncpg.Record]:
    """In the caller's transaction: delete those of `messages` still in the outbox and not held by another
    transaction; returns their `msg_key` and `payload` (the caller sends those, then commits)."""
    return await conn.fetch(_TAKE, [m.tenant_id for m in messages], [m.event_id for m in messages])


async def take_pending(conn: asyncpg.Connection, *, min_age_s: float, limit: int) -> list[asyncpg.Record]:
    """In the caller's transaction: delete up to `limit` rows at least `min_age_s` old, oldest first, not
    held by another transaction; returns their `msg_key`, `payload` and `created_at`."""
    return await conn.fetch(_TAKE_PENDING, min_age_s, limit)
