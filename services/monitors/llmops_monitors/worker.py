"""`python -m llmops_monitors.worker` (or `llmops run monitors-worker`): the faust worker (`app.build_app`)."""

from __future__ import annotations

import faust

from llmops_monitors.app import build_app
from llmops_monitors.settings import MonitorsSettings


def main() -> None:
    from llmops_shared.logging import configure_logging

    settings = MonitorsSettings()
    app, _runtime = build_app(settings)
    configure_logging("monitors-worker", settings.log_level)
    worker = faust.Worker(app, loglevel=settings.log_level.lower(), quiet=True)
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
