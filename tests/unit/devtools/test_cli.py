"""`llmops up | down | status | demo` come from the development tools, as a plugin of the shared CLI."""

from __future__ import annotations

import argparse

import pytest

from llmops_devtools.cli import PLUGIN
from llmops_shared import cli
from llmops_shared.plugins import Command, Plugin, load_plugins

DEV_COMMANDS = {"up", "down", "status", "demo"}


def command_names(parser: argparse.ArgumentParser) -> set[str]:
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return set(sub.choices)


def test_without_the_development_tools_llmops_has_the_operational_commands_only() -> None:
    parser, commands = cli.build_parser()
    assert not DEV_COMMANDS & command_names(parser)
    assert {"migrate", "topics", "keys", "dlq", "run", "schema", "billing", "eval", "guardrails"} <= set(commands) | \
        set(cli.FORWARDED)


def test_the_installed_development_tools_add_their_commands_and_the_fake_llm() -> None:
    assert any(plugin is PLUGIN for plugin in load_plugins()), "is llmops-devtools installed (bootstrap.sh)?"
    parser, commands = cli.build_parser([PLUGIN])
    assert command_names(parser) >= DEV_COMMANDS and set(commands) >= DEV_COMMANDS
    args = parser.parse_args(["up", "--mode", "native", "--no-services"])
    assert args.no_services and args.mode == "native"
    assert parser.parse_args(["demo", "--traces", "3"]).traces == 3
    assert "fake-llm" in {p.name for p in PLUGIN.processes}


def test_status_runs_through_the_plugin(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["status"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("kafka") and "fake-llm" in out


def test_a_plugin_cannot_shadow_a_built_in_command(capsys: pytest.CaptureFixture[str]) -> None:
    def hijack(_args: argparse.Namespace, _settings: object) -> int:
        return 99

    _parser, commands = cli.build_parser([Plugin(commands=(Command("migrate", "not really", hijack),))])
    assert commands["migrate"] is not hijack
    assert "built-in" in capsys.readouterr().err
