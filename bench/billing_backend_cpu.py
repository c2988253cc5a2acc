"""Postgres CPU of billing's batch statement and the follower's apply, under two schemas in the same run.

Two databases: one migrated from this checkout (`deploy/migrations`), one from `--baseline-migrations` (another
checkout's). The same 2,000-event batches of the billing benchmark's events (`billing_throughput.realistic_events`,
priced and staged by this checkout's code) go to both, alternating which goes first: the staging COPY, this
checkout's batch statement (`store.ledger.write_batch`'s, pending rollups on), the take of the batch's outbox row,
then the follower's apply of the pending row (`store.pending_rollups.apply`). Each connection's backend CPU is read
from `/proc/<pid>/schedstat` (ns; Postgres must run on this host) around the statement with its commit and
around the apply. Prints the medians and sums (first batch left out) and each rollup's HOT-update counts.

    .venv/bin/python bench/billing_backend_cpu.py --baseline-migrations /path/to/old/deploy/migrations [--batches 24]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from billing_throughput import realistic_events  # noqa: E402

from llmops_shared import db, migrations  # noqa: E402
from llmops_shared.partitions import window_sql  # noqa: E402
from llmops_shared.settings import CommonSettings  # noqa: E402

BATCH = 2_000
_HOT = """SELECT relname, n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables
          WHERE relname LIKE 'usage_%' AND n_tup_upd > 0 ORDER BY relname"""


def cpu_ms(pid: int) -> float:
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e6


async def main(args: argparse.Namespace) -> None:
    from llmops_billing.billable import decode_billable
    from llmops_billing.builtin_prices import builtin_catalogue
    from llmops_billing.ledger import ledger_row
    from llmops_billing.store import ledger as store_ledger
    from llmops_billing.store import pending_rollups

    settings = CommonSettings()
    schemas = {"this checkout": ROOT / "deploy" / "migrations", "baseline": Path(args.baseline_migrations)}
    conns: dict[str, tuple[str, asyncpg.Connection, int]] = {}
    for i, (label, root) in enumerate(schemas.items()):
        url = db.with_database(settings.database_url, f"llmops_bench_backend_cpu_{os.getpid()}_{i}")
        await db.drop_database(url)
        await db.ensure_database(url)
        await migrations.migrate(url, root)
        conn = await asyncpg.connect(url)
        conns[label] = (url, conn, await conn.fetchval("SELECT pg_backend_pid()"))
    statement = store_ledger._INSERT_LEDGER[True]
    catalogue, now = builtin_catalogue(), datetime.now(UTC)
    events = realistic_events(BATCH * args.batches, "bench")
    written: dict[str, list[float]] = {label: [] for label in conns}
    applied: dict[str, list[float]] = {label: [] for label in conns}
    try:
        for b in range(args.batches):
            rows = [ledger_row(decode_billable(orjson.dumps(e)), catalogue, priced_at=now)
                    for e in events[b * BATCH:(b + 1) * BATCH]]
            staged = [store_ledger.stage(r, usage_outbox=True) for r in rows if r is not None]
            window = window_sql([s.row.occurred_at for s in staged], now=now)
            for label in (list(conns) if b % 2 == 0 else list(conns)[::-1]):
                _, conn, pid = conns[label]
                async with conn.transaction():
                    await conn.execute(f"{store_ledger._PREPARE_STAGING} SELECT llmops_ensure_month_partitions("
                                       f"'usage_ledger', {window}); {store_ledger._ANALYZE_NEW_PARTITIONS}")
                    await conn.copy_records_to_table(store_ledger._STAGING_NAME, schema_name="pg_temp",
                                                     columns=store_ledger._STAGED, records=[s.record for s in staged])
                    before = cpu_ms(pid)
                    result = await conn.fetchrow(statement, len(staged))
                written[label].append(cpu_ms(pid) - before)
                async with conn.transaction():
                    await conn.execute("DELETE FROM billing_usage_outbox_batches WHERE id = $1", result["usage_batch"])
                before = cpu_ms(pid)
                await pending_rollups.apply(conn, limit=10)
                applied[label].append(cpu_ms(pid) - before)
        await asyncio.sleep(1)  # the statistics reach pg_stat_user_tables
        print(f"{BATCH:,}-event batches: {args.batches} (the first left out); backend CPU, ms a batch")
        for label, (_, conn, _) in conns.items():
            w, a = written[label][1:], applied[label][1:]
            print(f"{label:<14} statement + commit median {statistics.median(w):6.1f} (sum {sum(w):6.0f}); "
                  f"follower apply median {statistics.median(a):6.1f} (sum {sum(a):6.0f})")
            hot = ", ".join(f"{r['relname']} {r['n_tup_hot_upd']}/{r['n_tup_upd']}" for r in await conn.fetch(_HOT))
            print(f"{'':<14} HOT updates: {hot}")
    finally:
        for url, conn, _ in conns.values():
            await conn.close()
            await db.drop_database(url)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--baseline-migrations", required=True)
    parser.add_argument("--batches", type=int, default=24)
    asyncio.run(main(parser.parse_args()))
