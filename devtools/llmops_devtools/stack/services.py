"""The suite's own processes, as `llmops up` starts them: one entry per worker or API, and the fake LLM.

A service is started only when its package is installed, so the list can name services that a
deployment does not carry.
"""

from __future__ import annotations

import base64
import os
import secrets
import sys
import urllib.request
from pathlib import Path

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


def start_service(home: Path, service: ServiceProcess, env: dict[str, str] | None = None,
                  timeout_s: float = 60) -> bool:
    pid_file, log_file = _paths(home, service)
    if read_pid(pid_file) is not None:
        return False
    if service.port is not None and port_open(service.port):
        raise StackError(f"{service.name}: port {service.port} is taken by a process this stack did not start")
    spawn([sys.executable, "-m", service.module], pid_file=pid_file, log_file=log_file, env=env)
    port = service.port
    if port is not None and not wait_for(lambda: _healthy(port), timeout_s, 0.2):
        stop_pid(pid_file, timeout_s=5)
        raise StackError(f"{service.name} did not become healthy:\n{tail(log_file)}")
    return True


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
