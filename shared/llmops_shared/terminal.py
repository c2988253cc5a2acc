"""What every `llmops` command shows, on a terminal and in a pipe: progress, tables, JSON and errors.

- **Progress** (`progress`): on a terminal, a bar on stderr with the count, the rate and the time left
  (Rich); piped, plain lines (the lines a job gives, or one every tenth of the way), never control codes.
- **Tables** (`print_table`): aligned and coloured on a terminal (Rich); piped, the same columns aligned
  with spaces and no colour.
- **JSON** (`print_json`): what `--json` prints, for scripts: one document on stdout.
- **Errors** (`CliError`, `describe`, `guard`): one line on stderr, `llmops CMD: error: WHAT (fix: HOW)`,
  exit code 2 for a usage error and 1 otherwise; never a traceback (`LLMOPS_DEBUG=1` shows it).

A terminal is a TTY with `NO_COLOR` unset and `TERM` not `dumb`. Rich is imported only when a terminal
needs it, so `llmops --help` stays fast.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import IO, Any, NoReturn
from uuid import UUID

USAGE, FAILED = 2, 1


class CliError(Exception):
    """A command that cannot do what was asked: `message` says what, `fix` how to put it right."""

    def __init__(self, message: str, *, fix: str | None = None, code: int = FAILED) -> None:
        super().__init__(message)
        self.message, self.fix, self.code = message, fix, code

    def line(self, prog: str) -> str:
        return one_line(f"{prog}: error: {self.message}" + (f" (fix: {self.fix})" if self.fix else ""))


def one_line(text: str) -> str:
    return " ".join(text.split())


def is_terminal(stream: IO[str] | None = None) -> bool:
    stream = sys.stdout if stream is None else stream
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        return False
    return tty and "NO_COLOR" not in os.environ and os.environ.get("TERM", "") != "dumb"


# -- errors ----------------------------------------------------------------------------------------


def describe(exc: BaseException) -> CliError:
    """The one-line error (and its fix) for an exception no command turned into a `CliError` (pure)."""
    if isinstance(exc, CliError):
        return exc
    name = type(exc).__name__
    text = str(exc) or name
    if name == "InvalidCatalogNameError":
        return CliError(f"the database does not exist ({text})", fix="run `llmops migrate` (it creates it)")
    if name in ("UndefinedTableError", "UndefinedColumnError"):
        return CliError(f"the database schema is out of date ({text})", fix="run `llmops migrate`")
    if name in ("InvalidPasswordError", "InvalidAuthorizationSpecificationError"):
        return CliError(f"the database refused the login ({text})", fix="check LLMOPS_DATABASE_URL")
    if isinstance(exc, ConnectionRefusedError) or (isinstance(exc, OSError) and exc.errno in (111, 61)):
        return CliError(f"cannot connect: {text}",
                        fix="is the stack running? `llmops status` / `llmops up`, or set LLMOPS_DATABASE_URL, "
                            "LLMOPS_KAFKA_BOOTSTRAP, LLMOPS_REDIS_URL")
    if isinstance(exc, FileNotFoundError):
        return CliError(f"no such file: {exc.filename or text}", fix="check the path")
    if isinstance(exc, PermissionError):
        return CliError(f"permission denied: {exc.filename or text}", fix="check the file's permissions")
    if isinstance(exc, TimeoutError):
        return CliError(f"timed out: {text}", fix="is the stack running? `llmops status`")
    return CliError(f"{name}: {text}", fix="LLMOPS_DEBUG=1 shows the traceback; please report it if it is a bug")


def guard(prog: str, command: Callable[[], int], *, err: IO[str] | None = None) -> int:
    """Run a command; any error becomes one line on stderr and an exit code (2 usage, 1 otherwise)."""
    err = sys.stderr if err is None else err
    try:
        return command()
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=err)
        return 130
    except SystemExit:
        raise
    except Exception as exc:
        if os.environ.get("LLMOPS_DEBUG"):
            traceback.print_exc(file=err)
        problem = describe(exc)
        print(problem.line(prog), file=err)
        return problem.code


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose errors are one line (`llmops keys create: error: ... (fix: llmops keys create --help)`)."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE, CliError(message, fix=f"see `{self.prog} --help`").line(self.prog) + "\n")


# -- JSON ------------------------------------------------------------------------------------------


def _default(value: Any) -> Any:
    if isinstance(value, Decimal | UUID):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json", by_alias=True)
    raise TypeError(f"not JSON: {type(value).__name__}")


def to_json(value: Any) -> str:
    import orjson

    return orjson.dumps(value, default=_default, option=orjson.OPT_INDENT_2 | orjson.OPT_PASSTHROUGH_DATETIME).decode()


def print_json(value: Any, *, out: IO[str] | None = None) -> None:
    print(to_json(value), file=sys.stdout if out is None else out)


# -- tables ----------------------------------------------------------------------------------------

Cell = str | tuple[str, str]  # text, or (text, Rich style) e.g. ("FAIL", "bold red")


@dataclass(frozen=True)
class Column:
    name: str
    right: bool = False  # numbers align right


def text_of(cell: Cell) -> str:
    return cell if isinstance(cell, str) else cell[0]


def plain_table(columns: Sequence[Column], rows: Sequence[Sequence[Cell]]) -> str:
    """Aligned with spaces, no colour (pure): what a pipe gets. The last column is not padded."""
    texts = [[c.name for c in columns], *[[text_of(cell) for cell in row] for row in rows]]
    widths = [max(len(r[i]) for r in texts) for i in range(len(columns))]
    lines = []
    for row in texts:
        cells = [cell.rjust(w) if col.right else cell.ljust(w) for cell, w, col in zip(row, widths, columns,
                                                                                       strict=True)]
        cells[-1] = row[-1] if not columns[-1].right else cells[-1]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def print_table(columns: Sequence[Column], rows: Sequence[Sequence[Cell]], *, out: IO[str] | None = None,
                title: str | None = None) -> None:
    out = sys.stdout if out is None else out
    if not is_terminal(out):
        if title:
            print(title, file=out)
        print(plain_table(columns, rows), file=out)
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, header_style="bold cyan", box=None, pad_edge=False)
    for col in columns:
        table.add_column(col.name, justify="right" if col.right else "left", no_wrap=True)
    for row in rows:
        table.add_row(*[Text(cell) if isinstance(cell, str) else Text(cell[0], style=cell[1]) for cell in row])
    Console(file=out, force_terminal=True).print(table)


# -- progress --------------------------------------------------------------------------------------


class Progress:
    """A job's progress: `advance(n, line)`; `line` is also shown (above the bar on a terminal)."""

    def __init__(self, description: str, total: int | None, unit: str, err: IO[str]) -> None:
        self.description, self.total, self.unit, self.err = description, total, unit, err
        self.done = 0
        self._next_tenth = 1

    def set_total(self, total: int) -> None:
        self.total = total

    def advance(self, n: int = 1, line: str | None = None) -> None:
        self.done += n
        if line is not None:
            print(line, file=self.err, flush=True)
            return
        # piped and no line of the job's own: one line every tenth of the way (or every call without a total)
        if self.total:
            if self.done * 10 < self._next_tenth * self.total and self.done < self.total:
                return
            while self._next_tenth * self.total <= self.done * 10:
                self._next_tenth += 1
        of = f"/{self.total}" if self.total else ""
        print(f"{self.description}: {self.done}{of} {self.unit}", file=self.err, flush=True)


class _RichProgress(Progress):
    def __init__(self, description: str, total: int | None, unit: str, err: IO[str]) -> None:
        super().__init__(description, total, unit, err)
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as Bar

        self._console = Console(file=err, force_terminal=True)
        self._bar = Bar(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TaskProgressColumn(), TextColumn("{task.fields[rate]}"), TextColumn("eta"),
                        TimeRemainingColumn(), TimeElapsedColumn(), console=self._console, transient=False,
                        refresh_per_second=8)
        self._task = self._bar.add_task(description, total=total, rate="")

    def set_total(self, total: int) -> None:
        super().set_total(total)
        self._bar.update(self._task, total=total)

    def advance(self, n: int = 1, line: str | None = None) -> None:
        self.done += n
        speed = self._bar.tasks[0].speed if self._bar.tasks else None
        rate = f"{speed:,.1f} {self.unit}/s" if speed else f"- {self.unit}/s"
        self._bar.update(self._task, advance=n, rate=rate)
        if line is not None:
            self._bar.console.print(line, markup=False, highlight=False)


@contextmanager
def progress(description: str, total: int | None = None, *, unit: str = "items",
             err: IO[str] | None = None) -> Iterator[Progress]:
    """A progress bar on a terminal's stderr, plain lines when stderr is not a terminal."""
    err = sys.stderr if err is None else err
    if not is_terminal(err):
        yield Progress(description, total, unit, err)
        return
    bar = _RichProgress(description, total, unit, err)
    with bar._bar:
        yield bar


def fail(message: str, *, fix: str | None = None, code: int = FAILED) -> NoReturn:
    raise CliError(message, fix=fix, code=code)
