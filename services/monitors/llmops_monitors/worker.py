"""`python -m llmops_monitors.worker` (or `llmops run monitors-worker`): the faust worker (`app.build_app`)."""

from __future__ import annotations

import logging
from typing import Any

import faust

from llmops_monitors.app import build_app
from llmops_monitors.settings import MonitorsSettings
from llmops_shared.heap import freeze_long_lived

GC_THRESHOLD = (100_000, 20, 20)
"""The process's garbage collector thresholds (Python's default: 700, 10, 10), set once the worker has started, when
what is alive then (modules, faust's app, agents and tables) is frozen out of the collector's sight: with the
default, a full collection walked it all again every ~2 s at full rate, ~75 ms each (bench/RESULTS.md)."""


class Worker(faust.Worker):
    """faust's worker, logging as every process of the suite does: JSON lines on stderr."""

    def __init__(self, app: faust.App, settings: MonitorsSettings, **kwargs: Any) -> None:
        super().__init__(app, loglevel=settings.log_level.lower(), quiet=True, **kwargs)
        self.llmops_log_level = settings.log_level

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        from llmops_shared.logging import configure_logging

        configure_logging("monitors-worker", self.llmops_log_level)

    async def on_startup_finished(self) -> None:
        await super().on_startup_finished()
        freeze_long_lived(GC_THRESHOLD)


def main() -> None:
    settings = MonitorsSettings()
    app, _runtime = build_app(settings)
    Worker(app, settings).execute_from_commandline()


if __name__ == "__main__":
    main()
