"""A Redis server of our own, from the system's `redis-server`."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from llmops_devtools.stack.processes import StackError, port_open, read_pid, stop_pid, tail, wait_for


@dataclass(frozen=True)
class RedisServer:
    home: Path  # <stack>/redis
    port: int = 6379

    @property
    def pid_file(self) -> Path:
        return self.home / "redis.pid"

    @property
    def log_file(self) -> Path:
        return self.home / "redis.log"

    def running(self) -> bool:
        return read_pid(self.pid_file) is not None

    def start(self) -> bool:
        if self.running():
            return False
        if port_open(self.port):
            raise StackError(f"port {self.port} is taken by a process this stack did not start")
        binary = shutil.which("redis-server")
        if binary is None:
            raise StackError("Redis is not installed: run deploy/local/install-system-packages.sh")
        self.home.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.home),
             "--daemonize", "yes", "--pidfile", str(self.pid_file), "--logfile", str(self.log_file),
             "--appendonly", "yes", "--appendfsync", "everysec", "--save", ""],
            check=True, capture_output=True,
        )
        if not wait_for(lambda: self.running() and port_open(self.port), 15):
            raise StackError(f"Redis did not start:\n{tail(self.log_file)}")
        return True

    def stop(self) -> bool:
        return stop_pid(self.pid_file, timeout_s=15)
