"""The monitors worker's garbage collector: what start-up made frozen once faust's worker has started."""

from __future__ import annotations

import asyncio
from typing import Any

import faust
import pytest

from llmops_monitors import worker


def test_once_started_the_worker_freezes_start_up_s_objects_with_rarer_collections(
        monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, Any]] = []

    async def started(self: faust.Worker) -> None:
        calls.append(("faust started", None))

    monkeypatch.setattr(faust.Worker, "on_startup_finished", started)
    monkeypatch.setattr(worker, "freeze_long_lived", lambda thresholds=None: calls.append(("freeze", thresholds)) or 0)
    asyncio.run(worker.Worker.on_startup_finished(object.__new__(worker.Worker)))
    assert calls == [("faust started", None), ("freeze", worker.GC_THRESHOLD)]  # agents and tables exist by then
    young, middle, old = worker.GC_THRESHOLD
    assert young >= 10_000 and middle >= 10 and old >= 10  # never more often than Python's default (700, 10, 10)
