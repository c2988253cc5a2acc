"""The development commands of `llmops`: `up`, `down`, `status` and `demo`.

They reach `llmops` as a plugin (the entry point `llmops.plugins` in devtools/pyproject.toml names
`PLUGIN`), so they exist wherever this distribution is installed (the development virtualenv) and
nowhere else (a service image). The fake LLM joins the processes `llmops run` knows.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess

from pydantic_settings import BaseSettings

from llmops_devtools.stack.services import FAKE_LLM
from llmops_shared.plugins import Command, Plugin
from llmops_shared.settings import CommonSettings, reference_markdown


def _cmd_up(args: argparse.Namespace, settings: CommonSettings) -> int:
    if _use_docker(args.mode):
        return subprocess.call(["docker", "compose", "up", "-d", "--wait"])
    from llmops_devtools.stack import local

    stack = local.infrastructure_up(settings)
    if not args.no_services:
        local.services_up(stack, only=args.services.split(",") if args.services else None)
    print("the stack is up; `llmops status` shows it, `llmops down` stops it")
    return 0


def _cmd_down(args: argparse.Namespace, settings: CommonSettings) -> int:
    if _use_docker(args.mode):
        return subprocess.call(["docker", "compose", "down"])
    from llmops_devtools.stack import local

    local.down(settings)
    return 0


def _cmd_status(args: argparse.Namespace, settings: CommonSettings) -> int:
    from llmops_devtools.stack import local

    for name, state in local.status(settings).items():
        print(f"{name:<20} {state}")
    return 0


def _use_docker(mode: str) -> bool:
    if mode == "docker":
        return True
    if mode == "native" or shutil.which("docker") is None:
        return False
    return subprocess.call(["docker", "info"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) == 0


def _cmd_demo(args: argparse.Namespace, settings: CommonSettings) -> int:
    from llmops_devtools.demo import run_demo

    return run_demo(settings, events_target=args.traces, ingest_url=args.ingest_url)


def settings_classes() -> list[tuple[str, type[BaseSettings]]]:
    """Every process's settings class, in the order of docs/configuration.md."""
    from llmops_billing.settings import BillingSettings
    from llmops_console.settings import ConsoleSettings
    from llmops_evaluator.settings import EvaluatorSettings
    from llmops_guardrails.notifier.service import NotifierSettings
    from llmops_guardrails.settings import GuardrailsSettings
    from llmops_ingest.settings import IngestSettings
    from llmops_monitors.settings import MonitorsSettings
    from llmops_prompts.settings import PromptsSettings
    from llmops_shared.retention import RetentionSettings
    from llmops_traces.settings import TracesSettings

    return [("Every process", CommonSettings), ("Ingest API", IngestSettings),
            ("Guardrails worker and API", GuardrailsSettings), ("Notifier", NotifierSettings),
            ("Billing worker and API", BillingSettings), ("Evaluator worker, API and CLI", EvaluatorSettings),
            ("Traces worker, API and CLI", TracesSettings), ("Monitors worker and API", MonitorsSettings),
            ("Prompts API and CLI", PromptsSettings), ("Console", ConsoleSettings),
            ("Retention (`llmops retention`)", RetentionSettings)]


def _cmd_settings_reference(args: argparse.Namespace, settings: CommonSettings) -> int:
    print(reference_markdown(settings_classes()), end="")
    return 0


def _mode_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mode", choices=["auto", "docker", "native"], default="auto",
                        help="docker compose when a Docker engine answers (auto), or native processes")


def _up_options(parser: argparse.ArgumentParser) -> None:
    _mode_option(parser)
    parser.add_argument("--no-services", action="store_true", help="only Kafka, Postgres and Redis")
    parser.add_argument("--services", metavar="NAME,...", help="only these services (names as `llmops status` shows)")


def _demo_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--traces", type=int, default=60, help="number of traces (each several events)")
    parser.add_argument("--ingest-url", default=os.environ.get("LLMOPS_INGEST_URL", "http://127.0.0.1:8080"))


PLUGIN = Plugin(
    commands=(
        Command("up", "start the local stack and every installed service", _cmd_up, _up_options),
        Command("down", "stop what `up` started", _cmd_down, _mode_option),
        Command("status", "what is running", _cmd_status),
        Command("demo", "send realistic demo traffic through the SDK", _cmd_demo, _demo_options),
        Command("settings-reference", "every LLMOPS_* variable, as Markdown (docs/configuration.md)",
                _cmd_settings_reference),
    ),
    processes=(FAKE_LLM,),
)
