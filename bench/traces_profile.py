"""Where the traces writer's time goes: the worker in this process on the trace store benchmark's events.

The events (`traces_store.clean_events`: four-span traces, a guardrails summary on one in ten) are produced
to a fresh topic first, then the worker (`llmops_traces.worker.run`, as in production) consumes them until
`trace_spans` has them all. `--timers` wraps each step (decode, the span rows, the insert, the rollups and
summaries in Python and their upserts, offsets) in a wall-clock timer and prints the total per event;
`--cprofile FILE` writes a cProfile of the run instead (timers off: they distort it). The database is its
own (`llmops_bench_traces_profile_<pid>`), dropped at the end.

    .venv/bin/python bench/traces_profile.py --timers [--events 20000] [--env LLMOPS_TRACES_BATCH_MAX_EVENTS 2000]
    .venv/bin/python bench/traces_profile.py --cprofile /tmp/traces.prof

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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
import traces_store as ts  # noqa: E402

from llmops_shared import db, migrations  # noqa: E402
from llmops_shared.kafka import ensure_topics  # noqa: E402
from llmops_shared.settings import CommonSettings  # noqa: E402
from llmops_shared.topics import TopicSpec  # noqa: E402

TIMES: dict[str, float] = defaultdict(float)
COUNTS: dict[str, int] = defaultdict(int)


def timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    if asyncio.iscoroutinefunction(fn):
        async def awrapper(*a: Any, **k: Any) -> Any:
            t = time.perf_counter()
            try:
                return await fn(*a, **k)
            finally:
                TIMES[name] += time.perf_counter() - t
                COUNTS[name] += 1
        return awrapper

    def wrapper(*a: Any, **k: Any) -> Any:
        t = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            TIMES[name] += time.perf_counter() - t
            COUNTS[name] += 1
    return wrapper


def wrap(module: Any, attribute: str, name: str) -> None:
    if hasattr(module, attribute):
        setattr(module, attribute, timed(name, getattr(module, attribute)))


async def main(args: argparse.Namespace) -> None:
    settings = CommonSettings()
    url = db.with_database(settings.database_url, f"llmops_bench_traces_profile_{os.getpid()}")
    await db.drop_database(url)
    await db.ensure_database(url)
    await migrations.migrate(url)
    run = uuid.uuid4().hex[:8]
    topic, group, tenant = f"bench.traces.prof.{run}", f"bench-prof-{run}", f"bench-{run}"
    await ensure_topics(settings.kafka_bootstrap, (TopicSpec(topic, partitions=6, retention_ms=3_600_000),))
    payloads = ts.payloads_for(ts.clean_events(args.events, tenant), tenant)
    await ts.produce(settings, topic, payloads)
    os.environ.update({"LLMOPS_DATABASE_URL": url, "LLMOPS_LOG_LEVEL": "WARNING", "LLMOPS_TRACES_TOPIC": topic,
                       "LLMOPS_TRACES_GROUP": group})
    for k, v in (args.env or []):
        os.environ[k] = v
    import llmops_shared.worker as sw
    from llmops_traces import worker as w
    from llmops_traces.settings import TracesSettings
    from llmops_traces.store import partitions, spans, tenant_settings
    from llmops_traces.store import rollups as rollup_store
    from llmops_traces.store import summaries as summary_store

    if args.timers:
        for attribute in ("span_row", "rollups", "summaries", "inserted_rows", "tenant_rollups", "span_rows",
                          "decode_span"):
            wrap(w, attribute, attribute)
        wrap(rollup_store, "tenant_rollups", "tenant_rollups")
        wrap(partitions, "ensure_day_partitions", "ensure_day_partitions")
        wrap(spans, "insert", "spans.insert")
        wrap(tenant_settings, "get_many", "tenant_settings")
        wrap(rollup_store, "add", "rollups.add (minute, hour)")
        wrap(rollup_store, "add_tenant_hourly", "rollups.add_tenant_hourly")
        wrap(summary_store, "add", "summaries.add")
        w.SpanWriter.write = timed("handler.write", w.SpanWriter.write)
        w.SpanWriter.decode = timed("handler.decode", w.SpanWriter.decode)
        sw.StreamWorker._poll = timed("poll", sw.StreamWorker._poll)
        sw.StreamWorker._commit = timed("commit offsets", sw.StreamWorker._commit)
        sw.StreamWorker._transaction = timed("transaction", sw.StreamWorker._transaction)

    tsettings = TracesSettings()
    conn = await asyncpg.connect(url)
    target = len(payloads)

    async def watch() -> None:
        sql = "SELECT count(*) FROM trace_spans WHERE tenant_id = $1"
        while await conn.fetchval(sql, tenant) < target:  # noqa: ASYNC110  (polling Postgres)
            await asyncio.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)

    prof = cProfile.Profile() if args.cprofile else None
    started = time.perf_counter()
    cpu0 = time.process_time()
    watcher = asyncio.create_task(watch())
    if prof:
        prof.enable()
    await w.run(tsettings)
    if prof:
        prof.disable()
        prof.dump_stats(args.cprofile)
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu0
    await watcher
    rolled = await conn.fetchval("SELECT sum(requests) FROM trace_metrics_hourly WHERE tenant_id = $1", tenant)
    await conn.close()
    assert rolled == target, (rolled, target)
    print(f"{target} events in {elapsed:.2f} s: {target / elapsed:,.0f} ev/s (incl. start-up); process CPU {cpu:.2f} s"
          f" = {cpu / target * 1e6:.1f} us/event; load average {os.getloadavg()[0]:.1f}")
    for name, t in sorted(TIMES.items(), key=lambda kv: -kv[1]):
        print(f"  {name:<28} {t:8.3f} s  {t / target * 1e6:7.1f} us/event  calls {COUNTS[name]}")
    await db.drop_database(url)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--events", type=int, default=20000)
    p.add_argument("--cprofile")
    p.add_argument("--timers", action="store_true")
    p.add_argument("--env", nargs=2, action="append")
    asyncio.run(main(p.parse_args()))
