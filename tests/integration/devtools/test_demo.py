"""`llmops demo` sets up its tenants' keys, and its evaluator once (through the evaluator's own service),
however often it runs."""

from __future__ import annotations

from typing import Any

import pytest

from llmops_devtools.demo import TENANTS, _prepare_tenants
from llmops_shared.settings import CommonSettings

pytestmark = pytest.mark.integration


async def test_the_demo_sets_up_keys_each_run_and_its_evaluator_once(stack: CommonSettings, pg_pool: Any) -> None:
    for _ in range(2):  # the second run finds the evaluator and keeps it
        ingest_keys, read_keys = await _prepare_tenants(stack, "http://127.0.0.1:8099/v1")
        assert set(ingest_keys) == set(read_keys) == set(TENANTS)
    rows = await pg_pool.fetch("SELECT tenant_id, enabled FROM evaluators WHERE evaluator_id = 'demo-support-quality'")
    assert [(r["tenant_id"], r["enabled"]) for r in rows] == [("acme", True)]
