"""The suite's own processes, as `llmops up` starts them: one entry per worker or API, and the fake LLM.

A service is started only when its package is installed, so the list can name services that a
deployment does not carry.
"""

from __future__ import annotations

import base64
import os
import secrets
import signal
import sys
import urllib.request
from collections.abc import Sequence
from functools import partial
from pathlib import Path

from llmops_devtools.stack import supervisor
from llmops_devtools.stack.processes import StackError, port_open, read_pid, spawn, stop_pid, tail, wait_for
from llmops_shared.services import SERVICES, ServiceProcess

# The local stack's stand-in for an external LLM API, so the demo's evaluator has a judge to call.
# Development only: a deployment points its evaluators at a real OpenAI-compatible endpoint.
FAKE_LLM = ServiceProcess("fake-llm", "llmops_devtools.fake_openai", 8099, "LLMOPS_FAKE_LLM_PORT")

# What `llmops up` starts, in this order (`down` stops them in the reverse order): the suite's
# services (`llmops_shared.services`) and the fake LLM.
PROCESSES: tuple[ServiceProcess, ...] = (FAKE_LLM, *SERVICES)



CHANNEL_KEYS_ENV = "LLMOPS_GUARDRAILS_CHANNEL_KEYS"  # llmops_guardrails.settings
DEV_CHANNEL_KEY_FILE = "guardrails-channel-key"


def local_service_env(home: Path) -> dict[str, str]:
    """What the local stack adds to its services' environment: the demo evaluator's credential (granted to
    the demo tenant, for the fake LLM only), its key (the fake LLM accepts any), and the one egress
    allowance the judge needs on loopback, the fake LLM's address and port (`llmops_devtools.demo`); and
    the key that seals notification channels, unless the environment has one (`development_channel_key`)."""
    from llmops_devtools.demo import demo_judge_env

    env = demo_judge_env()
    env[CHANNEL_KEYS_ENV] = os.environ.get(CHANNEL_KEYS_ENV) or development_channel_key(home)
    return env


def development_channel_key(home: Path) -> str:
    """The local stack's channel key (a Fernet key): made once, kept in `home` (readable by its owner only)
    so that channels sealed with it stay readable across `llmops up`s. Development only: a deployment sets
    `LLMOPS_GUARDRAILS_CHANNEL_KEYS` (docs/security.md)."""
    path = home / DEV_CHANNEL_KEY_FILE
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(key + "\n")
    return path.read_text().strip()


def _paths(home: Path, service: ServiceProcess) -> tuple[Path, Path]:
    return home / f"{service.name}.pid", home / f"{service.name}.log"


def start_supervised(home: Path, services: Sequence[ServiceProcess], env: dict[str, str] | None = None,
                     timeout_s: float = 60) -> list[str]:
    """Start the supervisor with `services` as its children (`llmops_devtools.stack.supervisor`), or, when it
    runs already, have it start again what it gave up on; wait until every API answers `/healthz`. Returns
    the names it started (those already running under it are not)."""
    home.mkdir(parents=True, exist_ok=True)
    supervisor_pid = read_pid(home / supervisor.PID_FILE)
    if supervisor_pid is not None:
        revivals = (supervisor.read_state(home) or {}).get("revivals", 0)
        os.kill(supervisor_pid, signal.SIGHUP)
        if not wait_for(lambda: (supervisor.read_state(home) or {}).get("revivals", 0) > revivals, 10):
            raise StackError(f"the supervisor (pid {supervisor_pid}) does not answer; see {home / supervisor.LOG_FILE}")
        started: list[str] = []
    else:
        for service in services:
            if service.port is not None and port_open(service.port):
                raise StackError(f"{service.name}: port {service.port} is taken by a process this stack did not start")
        (home / supervisor.STATE_FILE).unlink(missing_ok=True)
        spawn([sys.executable, "-m", "llmops_devtools.stack.supervisor", "--home", str(home),
               *(s.name for s in services)], pid_file=home / supervisor.PID_FILE,
              log_file=home / supervisor.LOG_FILE, env=env)
        started = [s.name for s in services]
    for service in services:
        settled = partial(_settled, home, service)
        if service.port is not None and not wait_for(settled, timeout_s, 0.2):
            raise StackError(f"{service.name} did not become healthy:\n{tail(_paths(home, service)[1])}")
        if _failed(home, service):
            raise StackError(f"{service.name} keeps crashing; the supervisor gave up on it:\n"
                             f"{tail(_paths(home, service)[1])}")
    return started


def stop_supervisor(home: Path) -> bool:
    """Stop the supervisor, which stops its services first."""
    return stop_pid(home / supervisor.PID_FILE, timeout_s=180)


def supervisor_running(home: Path) -> bool:
    return read_pid(home / supervisor.PID_FILE) is not None


def service_state(home: Path, service: ServiceProcess) -> str:
    """What `llmops status` says of a service: the supervisor's view (state, pid, restarts), or its pid file's."""
    state = supervisor.read_state(home) if supervisor_running(home) else None
    entry = (state or {}).get("services", {}).get(service.name)
    if entry is None:
        return "running (unsupervised)" if service_running(home, service) else "stopped"
    restarts, last_exit = entry["restarts"], entry["last_exit"]
    if entry["state"] == "running":
        return f"running (pid {entry['pid']}, restarts {restarts})"
    if entry["state"] == "restarting":
        return f"restarting (restarts {restarts}, last exit code {last_exit})"
    if entry["state"] == "failed":
        policy = (state or {}).get("policy", {})
        return (f"FAILED: gave up after {policy.get('max_crashes')} crashes within {policy.get('window_s')} s "
                f"(restarts {restarts}, last exit code {last_exit}); `llmops up` starts it again; log {entry['log']}")
    return str(entry["state"])


def _settled(home: Path, service: ServiceProcess) -> bool:
    """The API answers, or the supervisor gave up on it."""
    return (service.port is not None and _healthy(service.port)) or _failed(home, service)


def _failed(home: Path, service: ServiceProcess) -> bool:
    entry = (supervisor.read_state(home) or {}).get("services", {}).get(service.name)
    return entry is not None and entry["state"] == "failed"


def stop_service(home: Path, service: ServiceProcess) -> bool:
    pid_file, _ = _paths(home, service)
    return stop_pid(pid_file, timeout_s=20)


def service_running(home: Path, service: ServiceProcess) -> bool:
    pid_file, _ = _paths(home, service)
    return read_pid(pid_file) is not None


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False
