"""`EXPLAIN (ANALYZE, BUFFERS)` of the billing worker's batch statement (and, from billing/0017 on, of its rollup
follower's apply), on the throughput benchmark's mix, in a scratch database of its own.

    PYTHONPATH=<a build> .venv/bin/python bench/billing_explain.py [--batches 11] [--merge 10] [--plans]

Writes `--batches` batches of 2,000 of `billing_throughput.realistic_events` the way the worker does (staged
rows, the staging COPY, the statement with the usage outbox, and the pending rollup row where the build has
one), the last one under `EXPLAIN ANALYZE`; then, where the build has a follower, explains its apply of
`--merge` pending batches. Prints each data-modifying step's rows and the statement's execution time
(`--plans`: the whole plans). Run it once per build, alternating, to compare builds on one machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.billing_throughput import realistic_events  # noqa: E402
from llmops_shared import db, migrations  # noqa: E402
from llmops_shared.partitions import window_sql  # noqa: E402
from llmops_shared.settings import CommonSettings  # noqa: E402

BATCH = 2_000
_STEP = re.compile(r"(CTE \w+|Insert on \w+|Delete on \w+|Execution Time: [0-9.]+ ms)")


def summary(plan: str) -> str:
    """The plan's CTE names, its insert and delete nodes (with their rows and times) and its execution time."""
    out = []
    for line in plan.splitlines():
        if _STEP.search(line):
            out.append(re.sub(r"\(cost=[^)]*\) ", "", line))
    return "\n".join(out)


async def main(args: argparse.Namespace) -> None:
    from llmops_billing.billable import decode_billable
    from llmops_billing.builtin_prices import builtin_catalogue
    from llmops_billing.ledger import ledger_row
    from llmops_billing.store import ledger as store_ledger

    statement = store_ledger._INSERT_LEDGER
    deferred = not isinstance(statement, str)  # billing/0017 on: the worker's statement leaves pending rows
    sql = statement[True] if deferred else statement
    settings = CommonSettings()
    url = db.with_database(settings.database_url, f"llmops_bench_billing_explain_{os.getpid()}")
    await db.drop_database(url)
    await db.ensure_database(url)
    await migrations.migrate(url)
    conn = await asyncpg.connect(url)
    try:
        catalogue, now = builtin_catalogue(), datetime.now(UTC)
        events = realistic_events(BATCH * args.batches, "bench")
        plan = ""
        for b in range(args.batches):
            rows = [ledger_row(decode_billable(orjson.dumps(e)), catalogue, priced_at=now)
                    for e in events[b * BATCH:(b + 1) * BATCH]]
            staged = [store_ledger.stage(r, usage_outbox=True) for r in rows if r is not None]
            window = window_sql([s.row.occurred_at for s in staged], now=now)
            async with conn.transaction():
                await conn.execute(f"{store_ledger._PREPARE_STAGING} "
                                   f"SELECT llmops_ensure_month_partitions('usage_ledger', {window}), "
                                   f"llmops_ensure_month_partitions('usage_events_seen', {window})")
                await conn.copy_records_to_table(store_ledger._STAGING_NAME, schema_name="pg_temp",
                                                 columns=store_ledger._STAGED, records=[s.record for s in staged])
                params = [len(staged)] if "$1" in sql else []  # billing12 on: the batch's size
                if b == args.batches - 1:
                    plan = "\n".join(r[0] for r in await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", *params))
                else:
                    await conn.fetch(sql, *params)
        print(f"the batch statement (batch {args.batches} of {BATCH:,} events, "
              f"{'rollups pending for the follower' if deferred else 'every rollup inline'}):")
        print(plan if args.plans else summary(plan))
        if deferred:
            from llmops_billing.store import pending_rollups

            async with conn.transaction():
                await conn.execute("SET LOCAL work_mem = '64MB'")  # as `pending_rollups.apply`
                apply_plan = "\n".join(r[0] for r in await conn.fetch(
                    f"EXPLAIN (ANALYZE, BUFFERS) {pending_rollups._APPLY}", args.merge))
            print(f"\nthe follower's apply of {args.merge} pending batches:")
            print(apply_plan if args.plans else summary(apply_plan))
    finally:
        await conn.close()
        await db.drop_database(url)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=11)
    parser.add_argument("--merge", type=int, default=10)
    parser.add_argument("--plans", action="store_true")
    asyncio.run(main(parser.parse_args()))
