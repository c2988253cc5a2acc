"""`llmops monitors ...` as a plugin of `llmops` (the entry point `llmops.plugins`): only the command's name
and options are imported when `llmops` builds its command line; the command itself (`cli.py`, which needs
the database driver and the service) is imported when it runs, so `llmops --help` stays light."""

from __future__ import annotations

import argparse

from llmops_shared.plugins import Command, Plugin
from llmops_shared.settings import CommonSettings


def _run(args: argparse.Namespace, settings: CommonSettings) -> int:
    from llmops_monitors.cli import run

    return run(args, settings)


def _options(p: argparse.ArgumentParser) -> None:
    p.add_argument("rest", nargs=argparse.REMAINDER, help="list | get | create | replace | delete | firings ...")


PLUGIN = Plugin(commands=(Command("monitors", "monitors: definitions and firings (llmops monitors list ...)", _run,
                                  _options),))
