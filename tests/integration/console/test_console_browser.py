"""The console in a real browser (Debian's Chromium, headless, reaching nothing but this machine), as a person
uses it: sign in (a wrong key refused), the overview's charts drawn, the alerts table, acknowledging an alert
(its status changes in Postgres), following it to its trace's tree, a POST without the CSRF token refused, and
another tenant's key seeing none of it. Each page is saved as a screenshot, light and dark, in docs/console/.

One browser and one console server for the module; the data is written by the services' own code, for two
tenants of the module's own, around a fixed `NOW`.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
from selenium import webdriver
from selenium.webdriver.common.by import By

from llmops_shared import apikeys
from llmops_shared.clock import fixed
from llmops_shared.kafka import ensure_topics
from llmops_shared.settings import CommonSettings
from llmops_shared.topics import PREFIX as TOPIC_PREFIX
from llmops_shared.topics import TopicSpec
from tests.integration.console.browser_support import SERIES_PIXELS, screenshot, sign_in, text, wait_for
from tests.integration.traces.traces_support import (
    NOW,
    add_finding,
    add_score,
    agent_trace,
    bill,
    span_event,
    store_directly,
)
from tests.support.servers import serve

pytestmark = pytest.mark.integration


@dataclass
class Seeded:
    url: str
    key_a: str
    key_b: str
    alert_ids_a: list[str]
    alert_id_b: str
    trace_a: str
    trace_b: str
    tenant_a: str
    tenant_b: str


async def _alert(pool: asyncpg.Pool, event: dict[str, Any], *, rule: str, detector: str, kinds: tuple[str, ...],
                 severity: str) -> str:
    from llmops_guardrails import alerts_service
    from llmops_guardrails.screening import Occurrence, fingerprint

    occurrence = Occurrence(
        fingerprint=fingerprint(event["tenant_id"], event["app_id"], rule, detector), tenant_id=event["tenant_id"],
        app_id=event["app_id"], rule_id=rule, detector=detector, severity=severity, policy_severity="high",
        kinds=kinds, findings=1, max_score=0.9, event_id=uuid.UUID(event["event_id"]),
        occurred_at=datetime.fromisoformat(event["occurred_at"]))
    async with pool.acquire() as conn, conn.transaction():
        [message] = await alerts_service.record_occurrences(conn, [occurrence], window_s=3600)
    return message.alert_id


@pytest_asyncio.fixture(scope="module")
async def seeded(stack: CommonSettings, pg_pool: asyncpg.Pool) -> AsyncIterator[Seeded]:
    from llmops_billing.budgets import Enforcement, Period, add_budget
    from llmops_console.api import create_app
    from llmops_console.settings import ConsoleSettings
    from llmops_guardrails.settings import GuardrailsSettings
    from llmops_traces.settings import TracesSettings

    tenant_a, tenant_b = f"ca-{uuid.uuid4().hex[:8]}", f"cb-{uuid.uuid4().hex[:8]}"
    trace_a = agent_trace(tenant_a, at=NOW - timedelta(minutes=10), app="support-bot")
    earlier = [span_event(tenant_a, at=NOW - timedelta(hours=h), app_id="support-bot", model=model, provider="openai",
                          usage={"input_tokens": 4000, "output_tokens": 900})
               for h, model in ((3, "gpt-4o"), (26, "gpt-4o-mini"), (30, "gpt-4o"))]
    trace_b = agent_trace(tenant_b, at=NOW - timedelta(minutes=20), app="b-only-app")
    await store_directly(pg_pool, [*trace_a, *earlier, *trace_b])
    await bill(pg_pool, [*trace_a, *earlier])
    llm_a = next(s for s in trace_a if s["span_kind"] == "llm")
    await add_finding(pg_pool, llm_a)
    await add_score(pg_pool, llm_a, 0.75)
    await add_score(pg_pool, earlier[0], 0.5)
    alerts_a = [await _alert(pg_pool, llm_a, rule="pii-email", detector="pii", kinds=("EMAIL",), severity="warning"),
                await _alert(pg_pool, trace_a[-1], rule="leaked-secret", detector="secrets", kinds=("AWS_KEY",),
                             severity="critical")]
    alert_b = await _alert(pg_pool, trace_b[3], rule="b-only-rule", detector="pii", kinds=("PHONE",),
                           severity="warning")
    async with pg_pool.acquire() as conn:
        await add_budget(conn, tenant_id=tenant_a, app_id="support-bot", period=Period.MONTH,
                         amount=Decimal("1.00"), thresholds=[50, 80, 100], enforcement=Enforcement.SOFT,
                         name="support", now=NOW)
    scopes_a = ["alerts:read", "alerts:write", "billing:read", "traces:read", "eval:write"]
    key_a = (await apikeys.create_key(pg_pool, tenant_id=tenant_a, scopes=scopes_a)).secret
    key_b = (await apikeys.create_key(pg_pool, tenant_id=tenant_b, scopes=["admin"])).secret

    common = stack.model_dump()
    guardrails = GuardrailsSettings(**{**common, "alerts_topic": f"{TOPIC_PREFIX}console.alerts.{tenant_a}"})
    await ensure_topics(stack.kafka_bootstrap, (TopicSpec(guardrails.alerts_topic, partitions=1,
                                                          retention_ms=3_600_000),))
    app = create_app(ConsoleSettings(**{**common, "requests_per_s": None}), traces_settings=TracesSettings(**common),
                     guardrails_settings=guardrails, clock=fixed(NOW))
    with serve(app) as url:
        yield Seeded(url, key_a, key_b, alerts_a, alert_b, trace_a[0]["trace_id"], trace_b[0]["trace_id"],
                     tenant_a, tenant_b)


def test_a_wrong_key_is_refused_and_the_right_one_signs_in_with_a_session_cookie_only(
        seeded: Seeded, browser: webdriver.Chrome) -> None:
    sign_in(browser, seeded.url, "lk_aaaaaaaaaaaa_" + "x" * 43, refused=True)
    assert "not valid" in browser.find_element(By.ID, "login-error").text
    assert browser.get_cookie("llmops_console") is None
    screenshot(browser, "login")

    sign_in(browser, seeded.url, seeded.key_a)
    assert browser.find_element(By.ID, "tenant").text == seeded.tenant_a
    cookie = browser.get_cookie("llmops_console")
    assert cookie is not None and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert seeded.key_a not in cookie["value"] and seeded.key_a not in browser.page_source
    assert "llmops_console" not in browser.execute_script("return document.cookie")  # out of scripts' reach


def _ledger_cost(stack: CommonSettings, tenant: str, start: datetime, end: datetime) -> float:
    """The ledger's own sum of cost over `[start, end)` (a connection of its own: the test is synchronous)."""
    async def read() -> float:
        conn = await asyncpg.connect(stack.database_url)
        try:
            return float(await conn.fetchval(
                "SELECT coalesce(sum(cost_total), 0)::float8 FROM usage_ledger WHERE tenant_id = $1 "
                "AND occurred_at >= $2 AND occurred_at < $3", tenant, start, end))
        finally:
            await conn.close()

    return asyncio.run(read())


def test_the_overview_charts_draw_the_costs_the_traffic_and_the_latency(seeded: Seeded, browser: webdriver.Chrome,
                                                                       stack: CommonSettings) -> None:
    sign_in(browser, seeded.url, seeded.key_a)
    wait_for(browser, lambda d: d.execute_script(SERIES_PIXELS, "#cost-chart") > 50, "the cost chart drew no bars")
    wait_for(browser, lambda d: d.execute_script(SERIES_PIXELS, "#traffic-chart") > 50,
             "the traffic chart drew no line")
    costs = [r.text for r in browser.find_elements(By.CSS_SELECTOR, "#cost-table tbody tr")]
    assert [c.split()[0] for c in costs] == ["gpt-4o", "gpt-4o-mini"]  # largest first
    assert browser.find_element(By.ID, "request-count").text == "6"  # the trace's 5 spans, 1 three hours ago
    wait_for(browser, lambda d: d.execute_script(SERIES_PIXELS, "#latency-chart") > 50,
             "the latency chart drew no p95 line")
    assert browser.find_element(By.ID, "p95-today").text.endswith(" ms")
    day = NOW.replace(hour=0)
    assert float(browser.find_element(By.ID, "cost-today").text) == pytest.approx(
        _ledger_cost(stack, seeded.tenant_a, day, NOW + timedelta(hours=1)), abs=1e-4)
    yesterday = _ledger_cost(stack, seeded.tenant_a, day - timedelta(days=1), day)
    assert yesterday > 0 and float(browser.find_element(By.ID, "cost-yesterday").text) == pytest.approx(
        yesterday, abs=1e-4)  # the calls of 26 and 30 hours ago
    assert float(browser.find_element(By.ID, "cost-month").text) == pytest.approx(
        _ledger_cost(stack, seeded.tenant_a, day.replace(day=1), NOW + timedelta(hours=1)), abs=1e-4)
    assert "support" in browser.find_element(By.ID, "overview-budgets").text
    assert len(browser.find_elements(By.CSS_SELECTOR, "#open-alerts li a")) == 2
    screenshot(browser, "overview")


def test_an_alert_is_acknowledged_in_postgres_and_leads_to_its_trace(seeded: Seeded, browser: webdriver.Chrome,
                                                                    stack: CommonSettings) -> None:
    sign_in(browser, seeded.url, seeded.key_a)
    browser.get(f"{seeded.url}/alerts")
    rows = browser.find_elements(By.CSS_SELECTOR, "#alerts-table tbody tr[data-alert-id]")
    assert sorted(r.get_attribute("data-alert-id") for r in rows) == sorted(seeded.alert_ids_a)
    assert {r.find_element(By.CSS_SELECTOR, ".status").text for r in rows} == {"open"}
    screenshot(browser, "alerts")

    alert_id = seeded.alert_ids_a[0]
    browser.find_element(By.CSS_SELECTOR, f"tr[data-alert-id='{alert_id}'] button.ack").click()
    wait_for(browser, lambda d: d.find_elements(By.ID, "alert-status"), "the alert's page did not open")
    assert browser.find_element(By.ID, "alert-status").text == "acknowledged"
    assert _status(stack, alert_id) == "acknowledged"
    assert "acknowledged by" in text(browser)
    screenshot(browser, "alert")

    links = browser.find_elements(By.CSS_SELECTOR, "#alert-traces a")
    assert [a.text for a in links] == [seeded.trace_a]
    links[0].click()
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#waterfall tr.span"), "the trace did not open")
    spans = browser.find_elements(By.CSS_SELECTOR, "#waterfall tr.span")
    assert [s.get_attribute("data-depth") for s in spans] == ["0", "1", "2", "3", "4"]  # the tree, nested
    llm = spans[3]
    assert "EMAIL" in llm.text and "relevance 0.75" in llm.text and "gpt-4o-mini" in llm.text
    screenshot(browser, "trace")


def test_a_state_change_without_the_csrf_token_is_refused(seeded: Seeded, browser: webdriver.Chrome,
                                                           stack: CommonSettings) -> None:
    sign_in(browser, seeded.url, seeded.key_a)
    session = {"llmops_console": browser.get_cookie("llmops_console")["value"]}
    alert_id = seeded.alert_ids_a[1]
    with httpx.Client(base_url=seeded.url, cookies=session, follow_redirects=False) as client:
        for form in ({}, {"csrf_token": "not-the-token"}):
            answer = client.post(f"/alerts/{alert_id}/resolve", data=form)
            assert answer.status_code == 403 and "CSRF" in answer.text
        assert client.post("/logout", data={}).status_code == 403
    assert _status(stack, alert_id) == "open"
    browser.get(f"{seeded.url}/alerts")
    assert browser.find_element(By.ID, "tenant").text == seeded.tenant_a  # the session is still there

    with httpx.Client(base_url=seeded.url, follow_redirects=False) as client:  # sign-in without its form token
        assert client.post("/login", data={"api_key": seeded.key_a}).status_code == 403


def test_another_tenants_key_sees_none_of_it(seeded: Seeded, browser: webdriver.Chrome) -> None:
    sign_in(browser, seeded.url, seeded.key_b)
    assert browser.find_element(By.ID, "tenant").text == seeded.tenant_b
    overview = browser.page_source
    assert "support-bot" not in overview and "gpt-4o" not in overview and "pii-email" not in overview
    browser.get(f"{seeded.url}/alerts")
    rows = browser.find_elements(By.CSS_SELECTOR, "#alerts-table tbody tr[data-alert-id]")
    assert [r.get_attribute("data-alert-id") for r in rows] == [seeded.alert_id_b]
    for path in (f"/alerts/{seeded.alert_ids_a[0]}", f"/traces/{seeded.trace_a}"):
        browser.get(seeded.url + path)
        assert browser.find_element(By.TAG_NAME, "h1").text == "404", path
    browser.get(f"{seeded.url}/traces")
    listed = [a.text for a in browser.find_elements(By.CSS_SELECTOR, "#traces-table a")]
    assert listed == [seeded.trace_b]
    browser.get(f"{seeded.url}/budgets")
    assert "support" not in text(browser)


def test_the_traces_evaluations_and_budgets_pages(seeded: Seeded, browser: webdriver.Chrome) -> None:
    sign_in(browser, seeded.url, seeded.key_a)
    browser.get(f"{seeded.url}/traces?model=gpt-4o")
    listed = [a.text for a in browser.find_elements(By.CSS_SELECTOR, "#traces-table a")]
    assert len(listed) == 1 and seeded.trace_a not in listed  # the filter applies: one gpt-4o span in the last day
    browser.get(f"{seeded.url}/traces")
    assert seeded.trace_a in [a.text for a in browser.find_elements(By.CSS_SELECTOR, "#traces-table a")]
    screenshot(browser, "traces")

    browser.get(f"{seeded.url}/evaluations")
    wait_for(browser, lambda d: d.execute_script(SERIES_PIXELS, "#score-chart") > 5, "the score chart drew nothing")
    screenshot(browser, "evaluations")

    browser.get(f"{seeded.url}/budgets")
    row = browser.find_element(By.CSS_SELECTOR, "#budgets-table tbody tr")
    assert "support-bot" in row.text and "month" in row.text
    wait_for(browser, lambda d: d.execute_script(SERIES_PIXELS, ".burn-chart") > 5, "the burn-down drew nothing")
    screenshot(browser, "budgets")


def _status(stack: CommonSettings, alert_id: str) -> str:
    """The alert's status as Postgres has it (a connection of its own: the test itself is synchronous)."""
    async def read() -> str:
        conn = await asyncpg.connect(stack.database_url)
        try:
            return str(await conn.fetchval("SELECT status FROM guardrail_alerts WHERE alert_id = $1",
                                           uuid.UUID(alert_id)))
        finally:
            await conn.close()

    return asyncio.run(read())


def test_the_server_keeps_the_keys_hash_only_and_a_revoked_keys_session_ends(seeded: Seeded,
                                                                            stack: CommonSettings) -> None:
    import re

    import redis
    import redis.asyncio as aioredis

    async def new_key() -> str:
        conn = await asyncpg.connect(stack.database_url)
        try:
            return (await apikeys.create_key(conn, tenant_id=seeded.tenant_a, scopes=["alerts:read"])).secret
        finally:
            await conn.close()

    key = asyncio.run(new_key())
    with httpx.Client(base_url=seeded.url, follow_redirects=False) as client:
        form = client.get("/login").text
        token = re.search(r'name="csrf_token" value="([^"]+)"', form)
        assert token is not None
        assert client.post("/login", data={"csrf_token": token.group(1), "api_key": key}).status_code == 303
        assert client.get("/alerts").status_code == 200
        cookie = client.cookies["llmops_console"]

        stored = redis.Redis.from_url(stack.redis_url)
        try:
            [entry] = [stored.get(k) for k in stored.scan_iter("llmops:console:session:*")
                       if stored.get(k) and apikeys.hash_key(key).hex().encode() in stored.get(k)]
            assert entry is not None and key.encode() not in entry and cookie.encode() not in entry
        finally:
            stored.close()

        async def revoke() -> None:
            conn = await asyncpg.connect(stack.database_url)
            client_redis = aioredis.from_url(stack.redis_url)
            try:
                key_id = key.split("_")[1]
                assert await apikeys.revoke_key(conn, key_id, client_redis)
            finally:
                await client_redis.aclose()
                await conn.close()

        asyncio.run(revoke())
        answer = client.get("/alerts")
        assert answer.status_code == 303 and answer.headers["location"] == "/login"


def test_resolving_an_alert_from_its_row(seeded: Seeded, browser: webdriver.Chrome, stack: CommonSettings) -> None:
    sign_in(browser, seeded.url, seeded.key_a)
    browser.get(f"{seeded.url}/alerts")
    alert_id = seeded.alert_ids_a[1]
    browser.find_element(By.CSS_SELECTOR, f"tr[data-alert-id='{alert_id}'] button.resolve").click()
    wait_for(browser, lambda d: d.find_elements(By.ID, "alert-status"), "the alert's page did not open")
    assert browser.find_element(By.ID, "alert-status").text == "resolved"
    assert _status(stack, alert_id) == "resolved"
    browser.get(f"{seeded.url}/alerts")  # open and acknowledged ones only, by default
    assert alert_id not in [r.get_attribute("data-alert-id")
                            for r in browser.find_elements(By.CSS_SELECTOR, "#alerts-table tbody tr[data-alert-id]")]
