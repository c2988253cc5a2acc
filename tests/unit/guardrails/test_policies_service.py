"""`PolicyStore`: cached until the watcher's stamp of `guardrail_policies` moves, with the TTL as a fallback."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from llmops_guardrails.policies_service import POLICY_TABLES, PolicyStore

AT = datetime(2026, 3, 10, 9, 30, tzinfo=UTC)  # the events' and rows' times: a fixed instant, not the clock


class FakeWatcher:
    def __init__(self) -> None:
        self.changes = 0

    def stamp(self, tables: Iterable[str]) -> tuple[int, ...]:
        assert tuple(tables) == POLICY_TABLES
        return (1, self.changes)


class FakeDb:
    """Answers `latest_of` with the stored documents; `during_read` runs while a read is in progress."""

    def __init__(self) -> None:
        self.documents: dict[tuple[str, str], tuple[int, str]] = {}
        self.reads = 0
        self.during_read: Callable[[], None] = lambda: None

    async def fetch(self, _sql: str, tenants: list[str], apps: list[str]) -> list[dict[str, Any]]:
        self.reads += 1
        rows = [{"tenant_id": t, "app_id": a, "version": v, "document": d, "created_at": AT,
                 "created_by": "k"}
                for (t, a), (v, d) in self.documents.items() if (t, a) in set(zip(tenants, apps, strict=True))]
        self.during_read()
        return rows


GLOBEX = "detectors: {terms: {lists: {competitors: {terms: [Globex]}}}}\n"


async def test_a_moved_stamp_empties_the_cache_before_the_next_read() -> None:
    watcher, db = FakeWatcher(), FakeDb()
    store = PolicyStore(3600, watcher=watcher)  # type: ignore[arg-type]
    assert (await store.one(db, "t1")).version == "default"  # type: ignore[arg-type]
    assert (await store.one(db, "t1")).version == "default"  # type: ignore[arg-type]
    assert db.reads == 1

    db.documents[("t1", "")] = (1, GLOBEX)
    assert (await store.one(db, "t1")).version == "default"  # type: ignore[arg-type]  # not notified yet
    watcher.changes += 1
    assert (await store.one(db, "t1")).version == "t1"  # type: ignore[arg-type]
    assert db.reads == 2


async def test_what_was_read_while_a_change_came_in_is_not_cached() -> None:
    watcher, db = FakeWatcher(), FakeDb()
    store = PolicyStore(3600, watcher=watcher)  # type: ignore[arg-type]

    def change_commits_during_the_read() -> None:
        db.documents[("t1", "")] = (1, GLOBEX)
        watcher.changes += 1
        db.during_read = lambda: None

    db.during_read = change_commits_during_the_read
    assert (await store.one(db, "t1")).version == "default"  # type: ignore[arg-type]  # read before the commit
    assert (await store.one(db, "t1")).version == "t1"  # type: ignore[arg-type]
    assert (await store.one(db, "t1")).version == "t1"  # type: ignore[arg-type]
    assert db.reads == 2


async def test_without_a_watcher_the_ttl_bounds_staleness() -> None:
    db = FakeDb()
    store = PolicyStore(0.0)
    await store.one(db, "t1")  # type: ignore[arg-type]
    db.documents[("t1", "")] = (1, GLOBEX)
    assert (await store.one(db, "t1")).version == "t1"  # type: ignore[arg-type]
    assert db.reads == 2
