"""How another distribution adds commands and processes to `llmops` without the shared package
importing it.

A distribution declares an entry point in the group `llmops.plugins` that names a `Plugin`:

    [project.entry-points."llmops.plugins"]
    devtools = "llmops_devtools.cli:PLUGIN"

`llmops` loads every such plugin when it builds its command line: each `Command` becomes a subcommand
(a built-in name wins over a plugin's), and each process joins the table `llmops run NAME` looks in.
Where the distribution is not installed (a service image), its commands do not exist. The dependency
goes one way: the plugin imports this module, never the other way round.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from llmops_shared.services import ServiceProcess

if TYPE_CHECKING:  # pydantic-settings is imported when a command runs, not for `llmops --help`
    from llmops_shared.settings import CommonSettings

GROUP = "llmops.plugins"

Run = Callable[[argparse.Namespace, "CommonSettings"], int]


def _no_options(_parser: argparse.ArgumentParser) -> None:
    return None


@dataclass(frozen=True)
class Command:
    """One `llmops NAME` subcommand: `configure` adds its options, `run` does it and returns the exit code."""

    name: str
    help: str
    run: Run
    configure: Callable[[argparse.ArgumentParser], None] = _no_options


@dataclass(frozen=True)
class Plugin:
    commands: tuple[Command, ...] = ()
    processes: tuple[ServiceProcess, ...] = ()


def load_plugins() -> list[Plugin]:
    """Every installed plugin. One that fails to load is reported on stderr and left out, so the
    operational commands keep working on a broken development install."""
    found: list[Plugin] = []
    for entry in sorted(importlib.metadata.entry_points(group=GROUP), key=lambda e: e.name):
        try:
            plugin = entry.load()
        except Exception as exc:
            print(f"llmops: the plugin {entry.name} ({entry.value}) did not load: {type(exc).__name__}: {exc}",
                  file=sys.stderr)
            continue
        if not isinstance(plugin, Plugin):
            print(f"llmops: the plugin {entry.name} ({entry.value}) is not an llmops_shared.plugins.Plugin",
                  file=sys.stderr)
            continue
        found.append(plugin)
    return found
