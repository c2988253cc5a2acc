"""The local stack's supervisor: restarts a service that dies, counts it, gives up loudly on a crash loop.

`llmops up` starts one supervisor process (`python -m llmops_devtools.stack.supervisor --home DIR NAME...`,
pid file `supervisor.pid` in the services folder) and the supervisor starts the named services as its
children (each with its pid file and log, as before). When a child exits without being asked to, the
supervisor starts it again after a backoff (`RestartPolicy`: 0.5 s doubling up to 30 s, by the crashes
within the last minute) and counts the restart; the fifth crash within a minute makes it give up on that
service: it stays down, marked `failed`, and the supervisor's log says so in capitals. `llmops up` again
(SIGHUP to a running supervisor) starts the services it gave up on afresh.

What it knows is in `supervisor.json` next to the pid files (`read_state`), which `llmops status` shows:
each service's state (`running`, `restarting`, `failed`, `stopped`), pid, restarts and last exit code.
SIGTERM (`llmops down`) stops the children, in the reverse order of the command line, then the
supervisor. The supervisor itself is not supervised: a deployment uses systemd or Kubernetes instead
(docs/operations.md).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from llmops_shared.services import ServiceProcess

log = logging.getLogger("llmops.supervisor")

STATE_FILE = "supervisor.json"
PID_FILE = "supervisor.pid"
LOG_FILE = "supervisor.log"


@dataclass(frozen=True)
class RestartPolicy:
    """When to start a crashed service again: `backoff_base_s` doubling per crash within `window_s`, up to
    `backoff_max_s`; never again (give up) once `max_crashes` happened within `window_s`."""

    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    max_crashes: int = 5
    window_s: float = 60.0

    def after_crash(self, crashes: Sequence[float], now: float) -> float | None:
        """Seconds to wait before the next start, given the times of the service's crashes (this one
        included); None: give up."""
        recent = [t for t in crashes if now - t < self.window_s]
        if len(recent) >= self.max_crashes:
            return None
        return min(self.backoff_max_s, self.backoff_base_s * 2 ** max(len(recent) - 1, 0))

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RestartPolicy:
        """`LLMOPS_SUPERVISOR_BACKOFF_BASE_S`, `_BACKOFF_MAX_S`, `_MAX_CRASHES`, `_WINDOW_S`; the defaults else."""
        def number(name: str, default: float) -> float:
            return float(env.get(f"LLMOPS_SUPERVISOR_{name}", default))

        d = cls()
        return cls(backoff_base_s=number("BACKOFF_BASE_S", d.backoff_base_s),
                   backoff_max_s=number("BACKOFF_MAX_S", d.backoff_max_s),
                   max_crashes=int(number("MAX_CRASHES", d.max_crashes)), window_s=number("WINDOW_S", d.window_s))


@dataclass
class Child:
    service: ServiceProcess
    proc: subprocess.Popen[bytes] | None = None
    state: str = "starting"  # running | restarting | failed | stopped
    restarts: int = 0
    crashes: list[float] = field(default_factory=list)
    start_at: float = 0.0  # when `restarting`: the monotonic time of the next start
    last_exit: int | None = None

    def describe(self, home: Path) -> dict[str, Any]:
        return {"state": self.state, "pid": self.proc.pid if self.proc and self.state == "running" else None,
                "restarts": self.restarts, "last_exit": self.last_exit,
                "log": str(home / f"{self.service.name}.log")}


class Supervisor:
    def __init__(self, home: Path, services: Sequence[ServiceProcess], policy: RestartPolicy,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.home = home
        self.children = [Child(s) for s in services]
        self.policy = policy
        self.clock = clock
        self.stopping = False
        self.revive = False
        self.revivals = 0  # SIGHUPs handled: `llmops up` waits for its own to be

    def run(self, poll_s: float = 0.1) -> None:
        for child in self.children:
            self._start(child)
        self._write()
        while not self.stopping:
            if self.revive:
                self._revive()
            changed = any([self._check(child) for child in self.children])
            if changed:
                self._write()
            time.sleep(poll_s)
        self._stop_all()

    def _start(self, child: Child) -> None:
        name = child.service.name
        with open(self.home / f"{name}.log", "ab") as out:
            child.proc = subprocess.Popen([sys.executable, "-m", child.service.module], stdout=out,
                                          stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                          start_new_session=True)
        (self.home / f"{name}.pid").write_text(str(child.proc.pid))
        child.state = "running"

    def _check(self, child: Child) -> bool:
        """One look at a child: record a crash, start it again when its backoff is over. True if it changed."""
        now = self.clock()
        if child.state == "running" and child.proc is not None and child.proc.poll() is not None:
            child.last_exit = child.proc.returncode
            child.crashes = [t for t in child.crashes if now - t < self.policy.window_s] + [now]
            wait = self.policy.after_crash(child.crashes, now)
            name = child.service.name
            if wait is None:
                child.state = "failed"
                (self.home / f"{name}.pid").unlink(missing_ok=True)
                log.error("%s: GAVE UP after %d crashes within %g s (last exit code %s); it stays down until "
                          "`llmops up`; see %s", name, len(child.crashes), self.policy.window_s, child.last_exit,
                          self.home / f"{name}.log")
            else:
                child.state, child.start_at = "restarting", now + wait
                log.warning("%s: exited with code %s; restarting in %.1f s (restart %d)", name, child.last_exit,
                            wait, child.restarts + 1)
            return True
        if child.state == "restarting" and now >= child.start_at:
            child.restarts += 1
            self._start(child)
            log.warning("%s: restarted (pid %d, restart %d)", child.service.name, child.proc.pid,  # type: ignore[union-attr]
                        child.restarts)
            return True
        return False

    def _revive(self) -> None:
        """`llmops up` again: the services given up on start afresh (their crash count forgotten)."""
        self.revive = False
        self.revivals += 1
        for child in self.children:
            if child.state == "failed":
                child.crashes.clear()
                child.restarts += 1
                self._start(child)
                log.warning("%s: started again by `llmops up` (restart %d)", child.service.name, child.restarts)
        self._write()

    def _stop_all(self, timeout_s: float = 20) -> None:
        for child in reversed(self.children):
            proc = child.proc
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout_s)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            (self.home / f"{child.service.name}.pid").unlink(missing_ok=True)
            child.state = "stopped"
            log.info("%s: stopped", child.service.name)
        self._write()

    def _write(self) -> None:
        state = {"pid": os.getpid(), "policy": vars(self.policy), "revivals": self.revivals,
                 "services": {c.service.name: c.describe(self.home) for c in self.children}}
        tmp = self.home / f"{STATE_FILE}.tmp"
        tmp.write_text(json.dumps(state, indent=1))
        tmp.replace(self.home / STATE_FILE)


def read_state(home: Path) -> dict[str, Any] | None:
    """What the supervisor of `home` last wrote, or None when there is none."""
    with contextlib.suppress(FileNotFoundError, ValueError):
        return dict(json.loads((home / STATE_FILE).read_text()))
    return None


def main(argv: Sequence[str] | None = None) -> int:
    from llmops_devtools.stack.services import PROCESSES

    parser = argparse.ArgumentParser(prog="python -m llmops_devtools.stack.supervisor")
    parser.add_argument("--home", type=Path, required=True, help="the services folder (pid files, logs)")
    parser.add_argument("services", nargs="+", help="names of the processes to run (`llmops status` shows them)")
    args = parser.parse_args(argv)
    known = {p.name: p for p in PROCESSES}
    unknown = [n for n in args.services if n not in known]
    if unknown:
        parser.error(f"unknown service(s): {', '.join(unknown)}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    supervisor = Supervisor(args.home, [known[n] for n in args.services], RestartPolicy.from_env(os.environ))

    def stop(_signum: int, _frame: FrameType | None) -> None:
        supervisor.stopping = True

    def revive(_signum: int, _frame: FrameType | None) -> None:
        supervisor.revive = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, revive)
    log.info("supervising %s (pid %d)", ", ".join(args.services), os.getpid())
    supervisor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
