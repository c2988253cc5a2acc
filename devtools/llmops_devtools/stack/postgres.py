"""A PostgreSQL server of our own (initdb + pg_ctl from the system's packages), trust auth on loopback."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from llmops_devtools.stack.processes import StackError, port_open, tail


def _bin_dir() -> Path:
    on_path = shutil.which("pg_ctl")
    if on_path:
        return Path(on_path).parent
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    if not found:
        raise StackError("PostgreSQL is not installed: run deploy/local/install-system-packages.sh")
    return Path(found[-1]).parent


@dataclass(frozen=True)
class PostgresServer:
    home: Path  # <stack>/postgres
    port: int = 5432

    @property
    def data(self) -> Path:
        return self.home / "data"

    @property
    def log_file(self) -> Path:
        return self.home / "postgres.log"

    def _as_owner(self, argv: list[str]) -> list[str]:
        # initdb and postgres refuse to run as root; as root we run them as the `postgres` user.
        if os.geteuid() != 0:
            return argv
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            subprocess.run(["useradd", "--system", "--no-create-home", "postgres"], check=True)
        return ["runuser", "-u", "postgres", "--", *argv]

    def _chown(self, path: Path) -> None:
        if os.geteuid() == 0:
            shutil.chown(path, "postgres", "postgres")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists() and self._pg_ctl_status()

    def _pg_ctl_status(self) -> bool:
        result = subprocess.run(self._as_owner([str(_bin_dir() / "pg_ctl"), "status", "-D", str(self.data)]),
                                capture_output=True, check=False)
        return result.returncode == 0

    def start(self) -> bool:
        if self.running():
            return False
        if port_open(self.port):
            raise StackError(f"port {self.port} is taken by a process this stack did not start")
        self.home.mkdir(parents=True, exist_ok=True)
        self._chown(self.home)
        if not (self.data / "PG_VERSION").exists():
            subprocess.run(
                self._as_owner([str(_bin_dir() / "initdb"), "-D", str(self.data), "-U", "postgres",
                                "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8"]),
                check=True, capture_output=True,
            )
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.home} -c max_connections=200 "
                   "-c shared_buffers=256MB -c synchronous_commit=on")
        result = subprocess.run(
            self._as_owner([str(_bin_dir() / "pg_ctl"), "start", "-w", "-t", "60", "-D", str(self.data),
                            "-l", str(self.log_file), "-o", options]),
            capture_output=True, text=True, check=False,
        )
        if result.returncode != 0:
            raise StackError(f"Postgres did not start:\n{result.stderr}\n{tail(self.log_file)}")
        return True

    def stop(self, mode: str = "fast") -> bool:
        """`pg_ctl stop -m <mode>`: `fast` (the default) or `immediate` (no checkpoint, crash recovery at the
        next start: what the chaos harness uses to stop Postgres abruptly)."""
        if not self.running():
            return False
        subprocess.run(self._as_owner([str(_bin_dir() / "pg_ctl"), "stop", "-m", mode, "-w", "-D",
                                       str(self.data)]), capture_output=True, check=False)
        return True
