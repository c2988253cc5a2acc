"""Where the billing worker's time goes: the worker in this process on the billing benchmark's events.

The events are produced to a fresh topic first, then the worker (`llmops_billing.worker.run`, as in
production) consumes them until the ledger has them all. `--timers` wraps each step (decode, pricing,
the batch write, COPY, the statement, publishing, offsets) in a wall-clock timer and prints the total per
event; `--cprofile FILE` writes a cProfile of the run instead (timers off: they distort it).

    .venv/bin/python bench/billing_profile.py --timers [--events 20000]
    .venv/bin/python bench/billing_profile.py --cprofile /tmp/billing.prof

Timers measure wall time, so on a shared machine they include waiting for a core; compare within a run.
"""
from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import signal
import sys
import time
import uuid
from collections import defaultdict
from pathlib import Path

import asyncpg
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
import billing_throughput as bt  # noqa: E402

from llmops_shared import db, migrations  # noqa: E402
from llmops_shared.kafka import ensure_topics  # noqa: E402
from llmops_shared.settings import CommonSettings  # noqa: E402
from llmops_shared.topics import TopicSpec  # noqa: E402

TIMES: dict[str, float] = defaultdict(float)
COUNTS: dict[str, int] = defaultdict(int)


def timed(name, fn):
    if asyncio.iscoroutinefunction(fn):
        async def wrapper(*a, **k):
            t = time.perf_counter()
            try:
                return await fn(*a, **k)
            finally:
                TIMES[name] += time.perf_counter() - t
                COUNTS[name] += 1
    else:
        def wrapper(*a, **k):
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                TIMES[name] += time.perf_counter() - t
                COUNTS[name] += 1
    return wrapper


async def main(args):
    settings = CommonSettings()
    url = db.with_database(settings.database_url, f"llmops_bench_billing_profile_{os.getpid()}")
    await db.drop_database(url)
    await db.ensure_database(url)
    await migrations.migrate(url)
    run = uuid.uuid4().hex[:8]
    topic, group, tenant = f"bench.billing.prof.{run}", f"bench-prof-{run}", f"bench-{run}"
    await ensure_topics(settings.kafka_bootstrap, (TopicSpec(topic, partitions=6, retention_ms=3_600_000),))
    events = bt.realistic_events(args.events, "bench")
    payloads = [(e["trace_id"].encode(), orjson.dumps({**e, "event_id": str(uuid.uuid4()), "tenant_id": tenant}))
                for e in events]
    await bt.produce(settings, topic, payloads)
    os.environ.update({"LLMOPS_DATABASE_URL": url, "LLMOPS_LOG_LEVEL": "WARNING", "LLMOPS_BILLING_TOPIC": topic,
                       "LLMOPS_BILLING_GROUP": group})
    for k, v in (args.env or []):
        os.environ[k] = v
    import llmops_shared.worker as sw
    from llmops_billing import usage_messages as um
    from llmops_billing import worker as w
    from llmops_billing.settings import BillingSettings
    from llmops_billing.store import ledger as store_ledger
    from llmops_billing.store import usage_outbox as uo

    if args.timers:
        w.ledger_row = timed("ledger_row", w.ledger_row)
        w.write_batch = timed("write_batch", w.write_batch)
        w.evaluate_touched = timed("evaluate_touched", w.evaluate_touched)
        w._unpriced_alerts = timed("unpriced_alerts", w._unpriced_alerts)
        w.outbox.add = timed("outbox.add", w.outbox.add)
        uo.add = timed("usage_outbox.add", uo.add)  # the worker's own call, before it moved into write_batch
        for name in ("take", "take_batch"):  # the batch's take: per row (main), by its batch row (0018 on)
            if hasattr(uo, name):
                setattr(uo, name, timed("usage_outbox.take", getattr(uo, name)))
        um.retry_send = timed("usage sends", um.retry_send)
        for module in (w, store_ledger):  # where the worker builds its usage messages (main: write_batch)
            if hasattr(module, "usage_record"):
                module.usage_record = timed("usage_record", module.usage_record)
        w.decode_billable = timed("decode_billable", w.decode_billable)
        w.UsageLedgerHandler.write = timed("handler.write", w.UsageLedgerHandler.write)
        w.UsageLedgerHandler.publish = timed("handler.publish", w.UsageLedgerHandler.publish)
        sw.StreamWorker._poll = timed("poll", sw.StreamWorker._poll)
        sw.StreamWorker._commit = timed("commit offsets", sw.StreamWorker._commit)
        sw.StreamWorker._transaction = timed("transaction", sw.StreamWorker._transaction)
        sw.StreamWorker.decode = timed("decode batch", sw.StreamWorker.decode)
        store_ledger.count_unpriced = timed("count_unpriced", store_ledger.count_unpriced)
        orig_copy = asyncpg.Connection.copy_records_to_table
        asyncpg.Connection.copy_records_to_table = timed("copy", orig_copy)
        orig_fetch = asyncpg.Connection.fetch
        asyncpg.Connection.fetch = timed("conn.fetch", orig_fetch)
        orig_exec = asyncpg.Connection.execute
        asyncpg.Connection.execute = timed("conn.execute", orig_exec)
        store_ledger._record = timed("_record", store_ledger._record)
        try:  # the follower's applies (billing/0017 on)
            from llmops_billing.store import pending_rollups
        except ImportError:
            pass
        else:
            pending_rollups.apply = timed("follower apply", pending_rollups.apply)

    bsettings = BillingSettings()
    conn = await asyncpg.connect(url)
    target = len(payloads)

    async def watch():
        sql = "SELECT count(*) FROM usage_ledger WHERE tenant_id = $1"
        while await conn.fetchval(sql, tenant) < target:  # noqa: ASYNC110  (polling Postgres)
            await asyncio.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)

    prof = cProfile.Profile() if args.cprofile else None
    started = time.perf_counter()
    cpu0 = time.process_time()
    watcher = asyncio.create_task(watch())
    if prof:
        prof.enable()
    await w.run(bsettings)
    if prof:
        prof.disable()
        prof.dump_stats(args.cprofile)
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu0
    await watcher
    await conn.close()
    print(f"{target} events in {elapsed:.2f} s: {target / elapsed:,.0f} ev/s (incl. start-up); process CPU {cpu:.2f} s"
          f" = {cpu / target * 1e6:.1f} us/event")
    for name, t in sorted(TIMES.items(), key=lambda kv: -kv[1]):
        print(f"  {name:<20} {t:8.3f} s  {t / target * 1e6:7.1f} us/event  calls {COUNTS[name]}")
    await db.drop_database(url)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--events", type=int, default=20000)
    p.add_argument("--cprofile")
    p.add_argument("--timers", action="store_true")
    p.add_argument("--env", nargs=2, action="append")
    asyncio.run(main(p.parse_args()))
