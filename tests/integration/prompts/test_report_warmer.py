"""The report's warmer (`llmops_prompts.warmer`): a running experiment's ended hours are aggregated into the report's
cache in the background, and nothing of a stopped experiment or of another tenant; after a pass the report is the
report over the raw rows and its first request aggregates only the hour under way; late data in a warmed hour is
aggregated again (that hour only); two warmers (and a report) at once leave one copy of each hour; the API's
lifespan runs it and stops it with the app."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime, timedelta

import asyncpg
import pytest

from llmops_prompts import warmer as warmer_module
from llmops_prompts.api import create_app
from llmops_prompts.report import VariantData
from llmops_prompts.store import calls
from llmops_prompts.store import experiments as experiment_store
from llmops_prompts.warmer import ReportWarmer, targets
from llmops_shared.clock import fixed
from llmops_shared.settings import CommonSettings
from tests.integration.prompts.test_prompts_api import prompts_settings
from tests.integration.prompts.test_report_cache import START, VARIANTS, _events, _report, _same, _store
from tests.integration.traces.traces_support import NOW, add_score
from tests.support.servers import serve

pytestmark = pytest.mark.integration

CLOCK = NOW + timedelta(minutes=30)  # 12:30: the hours 06:20-07:00 .. 11:00-12:00 have ended, 12:00 is under way
ENDED = 6  # the experiment's first part of an hour (from its start, 06:20) and five whole hours


async def _experiment(pool: asyncpg.Pool, tenant: str, *, unit: str = "user", prompt: str = "answer",
                      status: str = "running") -> None:
    """An experiment on `prompt`, started at START (the data's window), then left running or stopped."""
    await pool.execute("INSERT INTO prompts (tenant_id, name, type, created_by) VALUES ($1, $2, 'text', 'test') "
                       "ON CONFLICT DO NOTHING", tenant, prompt)
    eid = f"e-{uuid.uuid4().hex[:6]}"
    await experiment_store.insert(pool, tenant_id=tenant, experiment_id=eid, prompt=prompt, label="production",
                                  unit=unit, variants=[{"name": "long", "version": 1, "weight": 1},
                                                       {"name": "short", "version": 2, "weight": 1}],
                                  holdout=0.1, description="", created_by="test")
    await experiment_store.start(pool, tenant_id=tenant, experiment_id=eid)
    await pool.execute("UPDATE prompt_experiments SET started_at = $3 WHERE tenant_id = $1 AND id = $2",
                       tenant, eid, START)
    if status == "stopped":
        await experiment_store.stop(pool, tenant_id=tenant, experiment_id=eid)


async def _hours(pool: asyncpg.Pool, tenant: str) -> list[tuple[datetime, datetime, datetime]]:
    """The tenant's cached stretches: (since, until, computed_at)."""
    return [(r["since"], r["until"], r["computed_at"]) for r in await pool.fetch(
        "SELECT since, until, computed_at FROM prompt_report_hours WHERE tenant_id = $1 ORDER BY since", tenant)]


async def _report_data(pool: asyncpg.Pool, tenant: str, *, cache: bool, unit: str = "user"
                       ) -> dict[str, VariantData]:
    """The data of the running experiment's default report window (its start to now)."""
    return await calls.variant_data(pool, tenant_id=tenant, prompt="answer", variants=VARIANTS, unit=unit,
                                    start=START, end=CLOCK, now=CLOCK, cache=cache)


def _warmer(pool: asyncpg.Pool, *tenants: str) -> ReportWarmer:
    return ReportWarmer(pool, clock=fixed(CLOCK), interval_s=60, tenants=list(tenants))


def test_targets_are_the_running_experiments_settled_hours() -> None:
    started = NOW - timedelta(hours=2, minutes=40)  # 09:20
    rows = [{"tenant_id": "t", "prompt_name": "p", "unit": "user", "started_at": started},
            {"tenant_id": "t", "prompt_name": "p", "unit": "user", "started_at": started + timedelta(hours=1)},
            {"tenant_id": "t", "prompt_name": "p", "unit": "session", "started_at": NOW - timedelta(seconds=30)},
            {"tenant_id": "u", "prompt_name": "p", "unit": "user", "started_at": NOW - timedelta(days=900)}]
    # at 12:00:30 the hour 11:00-12:00 has not settled yet (a minute): the warm window ends at 11:00
    got = targets(rows, NOW + timedelta(seconds=30))
    assert got == [warmer_module.Target("t", "p", "user", started, NOW - timedelta(hours=1)),
                   warmer_module.Target("u", "p", "user", NOW - timedelta(hours=1) - warmer_module.MAX_WINDOW,
                                        NOW - timedelta(hours=1))]
    assert targets(rows, NOW + timedelta(minutes=1))[0].end == NOW  # settled


async def test_the_warmer_fills_a_running_experiments_ended_hours_and_nothing_else(pg_pool: asyncpg.Pool) -> None:
    running, stopped, bystander = (f"w{c}-{uuid.uuid4().hex[:8]}" for c in "rsb")
    for i, tenant in enumerate((running, stopped, bystander)):  # the same prompt and hours in each tenant
        await _store(pg_pool, _events(tenant, 120, seed=20 + i), seed=30 + i)
    await _experiment(pg_pool, running)
    await _experiment(pg_pool, stopped, status="stopped")
    await _experiment(pg_pool, bystander, prompt="other")  # running, but on a prompt without calls

    done = await _warmer(pg_pool, running, stopped, bystander).warm_once()
    hours = await _hours(pg_pool, running)
    assert [(since, until) for since, until, _ in hours] == (
        [(START, NOW - timedelta(hours=5))] + [(NOW - timedelta(hours=h), NOW - timedelta(hours=h - 1))
                                               for h in range(5, 0, -1)])
    assert await _hours(pg_pool, stopped) == []
    assert await pg_pool.fetchval("SELECT count(*) FROM prompt_report_hours WHERE tenant_id = $1 "
                                  "AND prompt_name = 'answer'", bystander) == 0
    assert done.aggregated == ENDED + ENDED  # the bystander's "other" prompt: its ended hours, empty

    # the first report reads the warmed hours and aggregates only the hour under way (which it does not keep)
    raw = await _report_data(pg_pool, running, cache=False)
    first = await _report_data(pg_pool, running, cache=True)
    assert await _hours(pg_pool, running) == hours
    _same(first, raw)
    assert _report(first) == _report(raw)
    assert sum(d.calls for d in raw.values()) > 0
    assert (await _warmer(pg_pool, running).warm_once()).aggregated == 0  # nothing new


async def test_late_data_in_a_warmed_hour_is_aggregated_again(pg_pool: asyncpg.Pool) -> None:
    tenant = f"wl-{uuid.uuid4().hex[:8]}"
    events = _events(tenant, 150, seed=40)
    await _store(pg_pool, events, seed=41)
    await _experiment(pg_pool, tenant, unit="session")
    warmer = _warmer(pg_pool, tenant)
    assert (await warmer.warm_once()).aggregated == ENDED
    before = {since: at for since, _, at in await _hours(pg_pool, tenant)}

    late = _events(tenant, 4, seed=42, offset=5000)  # events of the 09:00 hour, billed and stored late
    for i, event in enumerate(late):
        event["occurred_at"] = (NOW - timedelta(hours=3) + timedelta(minutes=11 + i)).isoformat()
    await _store(pg_pool, late, seed=43)
    assert (await warmer.warm_once()).aggregated == 1
    after = {since: at for since, _, at in await _hours(pg_pool, tenant)}
    assert [since for since in after if after[since] != before[since]] == [NOW - timedelta(hours=3)]
    _same(await _report_data(pg_pool, tenant, cache=True, unit="session"),
          await _report_data(pg_pool, tenant, cache=False, unit="session"))

    # a late judge score of an event of the 07:00 hour: that hour only
    old = next(e for i, e in enumerate(events) if i % 3 == 0 and NOW - timedelta(hours=5) <= _at(e)
               < NOW - timedelta(hours=4))
    await add_score(pg_pool, old, 0.321)
    assert (await warmer.warm_once()).aggregated == 1
    warmed = await _report_data(pg_pool, tenant, cache=True, unit="session")
    raw = await _report_data(pg_pool, tenant, cache=False, unit="session")
    _same(warmed, raw)
    assert _report(warmed) == _report(raw)


async def test_two_warmers_at_once_aggregate_each_hour_once_and_leave_one_copy(pg_pool: asyncpg.Pool) -> None:
    tenant = f"wt-{uuid.uuid4().hex[:8]}"
    await _store(pg_pool, _events(tenant, 150, seed=50), seed=51)
    await _experiment(pg_pool, tenant)
    first, second = await asyncio.gather(_warmer(pg_pool, tenant).warm_once(), _warmer(pg_pool, tenant).warm_once())
    # one took the (tenant, prompt, unit)'s lock and aggregated every ended hour; the other skipped it or, coming
    # after, found them kept
    assert first.aggregated + second.aggregated == ENDED
    assert len(await _hours(pg_pool, tenant)) == ENDED

    # two warmers and a report at once, every hour stale: still one copy of each hour and variant
    await pg_pool.execute("UPDATE prompt_report_hours SET stamp = 'stale' WHERE tenant_id = $1", tenant)
    await asyncio.gather(_warmer(pg_pool, tenant).warm_once(), _warmer(pg_pool, tenant).warm_once(),
                         _report_data(pg_pool, tenant, cache=True))
    assert len(await _hours(pg_pool, tenant)) == ENDED
    assert await pg_pool.fetchval("SELECT count(*) FROM prompt_report_hour_variants WHERE tenant_id = $1",
                                  tenant) == ENDED * len(VARIANTS)
    warmed = await _report_data(pg_pool, tenant, cache=True)
    raw = await _report_data(pg_pool, tenant, cache=False)
    _same(warmed, raw)
    assert _report(warmed) == _report(raw)


async def test_the_api_runs_the_warmer_and_stops_it_with_the_app(stack: CommonSettings,
                                                                 pg_pool: asyncpg.Pool) -> None:
    tenant = f"wa-{uuid.uuid4().hex[:8]}"
    await _store(pg_pool, _events(tenant, 60, seed=60), seed=61)
    await _experiment(pg_pool, tenant)
    app = create_app(prompts_settings(stack, report_warmer=True, report_warmer_interval_s=0.2), clock=fixed(CLOCK))
    with serve(app):
        deadline = time.monotonic() + 60  # a bound on the wait, not a timing assertion
        while len(await _hours(pg_pool, tenant)) < ENDED and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.1)  # (polls another process's writes: no event to wait on)
        task = app.state.report_warmer
        assert not task.done()
    assert len(await _hours(pg_pool, tenant)) == ENDED
    assert task.cancelled()  # stopped with the app, before its pool closed (no error left in the task)


async def test_the_warmer_is_off_when_configured_off(stack: CommonSettings) -> None:
    app = create_app(prompts_settings(stack, report_warmer=False))
    with serve(app):
        assert app.state.report_warmer is None


def _at(event: dict[str, object]) -> datetime:
    return datetime.fromisoformat(str(event["occurred_at"]))
