"""The suite's processes: one entry per worker or API, as `llmops run NAME` runs it.

A process runs only where its package is installed, so the table can name services that a deployment
does not carry. Development tools add processes of their own through a plugin (`llmops_shared.plugins`).
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass


@dataclass(frozen=True)
class ServiceProcess:
    name: str
    module: str  # run as `python -m <module>`
    default_port: int | None = None  # APIs answer GET /healthz here ...
    port_env: str | None = None  # ... or on the port this variable names (the service's `port` setting)

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
    ServiceProcess("ingest-api", "llmops_ingest.api", 8080, "LLMOPS_INGEST_PORT"),
    ServiceProcess("guardrails-worker", "llmops_guardrails.worker"),
    ServiceProcess("guardrails-api", "llmops_guardrails.api", 8081, "LLMOPS_GUARDRAILS_PORT"),
    ServiceProcess("guardrails-notifier", "llmops_guardrails.notifier"),
    ServiceProcess("billing-worker", "llmops_billing.worker"),
    ServiceProcess("billing-api", "llmops_billing.api", 8083, "LLMOPS_BILLING_PORT"),
    ServiceProcess("evaluator-worker", "llmops_evaluator.worker"),
    ServiceProcess("evaluator-api", "llmops_evaluator.api", 8082, "LLMOPS_EVALUATOR_PORT"),
    ServiceProcess("traces-worker", "llmops_traces.worker"),
    ServiceProcess("traces-api", "llmops_traces.api", 8084, "LLMOPS_TRACES_PORT"),
    ServiceProcess("monitors-worker", "llmops_monitors.worker"),
    ServiceProcess("monitors-api", "llmops_monitors.api", 8086, "LLMOPS_MONITORS_PORT"),
    ServiceProcess("prompts-api", "llmops_prompts.api", 8085, "LLMOPS_PROMPTS_PORT"),
    ServiceProcess("console", "llmops_console.api", 8090, "LLMOPS_CONSOLE_PORT"),
)
