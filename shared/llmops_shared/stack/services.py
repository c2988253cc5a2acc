"""The suite's own processes, as `llmops up` starts them: one entry per worker or API.

A service is started only when its package is installed, so the list can name services that a
deployment does not carry.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from llmops_shared.stack.processes import StackError, port_open, read_pid, spawn, stop_pid, tail, wait_for


@dataclass(frozen=True)
class ServiceProcess:
    name: str
    module: str  # run as `python -m <module>`
    default_port: int | None = None  # APIs answer GET /healthz here ...
    port_env: str | None = None  # ... or on the port this variable names (see llmops_shared.settings.api_port)

    @property
    def port(self) -> int | None:
        if self.port_env and os.environ.get(self.port_env):
            return int(os.environ[self.port_env])
        return self.default_port

    def installed(self) -> bool:
        try:
            return importlib.util.find_spec(self.module) is not None
        except ModuleNotFoundError:
            return False


SERVICES: tuple[ServiceProcess, ...] = (
    # The local stack's stand-in for an external LLM API, so the demo's evaluator has a judge to call.
    # Development only: a deployment points its evaluators at a real OpenAI-compatible endpoint.
    ServiceProcess("fake-llm", "llmops_shared.fake_openai", 8099, "LLMOPS_FAKE_LLM_PORT"),
    ServiceProcess("ingest-api", "llmops_ingest.api", 8080, "LLMOPS_INGEST_PORT"),
    ServiceProcess("guardrails-worker", "llmops_guardrails.worker"),
    ServiceProcess("guardrails-api", "llmops_guardrails.api", 8081, "LLMOPS_GUARDRAILS_PORT"),
    ServiceProcess("guardrails-notifier", "llmops_guardrails.notifier"),
    ServiceProcess("billing-worker", "llmops_billing.worker"),
    ServiceProcess("billing-api", "llmops_billing.api", 8083, "LLMOPS_BILLING_PORT"),
    ServiceProcess("evaluator-worker", "llmops_evaluator.worker"),
    ServiceProcess("evaluator-api", "llmops_evaluator.api", 8082, "LLMOPS_EVALUATOR_PORT"),
)


# What the local stack puts in its services' environment: the key variable the demo's evaluator names
# (the local fake LLM accepts any key).
LOCAL_SERVICE_ENV = {"LLMOPS_DEMO_JUDGE_KEY": "local-fake-llm-accepts-any-key"}


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
