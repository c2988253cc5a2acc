"""The module-level API: one default recorder for the process, set up by `configure()`.

`llmops_sdk.record()`, spans and `instrument_openai()` use it when they are given no recorder; without
`configure()` they record nothing.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from llmops_sdk.recorder import Recorder

_default: Recorder | None = None
_default_lock = threading.Lock()


def configure(**options: Any) -> Recorder:
    """Set up the default recorder used by `llmops_sdk.record()`, spans and `instrument_openai()`.

    Options are `RecorderConfig`'s; `endpoint`, `api_key`, `app_id`, `environment`, `kafka_bootstrap`
    and `tenant_id` default to `LLMOPS_ENDPOINT`, `LLMOPS_API_KEY`, `LLMOPS_APP_ID`,
    `LLMOPS_ENVIRONMENT`, `LLMOPS_KAFKA_BOOTSTRAP` and `LLMOPS_TENANT_ID`. A previous default recorder
    is closed (flushing what it holds).
    """
    global _default
    env = {"endpoint": "LLMOPS_ENDPOINT", "api_key": "LLMOPS_API_KEY", "app_id": "LLMOPS_APP_ID",
           "environment": "LLMOPS_ENVIRONMENT", "kafka_bootstrap": "LLMOPS_KAFKA_BOOTSTRAP",
           "tenant_id": "LLMOPS_TENANT_ID"}
    for name, var in env.items():
        if name not in options and os.environ.get(var):
            options[name] = os.environ[var]
    if "app_id" not in options:  # a ValueError, as every other bad configuration (not a TypeError)
        raise ValueError("app_id is required (or LLMOPS_APP_ID)")
    recorder = Recorder(**options)
    with _default_lock:
        previous, _default = _default, recorder
    if previous is not None:
        previous.close(previous.config.exit_timeout_s)
    return recorder


def default_recorder() -> Recorder | None:
    """The recorder set up by `configure()`, if any."""
    return _default


def record(interaction: Any = None, /, **fields: Any) -> str | None:
    """`Recorder.record` on the default recorder; without `configure()` it records nothing."""
    recorder = _default
    if recorder is None:
        return None
    return recorder.record(interaction, **fields)


def flush(timeout: float | None = 5.0) -> bool:
    recorder = _default
    return True if recorder is None else recorder.flush(timeout)


def close(timeout: float | None = 5.0) -> bool:
    global _default
    with _default_lock:
        recorder, _default = _default, None
    return True if recorder is None else recorder.close(timeout)
