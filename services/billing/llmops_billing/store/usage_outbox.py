"""The usage outbox: `billing.usage` messages written with their ledger rows, deleted once sent.

`billing_usage_outbox_batches` (billing/0018) holds one row per batch: the messages' keys and payloads as two
arrays, written by the batch statement (`store.ledger.write_batch(..., usage_outbox=True)`).
`billing_usage_outbox` (0007) holds one row per message: what workers before 0018 left, and what `add`
writes (tests, tools).

Whoever sends a row first **takes** it: `take_batch` (the row a batch just wrote, by its id),
`take_pending_batches` and `take_pending` (what a crashed process left, for the relay) delete the rows they
take, skipping rows another transaction holds (`FOR UPDATE SKIP LOCKED`), in the caller's transaction, which
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


# The takes lock their rows first (SKIP LOCKED), collect the locked rows' ctids (or ids) in an array (an
# InitPlan: run once), then delete by TID (or primary key). The form they replaced (`DELETE ... USING
# (SELECT ... FOR UPDATE SKIP LOCKED) c WHERE o.key = c.key`) was planned, whenever autovacuum had last seen
# the table empty (reltuples 0 over non-empty pages: the usual state of an outbox), as a nested loop running
# the locking subquery again for every outbox row: quadratic, 2 s for 2,000 rows and past the pool's 30 s
# command timeout under a backlog.
# A locked row cannot move, so its ctid holds until this transaction ends.
_TAKE_PENDING = """
    DELETE FROM billing_usage_outbox
    WHERE ctid = ANY (ARRAY(
        SELECT ctid FROM billing_usage_outbox
        WHERE created_at <= now() - make_interval(secs => $1)
        ORDER BY created_at LIMIT $2
        FOR UPDATE SKIP LOCKED))
    RETURNING msg_key, payload, created_at
"""


_TAKE_BATCH = """
    DELETE FROM billing_usage_outbox_batches
    WHERE id = (SELECT id FROM billing_usage_outbox_batches WHERE id = $1 FOR UPDATE SKIP LOCKED)
    RETURNING id
"""

_TAKE_PENDING_BATCHES = """
    DELETE FROM billing_usage_outbox_batches
    WHERE id = ANY (ARRAY(
        SELECT id FROM billing_usage_outbox_batches
        WHERE created_at <= now() - make_interval(secs => $1)
        ORDER BY id LIMIT $2
        FOR UPDATE SKIP LOCKED))
    RETURNING msg_keys, payloads, created_at
"""


async def take_batch(conn: asyncpg.Connection, *, batch_id: int) -> bool:
    """In the caller's transaction: delete the batch row `batch_id` unless another transaction holds it (a
    relay: it sends those messages) or it is gone; whether it was taken (the caller then sends the batch's
    messages and commits)."""
    return bool(await conn.fetchval(_TAKE_BATCH, batch_id))


async def take_pending_batches(conn: asyncpg.Connection, *, min_age_s: float, limit: int) -> list[asyncpg.Record]:
    """In the caller's transaction: delete up to `limit` batch rows at least `min_age_s` old, oldest first,
    not held by another transaction; returns their `msg_keys`, `payloads` and `created_at`."""
    return await conn.fetch(_TAKE_PENDING_BATCHES, min_age_s, limit)


async def take_pending(conn: asyncpg.Connection, *, min_age_s: float, limit: int) -> list[asyncpg.Record]:
    """In the caller's transaction: delete up to `limit` rows at least `min_age_s` old, oldest first, not
    held by another transaction; returns their `msg_key`, `payload` and `created_at`."""
    return await conn.fetch(_TAKE_PENDING, min_age_s, limit)
