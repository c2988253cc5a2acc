"""The ingest API process's garbage collector: start-up objects frozen, collections rarer than the default."""

from __future__ import annotations

from typing import Any

import pytest

from llmops_ingest import api


def test_main_freezes_what_start_up_made_and_sets_the_collector_thresholds_before_serving(
        monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, Any]] = []
    monkeypatch.setattr(api, "configure_logging", lambda *args, **kwargs: None)
    monkeypatch.setattr(api, "freeze_long_lived", lambda thresholds=None: calls.append(("freeze", thresholds)) or 0)
    monkeypatch.setattr(api, "run_api", lambda app, **kwargs: calls.append(("serve", app)))
    api.main()
    assert [name for name, _ in calls] == ["freeze", "serve"]  # the app exists when its objects are frozen
    young, middle, old = calls[0][1]
    assert (young, middle, old) == api.IngestSettings().gc_thresholds
    assert young >= 10_000 and middle >= 10 and old >= 10  # never more often than Python's default (700, 10, 10)
