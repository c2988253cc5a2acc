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


def test_a_full_batch_of_name_dense_events_never_starts_a_young_collection(engine: Any, policy: Any) -> None:
    """What a batch of `batch_max_events` name-dense events keeps alive while the worker handles it (decoded events,
    their scans, findings rows and clean events: ~96,000 objects tracked by the collector for 500 events) stays under
    the young generation's threshold: a young collection would walk all of it, to free nothing (bench/RESULTS.md,
    `guard22`: ~25 ms a collection, ~56 µs an event with (50,000, 20, 20))."""
    import gc
    import random
    import uuid

    import orjson

    from llmops_guardrails import screening
    from llmops_guardrails.settings import GuardrailsSettings
    from llmops_shared.contract import decode_interaction
    from tests.unit.guardrails.corpus import corpus

    settings = GuardrailsSettings()
    texts = corpus()[:1500]  # the PII set's
    rng = random.Random(22)

    def joined(least: int) -> str:  # as the pipeline bench's name-dense events: corpus texts drawn until long enough
        parts: list[str] = []
        while sum(len(p) + 1 for p in parts) < least:
            parts.append(rng.choice(texts))
        return " ".join(parts)

    payloads = [orjson.dumps({
        "event_id": str(uuid.UUID(int=i)), "occurred_at": "2026-12-05T08:00:00+00:00", "tenant_id": "t",
        "app_id": f"app-{i % 10}", "trace_id": f"tr-{i}", "span_id": "s",
        "input": [{"role": "user", "content": joined(700)}], "output": joined(300)})
        for i in range(settings.batch_max_events)]
    handler = worker.GuardrailsWorker(settings, engine=engine)
    gc.collect()
    gc.freeze()
    try:
        before = len(gc.get_objects())
        events = [decode_interaction(p) for p in payloads]
        scanned = handler.scan(events, [policy] * len(events), ["t1"] * len(events))
        rows = [row for s in scanned for row in screening.finding_rows(s.event, s.scan, s.policy_version)]
        clean = [handler.clean(s) for s in scanned]
        alive = len(gc.get_objects()) - before
    finally:
        gc.unfreeze()
    assert len(rows) > 10 * len(clean) == 10 * settings.batch_max_events  # name-dense: ~17 findings an event
    young = worker.GC_THRESHOLD[0]
    assert young > alive > 50_000
