"""The console's prompts, experiment, monitors and costs pages in a real browser (Debian's Chromium, headless),
on data the services' own code wrote for two tenants of the module's own: a prompt with two versions and a
label moved, an experiment with a planted cost difference whose report draws its intervals, a firing monitor,
a month of costs by model, app, user and tag, and the CSV a person downloads. Another tenant's key sees none
of it. Each page is saved as a screenshot, light and dark, in docs/console/."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import random
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
from selenium import webdriver
from selenium.webdriver.common.by import By

from llmops_shared import apikeys
from llmops_shared.clock import fixed
from llmops_shared.settings import CommonSettings
from tests.integration.console.browser_support import SERIES_PIXELS, screenshot, sign_in, text, wait_for
from tests.integration.traces.traces_support import NOW, add_finding, add_score, bill, span_event, store_directly
from tests.support.servers import serve

pytestmark = pytest.mark.integration
FORMULA_TAG = "=HYPERLINK(\"http://x\")"  # a tag a spreadsheet would run: the CSV must quote it
WINDOW = f"from={(NOW - timedelta(hours=3)).isoformat().replace('+00:00', 'Z')}&to=" \
         f"{NOW.isoformat().replace('+00:00', 'Z')}"


@dataclass
class Seeded:
    url: str
    key_a: str
    key_b: str
    tenant_a: str
    tenant_b: str
    monitor_firing: int
    monitor_quiet: int
    database_url: str


async def _experiment_events(pool: asyncpg.Pool, tenant: str) -> None:
    """240 calls of prompt `answer`, half each variant; `short` costs about half as much (as in the prompts
    service's own report test)."""
    rng = random.Random(5)
    events = []
    for i in range(240):
        variant = "short" if i % 2 else "long"
        output_tokens = rng.randint(150, 250) if variant == "short" else rng.randint(300, 500)
        events.append(span_event(
            tenant, at=NOW - timedelta(hours=2) + timedelta(seconds=10 * i), model="gpt-4o-mini", user_id=f"u-{i}",
            trace_id=f"t-{i}", span_id=f"s-{i}", parent_span_id=None, latency_ms=float(rng.randint(300, 900)),
            usage={"input_tokens": 400, "output_tokens": output_tokens}, app_id="answers", tags=["experiment"],
            prompt={"name": "answer", "version": "1" if variant == "long" else "2", "variant": variant},
            status="error" if i % 40 == 0 else "ok", **({"error": {"type": "timeout"}} if i % 40 == 0 else {})))
    await store_directly(pool, events)
    await bill(pool, events)
    for i, event in enumerate(events):
        await add_score(pool, event, rng.uniform(0.6, 0.9) if i % 2 else rng.uniform(0.7, 1.0))
    await add_finding(pool, events[0])


async def _monitors(pool: asyncpg.Pool, tenant: str) -> tuple[int, int]:
    """Two monitors of the monitors service's own code; the first fires (its window closed as the closer
    records one), the second has closed no window yet."""
    from llmops_monitors.observe import group_key
    from llmops_monitors.schemas import MonitorCreate
    from llmops_monitors.service import create
    from llmops_monitors.store import firings

    def body(name: str, metric: str, threshold: float) -> MonitorCreate:
        return MonitorCreate.model_validate({"name": name, "metric": metric, "window": "5m/1m",
                                             "app_id": "support-bot", "condition": {"op": ">", "threshold": threshold},
                                             "min_samples": 20, "severity": "critical"})

    firing = (await create(pool, tenant_id=tenant, body=body("support errors", "error_rate", 0.05), limit=10))
    quiet = (await create(pool, tenant_id=tenant, body=body("support latency", "latency_p95", 2000), limit=10))
    key, end = group_key(tenant, "support-bot"), NOW - timedelta(minutes=5)
    async with pool.acquire() as conn, conn.transaction():
        await firings.record_evaluation(conn, monitor_id=firing.monitor_id, group_key=key, window_end=end,
                                        value=0.125, samples=40, breaching=True)
        await firings.lock_state(conn, monitor_id=firing.monitor_id, group_key=key, tenant_id=tenant, window_end=end)
        firing_id = await firings.open_firing(conn, monitor_id=firing.monitor_id, tenant_id=tenant, group_key=key,
                                              window_end=end, value=0.125, reference=0.05)
        await firings.save_state(conn, monitor_id=firing.monitor_id, group_key=key, status="firing",
                                 firing_id=firing_id, clear_streak=0, window_end=end)
    return firing.monitor_id, quiet.monitor_id


@pytest_asyncio.fixture(scope="module")
async def seeded(stack: CommonSettings, pg_pool: asyncpg.Pool) -> AsyncIterator[Seeded]:
    from llmops_console.api import create_app
    from llmops_console.settings import ConsoleSettings
    from llmops_prompts.api import create_app as prompts_app
    from llmops_prompts.settings import PromptsSettings
    from llmops_traces.settings import TracesSettings

    tenant_a, tenant_b = f"cp-{uuid.uuid4().hex[:8]}", f"cq-{uuid.uuid4().hex[:8]}"
    costs = [span_event(tenant_a, at=NOW - timedelta(hours=h), app_id=app, model=model, provider="openai",
                        user_id=user, tags=tags, usage={"input_tokens": 3000, "output_tokens": 700})
             for h, app, model, user, tags in ((1, "support-bot", "gpt-4o", "ursula", [FORMULA_TAG, "vip"]),
                                               (5, "support-bot", "gpt-4o-mini", "victor", ["vip"]),
                                               (30, "search", "gpt-4o", "ursula", []))]
    await store_directly(pg_pool, costs)
    await bill(pg_pool, costs)
    await _experiment_events(pg_pool, tenant_a)
    monitor_firing, monitor_quiet = await _monitors(pg_pool, tenant_a)
    write = (await apikeys.create_key(pg_pool, tenant_id=tenant_a, scopes=["prompts:write"])).secret
    key_a = (await apikeys.create_key(pg_pool, tenant_id=tenant_a,
                                      scopes=["alerts:read", "billing:read", "prompts:read", "traces:read"])).secret
    key_b = (await apikeys.create_key(pg_pool, tenant_id=tenant_b, scopes=["admin"])).secret

    common = stack.model_dump()
    prompts_settings = PromptsSettings(**{**common, "requests_per_s": None, "report_bootstrap_samples": 500})
    with serve(prompts_app(prompts_settings, clock=fixed(NOW))) as prompts_url:
        async with httpx.AsyncClient(base_url=prompts_url, headers={"Authorization": f"Bearer {write}"}) as api:
            for body in ({"template": "Answer at length: {{ q }}", "config": {"model": "gpt-4o-mini"},
                          "labels": ["production"], "commit_message": "first"},
                         {"template": "Answer briefly: {{ q }}\nSign as {{ agent }}.",
                          "config": {"model": "gpt-4o-mini", "max_tokens": 200}, "labels": ["staging"],
                          "commit_message": "shorter"}):
                assert (await api.post("/v1/prompts", json={"name": "answer", "type": "text", **body})).is_success
            assert (await api.put("/v1/prompts/answer/labels/staging", json={"version": 1})).is_success
            assert (await api.put("/v1/prompts/answer/labels/staging", json={"version": 2})).is_success
            created = await api.post("/v1/experiments", json={"id": "len", "prompt": "answer", "variants": [
                {"name": "long", "version": 1, "weight": 1}, {"name": "short", "version": 2, "weight": 1}]})
            assert created.status_code == 201
            assert (await api.post("/v1/experiments/len/start")).is_success

    app = create_app(ConsoleSettings(**{**common, "requests_per_s": None}), traces_settings=TracesSettings(**common),
                     prompts_settings=prompts_settings, clock=fixed(NOW))
    with serve(app) as url:
        yield Seeded(url, key_a, key_b, tenant_a, tenant_b, monitor_firing, monitor_quiet, stack.database_url)


def test_a_prompt_its_versions_label_history_and_a_diff(seeded: Seeded, browser: webdriver.Chrome) -> None:
    sign_in(browser, seeded.url, seeded.key_a)
    browser.get(f"{seeded.url}/prompts")
    [row] = browser.find_elements(By.CSS_SELECTOR, "#prompts-table tr[data-prompt]")
    assert "answer" in row.text and "production → v1" in row.text and "staging → v2" in row.text
    [experiment] = browser.find_elements(By.CSS_SELECTOR, "#experiments-table tr[data-experiment]")
    assert "len" in experiment.text and "running" in experiment.text
    screenshot(browser, "prompts")

    row.find_element(By.LINK_TEXT, "answer").click()
    wait_for(browser, lambda d: d.find_elements(By.ID, "versions-table"), "the prompt's page did not open")
    versions = browser.find_elements(By.CSS_SELECTOR, "#versions-table tr[data-version]")
    assert [v.get_attribute("data-version") for v in versions] == ["2", "1"]
    assert "shorter" in versions[0].text and "staging" in versions[0].text and "production" in versions[1].text
    moves = [r.text for r in browser.find_elements(By.CSS_SELECTOR, "#label-history tbody tr")]
    assert len(moves) == 4 and "staging v1 v2" in moves[0] and "staging v2 v1" in moves[1]  # newest first
    screenshot(browser, "prompt")

    browser.find_element(By.ID, "show-diff").click()  # v1 against v2, the form's default
    wait_for(browser, lambda d: d.find_elements(By.ID, "template-diff"), "the diff did not open")
    removed = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#template-diff .del")]
    added = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#template-diff .add")]
    assert removed == ["-Answer at length: {{ q }}"]
    assert added == ["+Answer briefly: {{ q }}", "+Sign as {{ agent }}."]
    assert "max_tokens" in browser.find_element(By.ID, "config-changes").text
    assert "Variables added: agent" in text(browser)
    screenshot(browser, "prompt-diff")


def test_an_experiments_report_draws_its_intervals(seeded: Seeded, browser: webdriver.Chrome) -> None:
    sign_in(browser, seeded.url, seeded.key_a)
    browser.get(f"{seeded.url}/experiments/len?{WINDOW}")
    wait_for(browser, lambda d: d.find_elements(By.ID, "variants-table"), "the report did not open")
    calls = {r.get_attribute("data-variant"): r.find_elements(By.TAG_NAME, "td")[1].text
             for r in browser.find_elements(By.CSS_SELECTOR, "#variants-table tr[data-variant]")}
    assert calls == {"long": "120", "short": "120"}
    cost = browser.find_element(By.CSS_SELECTOR, ".comparison[data-variant='short'] tr[data-metric='cost_per_call']")
    assert "better" in cost.text
    bar, zero = cost.find_element(By.CSS_SELECTOR, "rect.ci-bar"), cost.find_element(By.CSS_SELECTOR, "line.zero")
    assert bar.rect["width"] > 2 and bar.rect["x"] + bar.rect["width"] < zero.rect["x"]  # drawn, all below zero
    score = browser.find_element(By.CSS_SELECTOR, "tr[data-metric='score:relevance'] rect.ci-bar")
    assert "worse" in score.get_attribute("class")
    drawn = browser.find_elements(By.CSS_SELECTOR, ".comparison rect.ci-bar")
    assert len(drawn) == 6  # cost, p50, p95, errors, findings, relevance: each with its interval
    screenshot(browser, "experiment")


def test_monitors_with_their_state_and_firings(seeded: Seeded, browser: webdriver.Chrome) -> None:
    sign_in(browser, seeded.url, seeded.key_a)
    browser.get(f"{seeded.url}/monitors")
    rows = {r.get_attribute("data-monitor-id"): r for r in
            browser.find_elements(By.CSS_SELECTOR, "#monitors-table tr[data-monitor-id]")}
    assert set(rows) == {str(seeded.monitor_firing), str(seeded.monitor_quiet)}
    firing, quiet = rows[str(seeded.monitor_firing)], rows[str(seeded.monitor_quiet)]
    assert "error_rate" in firing.text and "> 0.05" in firing.text and "firing (1 of 1 group(s))" in firing.text
    assert "latency p95" in quiet.text and "pending" in quiet.text
    [fired] = browser.find_elements(By.CSS_SELECTOR, f"#monitor-{seeded.monitor_firing} tr[data-firing-id]")
    assert "0.125" in fired.text and "firing" in fired.text and "app_id=support-bot" in fired.text
    screenshot(browser, "monitors")


def _ledger_cost(database_url: str, tenant: str, group: str) -> dict[str, float]:
    """The ledger's own sums per model, user or tag this month (a connection of its own: the test is synchronous)."""
    async def read() -> dict[str, float]:
        conn = await asyncpg.connect(database_url)
        try:
            sql = ("SELECT model_key AS g, sum(cost_total)::float8 AS c FROM usage_ledger WHERE tenant_id = $1 "
                   "AND occurred_at >= $2 GROUP BY 1" if group == "model" else
                   "SELECT coalesce(user_id, '(none)') AS g, sum(cost_total)::float8 AS c FROM usage_ledger "
                   "WHERE tenant_id = $1 AND occurred_at >= $2 GROUP BY 1" if group == "user" else
                   "SELECT t.tag AS g, sum(cost_total)::float8 AS c FROM usage_ledger, unnest(tags) t(tag) "
                   "WHERE tenant_id = $1 AND occurred_at >= $2 GROUP BY 1")
            return {r["g"]: r["c"] for r in await conn.fetch(sql, tenant, NOW.replace(day=1, hour=0))}
        finally:
            await conn.close()

    return asyncio.run(read())


def test_costs_by_model_and_tag_and_the_csv_a_person_downloads(seeded: Seeded, browser: webdriver.Chrome,
                                                               tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sign_in(browser, seeded.url, seeded.key_a)
    browser.get(f"{seeded.url}/costs")
    wait_for(browser, lambda d: d.execute_script(SERIES_PIXELS, "#costs-chart") > 50, "the cost chart drew no bars")
    shown = {r.find_elements(By.TAG_NAME, "td")[0].text: float(r.find_elements(By.TAG_NAME, "td")[1].text)
             for r in browser.find_elements(By.CSS_SELECTOR, "#costs-table tbody tr")}
    expected = _ledger_cost(seeded.database_url, seeded.tenant_a, "model")
    assert shown == {k: pytest.approx(v, abs=1e-4) for k, v in expected.items()}
    screenshot(browser, "costs")

    browser.get(f"{seeded.url}/costs?group=tag")
    tags = {r.find_elements(By.TAG_NAME, "td")[0].text for r in browser.find_elements(By.CSS_SELECTOR,
                                                                                       "#costs-table tbody tr")}
    assert {FORMULA_TAG, "vip", "experiment"} <= tags
    from llmops_console.routes import costs

    answers: list[int] = []  # the rows of each answer billing gives the page
    usage_page = costs.usage.usage_page

    async def counted(*args: Any, **kwargs: Any) -> dict[str, Any]:
        page = await usage_page(*args, **kwargs)
        answers.append(len(page["rows"]))
        return page

    monkeypatch.setattr(costs.usage, "usage_page", counted)
    browser.get(f"{seeded.url}/costs?group=user")
    monkeypatch.undo()
    assert answers and max(answers) <= costs.TABLE_ROWS  # billing kept the 100 largest: 242 users, 100 sent
    users = browser.find_elements(By.CSS_SELECTOR, "#costs-table tbody tr")  # the 100 largest, then the others
    assert len(users) == 101 and "ursula" not in text(browser)  # 240 experiment users, 2 others: pseudonyms
    assert browser.find_element(By.ID, "costs-rest").text.startswith("142 more users")
    assert not browser.find_elements(By.ID, "chart-all")
    by_user = sorted(_ledger_cost(seeded.database_url, seeded.tenant_a, "user").items(), key=lambda kv: (-kv[1], kv[0]))
    shown = {r.find_elements(By.TAG_NAME, "td")[0].text: float(r.find_elements(By.TAG_NAME, "td")[1].text)
             for r in users[:100]}
    assert shown == {k: pytest.approx(v, abs=1e-4) for k, v in by_user[:100]}
    rest = browser.find_element(By.ID, "costs-rest").find_elements(By.TAG_NAME, "td")[1].text
    assert float(rest) == pytest.approx(sum(v for _, v in by_user[100:]), abs=1e-4)
    assert float(browser.find_element(By.ID, "costs-total").text) == pytest.approx(sum(v for _, v in by_user),
                                                                                  abs=1e-4)
    chart = json.loads(browser.find_element(By.ID, "costs-data").get_attribute("textContent") or "{}")
    assert "(others)" in chart["labels"] and len(chart["labels"]) == costs.CHART_SERIES + 1  # the 8 largest
    assert set(chart["labels"]) - {"(others)"} == {name for name, _ in by_user[:costs.CHART_SERIES]}
    assert set(chart["labels"]) - {"(others)"} == {r.find_elements(By.TAG_NAME, "td")[0].text  # the table's first
                                                   for r in users[:costs.CHART_SERIES]}
    assert sum(v for series in chart["data"][1:] for v in series if v is not None) == pytest.approx(
        sum(v for _, v in by_user), abs=1e-6)

    monkeypatch.setattr(costs, "PAGE_ROWS", 10)  # more users than the chart takes: still every total
    browser.get(f"{seeded.url}/costs?group=user")
    wait_for(browser, lambda d: d.execute_script(SERIES_PIXELS, "#costs-chart") > 50, "the daily total drew nothing")
    assert browser.find_elements(By.ID, "chart-all")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#costs-table tbody tr")) == 101
    assert float(browser.find_element(By.ID, "costs-total").text) == pytest.approx(sum(expected.values()), abs=1e-4)
    monkeypatch.undo()

    browser.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(tmp_path)})
    browser.get(f"{seeded.url}/costs?group=tag")
    browser.find_element(By.ID, "csv-link").click()
    target = tmp_path / f"costs-by-tag-{NOW.strftime('%Y-%m')}.csv"
    deadline = time.monotonic() + 20
    while not target.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert target.exists(), list(tmp_path.iterdir())
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    sums: dict[str, float] = {}
    for row in rows:
        sums[row["tag"]] = sums.get(row["tag"], 0.0) + float(row["cost_total"])
    ledger = _ledger_cost(seeded.database_url, seeded.tenant_a, "tag")
    assert sums.pop("'" + FORMULA_TAG) == pytest.approx(ledger.pop(FORMULA_TAG))  # quoted: not a formula
    assert sums.pop("") > 0  # the untagged call
    assert sums == pytest.approx(ledger)
    assert all(r["bucket"].startswith(NOW.strftime("%Y-%m")) for r in rows)

    session = {"llmops_console": browser.get_cookie("llmops_console")["value"]}
    with httpx.Client(base_url=seeded.url, cookies=session) as client:
        answer = client.get("/costs.csv", params={"group": "model"})
        assert answer.headers["content-type"] == "text/csv; charset=utf-8"
        assert answer.headers["content-disposition"] == (
            f'attachment; filename="costs-by-model-{NOW.strftime("%Y-%m")}.csv"')
        bad = client.get("/costs.csv", params={"group": "colour"})
        assert bad.status_code == 422 and "group" in bad.text


def test_another_tenants_key_sees_none_of_it(seeded: Seeded, browser: webdriver.Chrome) -> None:
    sign_in(browser, seeded.url, seeded.key_b)
    for path in ("/prompts", "/monitors", "/costs", "/costs?group=tag"):
        browser.get(seeded.url + path)
        page = text(browser)
        for word in ("answer", "support errors", "gpt-4o", "vip", "ursula"):
            assert word not in page, (path, word)
        assert not browser.find_elements(By.CSS_SELECTOR, "tr[data-prompt], tr[data-experiment], tr[data-monitor-id]")
    for path in ("/prompts/answer", "/prompts/answer/diff?from=1&to=2", f"/experiments/len?{WINDOW}"):
        browser.get(seeded.url + path)
        assert browser.find_element(By.TAG_NAME, "h1").text == "404", path
    session = {"llmops_console": browser.get_cookie("llmops_console")["value"]}
    with httpx.Client(base_url=seeded.url, cookies=session) as client:
        assert client.get("/costs.csv", params={"group": "tag"}).text.strip().count("\n") == 0  # the header only
