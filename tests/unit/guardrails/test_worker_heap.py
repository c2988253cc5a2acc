"""The stream worker's garbage collector: start-up objects frozen, young collections rarer than the default."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from llmops_guardrails import worker


def test_the_worker_freezes_its_start_up_objects_and_sets_its_collector_thresholds(
        monkeypatch: pytest.MonkeyPatch) -> None:
    frozen: list[Any] = []
    started: list[Any] = []

    async def run_worker(settings: Any, factory: Any) -> int:
        started.append(settings)
        return 0

    monkeypatch.setattr(worker, "freeze_long_lived", lambda thresholds=None: frozen.append(thresholds) or 0)
    monkeypatch.setattr("llmops_shared.worker.run_worker", run_worker)
    monkeypatch.setattr("llmops_guardrails.logs.configure_service_logging", lambda *args, **kwargs: None)
    monkeypatch.setattr(worker.PolicyEngine, "warm_up", lambda self, policy: None)
    assert asyncio.run(worker.main()) == 0
    assert len(started) == 1
    assert frozen == [worker.GC_THRESHOLD]
    young, middle, old = worker.GC_THRESHOLD
    assert young >= 10_000 and middle >= 10 and old >= 10  # never more often than Python's default (700, 10, 10)
