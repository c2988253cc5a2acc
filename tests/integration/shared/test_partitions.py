"""Monthly partitions with a default partition (issue 10, items 7 and 9), on the real Postgres.

`llmops_ensure_month_partitions` on a table of the test's own: the window around the writer's clock, the
default partition for the rest, and a month that the default partition already holds rows of (Postgres
refuses to create a partition then: the rows are moved). Then the migrations that partitioned the growing
tables: every one has a default partition, and a database migrated before them keeps its rows.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from llmops_shared import db, migrations
from llmops_shared.partitions import WINDOW_AHEAD, WINDOW_BACK, ensure_month_partitions, month_partitions
from llmops_shared.settings import CommonSettings

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)  # the writer's clock in these tests
GROWING = ("usage_ledger", "usage_events_seen", "guardrail_findings", "guardrail_alert_events", "evaluation_results")
OUR_MIGRATIONS = ("shared/0004_month_partitions.sql", "billing/0005_partition_defaults.sql",
                  "evaluator/0004_partition_results.sql", "guardrails/0010_partition_findings.sql",
                  "shared/0005_partitions_race.sql", "traces/0006_day_partitions_race.sql")


@pytest.fixture
async def table(pg_pool: asyncpg.Pool) -> str:
    name = f"t_parts_{uuid.uuid4().hex[:8]}"
    await pg_pool.execute(f"""CREATE TABLE {name} (id uuid NOT NULL, occurred_at timestamptz NOT NULL,
                                  note text NOT NULL DEFAULT '', PRIMARY KEY (id, occurred_at))
                              PARTITION BY RANGE (occurred_at);
                              CREATE TABLE {name}_default PARTITION OF {name} DEFAULT""")
    yield name
    await pg_pool.execute(f"DROP TABLE {name}")


async def insert(conn: asyncpg.Connection | asyncpg.Pool, table: str, instants: list[datetime]) -> None:
    await conn.execute(f"INSERT INTO {table} (id, occurred_at) SELECT gen_random_uuid(), unnest($1::timestamptz[])",
                       instants)


async def where(pool: asyncpg.Pool, table: str) -> dict[str, int]:
    rows = await pool.fetch(f"SELECT tableoid::regclass::text AS part, count(*) AS n FROM {table} GROUP BY 1")  # noqa: S608
    return {r["part"]: r["n"] for r in rows}


async def test_months_near_the_clock_get_partitions_and_every_other_row_the_default_one(
        pg_pool: asyncpg.Pool, table: str) -> None:
    months = [datetime(2018 + m // 12, 1 + m % 12, 15, tzinfo=UTC) for m in range(200)]  # 2018-01 .. 2034-08
    async with pg_pool.acquire() as conn, conn.transaction():
        created = await ensure_month_partitions(conn, table, months, now=NOW)
        await insert(conn, table, months)
    parts = [p for p in await month_partitions(pg_pool, table) if not p.is_default]
    assert created == len(parts)
    # only months overlapping [now - WINDOW_BACK, now + WINDOW_AHEAD): 2026-08 .. 2027-01
    assert [p.name for p in parts] == [f"{table}_{m}" for m in ("2026_08", "2026_09", "2026_10", "2026_11", "2026_12",
                                                              "2027_01")]
    assert all(p.lower and p.upper and p.upper > NOW - WINDOW_BACK and p.lower < NOW + WINDOW_AHEAD for p in parts)
    counts = await where(pg_pool, table)
    assert sum(counts.values()) == 200 and counts[f"{table}_default"] == 200 - len(parts)
    async with pg_pool.acquire() as conn, conn.transaction():  # again: nothing to create
        assert await ensure_month_partitions(conn, table, months, now=NOW) == 0


async def test_a_month_the_default_partition_holds_rows_of_is_created_by_moving_them(
        pg_pool: asyncpg.Pool, table: str) -> None:
    # Rows of 2027-06 came while it was far in the future: they are in the default partition.
    future = [datetime(2027, 6, 1, tzinfo=UTC), datetime(2027, 6, 30, 23, 59, tzinfo=UTC)]
    other = [datetime(2027, 7, 1, tzinfo=UTC)]
    async with pg_pool.acquire() as conn, conn.transaction():
        assert await ensure_month_partitions(conn, table, future + other, now=NOW) == 0
        await insert(conn, table, future + other)
    assert await where(pg_pool, table) == {f"{table}_default": 3}
    # Plain Postgres refuses to create that month now.
    with pytest.raises(asyncpg.CheckViolationError, match="would be violated by some row"):
        await pg_pool.execute(f"CREATE TABLE {table}_2027_06 PARTITION OF {table} "
                              "FOR VALUES FROM ('2027-06-01Z') TO ('2027-07-01Z')")
    # Months later 2027-06 is near the clock: its partition is made, with its rows moved out of the default.
    later = datetime(2027, 6, 10, tzinfo=UTC)
    async with pg_pool.acquire() as conn, conn.transaction():
        assert await ensure_month_partitions(conn, table, [later], now=later) == 1
        await insert(conn, table, [later])
    assert await where(pg_pool, table) == {f"{table}_2027_06": 3, f"{table}_default": 1}
    bound = await pg_pool.fetchval("SELECT pg_get_expr(relpartbound, oid) FROM pg_class WHERE relname = $1",
                                   f"{table}_2027_06")
    assert bound.startswith("FOR VALUES FROM (") and "2027-06" in bound and "2027-07" in bound
    # the moved month is a partition like any other: its primary key holds
    with pytest.raises(asyncpg.UniqueViolationError):
        await pg_pool.execute(f"INSERT INTO {table} (id, occurred_at) SELECT id, occurred_at FROM {table}_2027_06 "  # noqa: S608
                              "LIMIT 1")


async def test_partitions_are_listed_oldest_first_with_their_bounds_and_the_default_last(
        pg_pool: asyncpg.Pool, table: str) -> None:
    async with pg_pool.acquire() as conn, conn.transaction():
        await ensure_month_partitions(conn, table, [NOW, NOW - timedelta(days=40)], now=NOW)
    parts = await month_partitions(pg_pool, table)
    assert [(p.name, p.lower, p.upper) for p in parts] == [
        (f"{table}_2026_10", datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC)),
        (f"{table}_2026_11", datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)),
        (f"{table}_default", None, None)]


async def test_every_table_that_grows_with_traffic_is_partitioned_with_a_default_partition(
        pg_pool: asyncpg.Pool) -> None:
    for name in GROWING:
        assert await pg_pool.fetchval("SELECT relkind::text FROM pg_class WHERE relname = $1", name) == "p", name
        parts = await month_partitions(pg_pool, name)
        assert parts[-1].is_default and parts[-1].name == f"{name}_default", name


async def test_the_migrations_partition_existing_tables_and_keep_their_rows(
        stack: CommonSettings, tmp_path: Path) -> None:
    """A database migrated before the partitioning migrations, with rows, then migrated again."""
    source = migrations.default_migrations_dir()
    shutil.copytree(source, tmp_path / "migrations")
    # The database as it was before the partitioning migrations: without them and without what came after.
    later = {(name.split("/")[0], path.name) for name in OUR_MIGRATIONS
             for path in (source / name.split("/")[0]).glob("*.sql") if path.name >= name.split("/")[1]}
    held_back = tmp_path / "held-back"
    for component, file in sorted(later):
        (held_back / component).mkdir(parents=True, exist_ok=True)
        (tmp_path / "migrations" / component / file).rename(held_back / component / file)
    url = db.with_database(stack.database_url, f"llmops_test_parts_{uuid.uuid4().hex[:8]}")
    await db.ensure_database(url)
    try:
        await migrations.migrate(url, tmp_path / "migrations")
        conn = await asyncpg.connect(url)
        try:
            # one near the clock the migrations partition by (Postgres's own, not this process's), one long ago
            recent, old = await conn.fetchval("SELECT now()"), datetime(2019, 5, 5, tzinfo=UTC)
            ids = [uuid.uuid4(), uuid.uuid4()]
            await conn.execute("INSERT INTO tenants (tenant_id, name) VALUES ('acme', 'acme')")
            await conn.execute("INSERT INTO evaluators (evaluator_id, tenant_id, config) VALUES ('ev', 'acme', '{}')")
            alert = uuid.uuid4()
            await conn.execute(
                """INSERT INTO guardrail_alerts (alert_id, fingerprint, tenant_id, app_id, rule_id, detector,
                       severity, title, first_seen, last_seen)
                   VALUES ($1, 'fp', 'acme', 'bot', 'r', 'pii', 'warning', 't', $2, $2)""", alert, recent)
            for event_id, at in zip(ids, (recent, old), strict=True):
                await conn.execute("INSERT INTO usage_events_seen (event_id, occurred_at) VALUES ($1, $2)",
                                   event_id, at)
                await conn.execute(
                    """INSERT INTO guardrail_findings (event_id, finding_no, tenant_id, app_id, occurred_at, part,
                           detector, entity_type, start_offset, end_offset, score, value_hash)
                       VALUES ($1, 0, 'acme', 'bot', $2, 'input', 'pii', 'EMAIL', 0, 5, 0.9, 'h')""", event_id, at)
                await conn.execute("INSERT INTO guardrail_alert_events (alert_id, event_id, fingerprint, occurred_at) "
                                   "VALUES ($1, $2, 'fp', $3)", alert, event_id, at)
                await conn.execute(
                    """INSERT INTO evaluation_results (event_id, evaluator_id, rubric, rubric_version, tenant_id,
                           app_id, occurred_at, status, score, judge_model)
                       VALUES ($1, 'ev', 'relevance', 1, 'acme', 'bot', $2, 'ok', 0.5, 'j')""", event_id, at)
            # a row from before guardrails/0002, without occurred_at: it takes its created_at
            legacy = uuid.uuid4()
            await conn.execute("INSERT INTO guardrail_alert_events (alert_id, event_id, fingerprint) "
                               "VALUES ($1, $2, 'fp')", alert, legacy)
            before = {t: await conn.fetch(f"SELECT * FROM {t} ORDER BY event_id")  # noqa: S608
                      for t in GROWING if t != "usage_ledger"}
        finally:
            await conn.close()

        for name in OUR_MIGRATIONS:
            shutil.copy(source / name, tmp_path / "migrations" / name)
        applied = await migrations.migrate(url, tmp_path / "migrations")
        assert sorted(f"{m.component}/{m.version}_{m.name}.sql" for m in applied) == sorted(OUR_MIGRATIONS)

        conn = await asyncpg.connect(url)
        try:
            for table, rows in before.items():
                after = await conn.fetch(f"SELECT * FROM {table} ORDER BY event_id")  # noqa: S608
                expected = [{**dict(r), "occurred_at": r["occurred_at"] or r["created_at"]}
                            if table == "guardrail_alert_events" else dict(r) for r in rows]
                assert [dict(r) for r in after] == expected, table
                parts = dict(await conn.fetch(f"SELECT event_id, tableoid::regclass::text FROM {table}"))  # noqa: S608
                assert parts[ids[0]] == f"{table}_{recent:%Y_%m}", table  # a month near the clock: its own partition
                assert parts[ids[1]] == f"{table}_default", table          # 2019: the default partition
                assert await conn.fetchval("SELECT relkind::text FROM pg_class WHERE relname = $1", table) == "p"
                assert await conn.fetchval("SELECT to_regclass($1)", f"{table}_unpartitioned") is None
        finally:
            await conn.close()
    finally:
        await db.drop_database(url)


def test_the_partition_window_covers_what_the_ingest_api_accepts() -> None:
    from llmops_ingest.settings import IngestSettings

    ingest = IngestSettings()
    assert timedelta(days=ingest.max_age_days) + timedelta(days=31) < WINDOW_BACK  # and a month of backlog
    assert timedelta(seconds=ingest.max_ahead_s) < WINDOW_AHEAD


async def test_writers_racing_for_the_same_new_month_create_it_once_and_all_commit(
        stack: CommonSettings, table: str) -> None:
    # Eight writers, each in its own transaction, ask for the same new months at once. The losers wait
    # on the winner's lock; when it commits, they must see its partitions (not try to create them
    # again: DuplicateTableError) and insert into them.
    months = [datetime(2026, 11, 2, tzinfo=UTC), datetime(2026, 12, 3, tzinfo=UTC)]
    start = asyncio.Event()

    async def writer(conn: asyncpg.Connection) -> int:
        async with conn.transaction():
            await conn.execute("SELECT 1")
            await start.wait()
            created = await ensure_month_partitions(conn, table, months, now=NOW)
            await insert(conn, table, months)
            return created

    conns = [await asyncpg.connect(stack.database_url) for _ in range(8)]
    try:
        tasks = [asyncio.create_task(writer(c)) for c in conns]
        await asyncio.sleep(0.2)  # every writer is inside its transaction (the release, not a bound)
        start.set()
        created = await asyncio.gather(*tasks)
    finally:
        for c in conns:
            await c.close()
    assert sum(created) == 2
    pool_conn = await asyncpg.connect(stack.database_url)
    try:
        counts = await where(pool_conn, table)  # type: ignore[arg-type]
    finally:
        await pool_conn.close()
    assert counts == {f"{table}_2026_11": 8, f"{table}_2026_12": 8}


async def test_a_reader_of_the_table_and_a_writer_creating_a_month_do_not_deadlock(
        pg_pool: asyncpg.Pool, table: str) -> None:
    """A query of a partitioned table locks the parent, then its partitions, the default one among them. A
    writer creating a partition used to lock the default partition first and the parent after: a query that
    had the parent and waited for the default partition then deadlocked with it (seen in benchmarks: a
    `count(*)` on the ledger or the span table chosen as the victim). Here the reader holds the parent when
    the writer starts, and reads the default partition once the writer waits for a lock."""
    async with pg_pool.acquire() as reader, pg_pool.acquire() as writer:
        writer_pid = await writer.fetchval("SELECT pg_backend_pid()")
        async with reader.transaction():
            await reader.execute(f"LOCK TABLE ONLY {table} IN ACCESS SHARE MODE")  # not its partitions

            async def create() -> int:
                async with writer.transaction():
                    return await ensure_month_partitions(writer, table, [NOW], now=NOW)

            creating = asyncio.create_task(create())
            for _ in range(500):  # until the writer waits for a lock (the reader's)
                if await pg_pool.fetchval("SELECT count(*) FROM pg_locks WHERE pid = $1 AND NOT granted",
                                          writer_pid):
                    break
                await asyncio.sleep(0.01)
            else:
                pytest.fail("the writer never waited for the reader's lock")
            # With the old lock order this waits for the writer, which waits for us: Postgres aborts one.
            assert await reader.fetchval(f"SELECT count(*) FROM {table}_default") == 0  # noqa: S608
        assert await creating == 1
    assert [p.name for p in await month_partitions(pg_pool, table) if not p.is_default] == [f"{table}_2026_11"]
