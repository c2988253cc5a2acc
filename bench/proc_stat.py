"""A process's name and CPU time from Linux `/proc`, for the benches that count the CPU of processes they did not
run in (per thread: `guardrails_pipeline.cpu_seconds`)."""

from __future__ import annotations

import os


def process_stat(pid: int) -> tuple[str, float]:
    """The process's name (`comm`) and CPU seconds so far, user + system, all its threads (exited ones included).
    FileNotFoundError or ProcessLookupError when it has ended."""
    with open(f"/proc/{pid}/stat") as f:
        head, tail = f.read().rsplit(")", 1)  # the name may hold ")" and spaces: the fields follow the last ")"
    fields = tail.split()
    return head.split("(", 1)[1], (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
