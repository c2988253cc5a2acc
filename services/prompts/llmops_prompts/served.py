"""What `GET /v1/prompts/{name}` serves, resolved once and kept in the process until the configuration changes.

A prompt is read by every app process on a cache miss or refresh, far more often than it changes. The API
keeps each resolved answer (the version behind a label, with the label's running experiment) in memory,
tagged with the `ConfigWatcher` stamp of the prompt tables: a version, a label move or an experiment
change anywhere moves the stamp, so the next request resolves again (in force within a second in every
process). While the watcher is not connected, an answer is kept `fallback_s` at most.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from llmops_shared.config_changes import ConfigWatcher

TABLES = ("prompt_versions", "prompt_labels", "prompt_experiments")
Key = tuple[str, str, str]  # tenant, name, "label:<label>" or "version:<n>"


class ServedCache:
    def __init__(self, watcher: ConfigWatcher | None, *, fallback_s: float, max_entries: int = 10_000,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._watcher = watcher
        self._fallback_s = fallback_s
        self._max_entries = max_entries
        self._monotonic = monotonic
        self._entries: dict[Key, tuple[tuple[int, ...], float, dict[str, Any] | None]] = {}

    def _stamp(self) -> tuple[int, ...] | None:
        if self._watcher is None or not self._watcher.connected:
            return None
        return self._watcher.stamp(TABLES)

    async def get(self, key: Key, load: Callable[[], Awaitable[dict[str, Any] | None]]) -> dict[str, Any] | None:
        stamp = self._stamp()
        now = self._monotonic()
        hit = self._entries.get(key)
        if hit is not None:
            hit_stamp, loaded_at, value = hit
            if stamp is not None and hit_stamp == stamp:
                return value
            if stamp is None and now - loaded_at < self._fallback_s:
                return value
        value = await load()
        if len(self._entries) >= self._max_entries:
            self._entries.clear()
        self._entries[key] = (stamp or (), now, value)
        return value
