from __future__ import annotations

import pytest

from llmops_shared.contract import BadEvent
from llmops_shared.worker import DeadLetterFlood, FloodGuard, InteractionHandler, Message, decode_batch


class Decoder(InteractionHandler[None]):
    name = "test"
    topics = ("t",)

    async def write(self, conn: object, items: object) -> list[None]:  # type: ignore[override]
        return []


def msg(offset: int, value: bytes | None) -> Message:
    return Message("t", 0, offset, None, value, 0)


def test_decode_batch_splits_good_items_from_dead_letters() -> None:
    import orjson

    from tests.support.events import make_event

    good = orjson.dumps({**make_event(), "tenant_id": "acme"})
    batch = decode_batch(Decoder(), [msg(0, good), msg(1, b"{bad"), msg(2, None), msg(3, good)])
    assert [m.offset for m, _ in batch.items] == [0, 3]
    assert [(d.message.offset, d.reason) for d in batch.dead] == [(1, "bad_json"), (2, "empty")]


def test_flood_guard_stops_on_consecutive_bad_messages() -> None:
    guard = FloodGuard(max_consecutive=3, max_ratio=1.0, window=100)
    guard.observe([True, True, False, True, True])
    with pytest.raises(DeadLetterFlood, match="3 bad messages in a row"):
        guard.observe([True])


def test_flood_guard_stops_on_a_high_ratio_once_the_window_is_full() -> None:
    guard = FloodGuard(max_consecutive=1000, max_ratio=0.5, window=10)
    guard.observe([True, False] * 3)  # window not full yet: no verdict
    with pytest.raises(DeadLetterFlood, match="of the last 10"):
        guard.observe([True, True, True, False])


def test_flood_guard_tolerates_occasional_bad_messages() -> None:
    guard = FloodGuard(max_consecutive=5, max_ratio=0.2, window=50)
    for _ in range(20):
        guard.observe([False] * 9 + [True])


def test_bad_event_carries_reason_and_detail() -> None:
    err = BadEvent("schema_violation", "usage.input_tokens: must be >= 0")
    assert err.reason == "schema_violation" and "usage" in str(err)


def test_decode_batch_yielding_decodes_as_decode_batch_does_and_lets_other_tasks_run_between_chunks() -> None:
    import asyncio

    import orjson

    from llmops_shared.worker import DECODE_CHUNK, decode_batch_yielding
    from tests.support.events import make_event

    good = orjson.dumps({**make_event(), "tenant_id": "acme"})
    messages = [msg(i, b"{bad" if i % 7 == 0 else good) for i in range(2 * DECODE_CHUNK + 10)]
    decoded: list[int] = []
    ticks: list[int] = []  # how many messages were decoded whenever another task got the loop

    class Counting(Decoder):
        def decode(self, message: Message):  # type: ignore[no-untyped-def]
            decoded.append(message.offset)
            return super().decode(message)

    async def other() -> None:
        while len(decoded) < len(messages):
            ticks.append(len(decoded))
            await asyncio.sleep(0)

    async def main() -> tuple[object, None]:
        return await asyncio.gather(decode_batch_yielding(Counting(), messages), other())  # type: ignore[return-value]

    batch, _ = asyncio.run(main())
    expected = decode_batch(Decoder(), messages)
    assert [(m.offset, e.event_id) for m, e in batch.items] == [(m.offset, e.event_id)  # type: ignore[attr-defined]
                                                                 for m, e in expected.items]
    assert [(d.message.offset, d.reason) for d in batch.dead] == [(d.message.offset, d.reason) for d in expected.dead]
    assert DECODE_CHUNK in ticks and 2 * DECODE_CHUNK in ticks  # the loop was free between chunks


def test_owned_answers_per_partition_and_follows_every_rebalance() -> None:
    """`Owned` keeps its answer per partition, but a revocation or an assignment after the poll changes it
    at once: a partition revoked after the poll is not owned, even once it is assigned back."""
    import asyncio
    from types import SimpleNamespace

    from aiokafka import TopicPartition

    from llmops_shared.worker import Owned, Ownership

    async def drain(_timeout_s: float) -> None:
        return None

    stub = SimpleNamespace(drain=drain, settings=SimpleNamespace(rebalance_grace_s=0),
                           handler=SimpleNamespace(name="test"))
    ownership = Ownership(stub)  # type: ignore[arg-type]
    p0, p1, p2 = TopicPartition("t", 0), TopicPartition("t", 1), TopicPartition("t", 2)
    asyncio.run(ownership.on_partitions_assigned([p0, p1]))
    first, second, third = (Message("t", p, 10 + p, None, b"{}", 0) for p in range(3))
    owned = Owned(ownership, [first, second, third])
    assert [owned(first), owned(second), owned(third), owned(first)] == [True, True, False, True]
    asyncio.run(ownership.on_partitions_revoked([p0]))
    assert [owned(first), owned(second)] == [False, True]
    asyncio.run(ownership.on_partitions_assigned([p0, p1, p2]))
    assert [owned(first), owned(second)] == [False, True]  # p0 came back: a later epoch
    later = Owned(ownership, [first, third])
    assert [later(first), later(third)] == [True, True]
