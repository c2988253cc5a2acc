"""Fixtures of the SDK's unit tests: a local receiver standing in for the ingest API, and recorders
that are closed (briefly) at the end of each test so no sender thread outlives it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from llmops_sdk import Recorder
from tests.unit.sdk.receiver import Receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


@pytest.fixture
def make_recorder() -> Iterator[Callable[..., Recorder]]:
    made: list[Recorder] = []

    def make(url: str, **options: Any) -> Recorder:
        settings: dict[str, Any] = {"app_id": "sdk-tests", "api_key": "test-key", "environment": "test",
                                    "flush_interval_s": 0.05, "backoff_base_s": 0.01, "backoff_max_s": 0.2,
                                    "request_timeout_s": 2.0, **options}
        recorder = Recorder(endpoint=url, **settings)
        made.append(recorder)
        return recorder

    yield make
    for recorder in made:
        recorder.close(timeout=0.5)
