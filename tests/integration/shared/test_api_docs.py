"""Each service's `/docs` and `/redoc`, opened in a real browser (Debian's Chromium, headless) that can reach
nothing but this machine: the pages render and list the service's operations."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from llmops_shared.settings import CommonSettings
from tests.support.servers import serve

pytestmark = pytest.mark.integration


def _apps(stack: CommonSettings) -> list[tuple[str, Any, str]]:
    from llmops_billing.api import create_app as billing
    from llmops_billing.settings import BillingSettings
    from llmops_evaluator.api import create_app as evaluator
    from llmops_evaluator.settings import EvaluatorSettings
    from llmops_guardrails.api import create_app as guardrails
    from llmops_guardrails.settings import GuardrailsSettings
    from llmops_ingest.api import create_app as ingest
    from llmops_ingest.settings import IngestSettings
    from llmops_monitors.api import create_app as monitors
    from llmops_monitors.settings import MonitorsSettings
    from llmops_prompts.api import create_app as prompts
    from llmops_prompts.settings import PromptsSettings
    from llmops_traces.api import create_app as traces
    from llmops_traces.settings import TracesSettings

    common = stack.model_dump()
    return [("ingest", ingest(IngestSettings(**common)), "/v1/interactions"),
            ("guardrails", guardrails(GuardrailsSettings(**common)), "/v1/check"),
            ("billing", billing(BillingSettings(**common)), "/v1/budgets"),
            ("evaluator", evaluator(EvaluatorSettings(**common)), "/v1/evaluators"),
            ("traces", traces(TracesSettings(**common)), "/v1/spans"),
            ("monitors", monitors(MonitorsSettings(**common)), "/v1/monitors"),
            ("prompts", prompts(PromptsSettings(**common)), "/v1/prompts")]


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                # no network but this machine: a page that needs a CDN or a web font cannot get it
                "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(executable_path="/usr/bin/chromedriver"))
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver: webdriver.Chrome, found: Callable[[webdriver.Chrome], bool], what: str) -> None:
    WebDriverWait(driver, 30, poll_frequency=0.1).until(found, message=what)


def test_every_service_reference_page_lists_its_operations_offline(stack: CommonSettings,
                                                                   browser: webdriver.Chrome) -> None:
    for name, app, operation in _apps(stack):
        with serve(app) as url:
            browser.get(f"{url}/docs")
            wait_for(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, ".opblock")) > 0,
                     f"{name}: Swagger UI listed no operation")
            listed = browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")
            paths = {e.text.replace("\u200b", "") for e in listed}
            assert operation in paths, (name, sorted(paths))

            browser.get(f"{url}/redoc")
            wait_for(browser, lambda d, op=operation: op in d.find_element(By.TAG_NAME, "body").text,
                     f"{name}: ReDoc did not show {operation}")
