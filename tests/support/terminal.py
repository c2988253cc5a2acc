"""Run a command under a pseudo-terminal (what a person at a shell sees) or through pipes (what a script sees)."""

from __future__ import annotations

import fcntl
import os
import select
import struct
import subprocess
import sys
import termios
from collections.abc import Mapping, Sequence

LLMOPS = [sys.executable, "-m", "llmops_shared.cli"]


def terminal_env(extra: Mapping[str, str] = ()) -> dict[str, str]:  # type: ignore[assignment]
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "COLUMNS", "LINES")}
    return {**env, "TERM": "xterm-256color", **dict(extra)}


def run_in_pty(argv: Sequence[str], env: Mapping[str, str], timeout_s: float = 120) -> tuple[int, str]:
    """Run `argv` with stdin, stdout and stderr on a pseudo-terminal 160 columns wide; its exit code and output."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 160, 0, 0))
    proc = subprocess.Popen(list(argv), stdin=slave, stdout=slave, stderr=slave, env=dict(env), close_fds=True)
    os.close(slave)
    chunks: list[bytes] = []
    try:
        while True:
            ready, _, _ = select.select([master], [], [], timeout_s)
            if not ready:
                proc.kill()
                raise TimeoutError(f"{argv} printed nothing for {timeout_s} s")
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        code = proc.wait(timeout=timeout_s)
    finally:
        os.close(master)
    return code, b"".join(chunks).decode("utf-8", errors="replace")


def run_piped(argv: Sequence[str], env: Mapping[str, str], timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), env=dict(env), capture_output=True, text=True, timeout=timeout_s, check=False)
