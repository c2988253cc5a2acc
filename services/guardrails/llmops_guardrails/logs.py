"""Logging of the guardrails processes: the suite's JSON lines, with presidio kept to errors.

presidio-analyzer logs every recognizer it loads (info) and the timing of every regex on every text
(debug); neither is useful in production, and a library's debug output is not something to trust with
prompt text. The canary test runs the processes at DEBUG and checks their logs.
"""

from __future__ import annotations

import logging

from llmops_shared.logging import configure_logging


def configure_service_logging(service: str, level: str) -> None:
    configure_logging(service, level)
    root = logging.getLogger()
    # Errors only: at start-up presidio warns once per recognizer of a language we do not load.
    logging.getLogger("presidio-analyzer").setLevel(max(logging.ERROR, root.level))
