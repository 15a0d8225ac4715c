"""How the CLI speaks: JSON for scripts, Rich for people, one plain sentence for errors."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from rich.console import Console, ConsoleDimensions

from shiprail import defaults
from shiprail.durations import parse_duration
from shiprail.errors import BadInput, PlanInvalid, Problem, ShiprailError
from shiprail.schema.base import out_of_range
from shiprail.text import ascii_float, digits_hint, is_digits


class CliConsole(Console):
    """Rich's console, except that writing to no terminal it never wraps a table's row.

    Piped (``shiprail release list | grep checkout``) or in a CI log, Rich lays tables out in the
    width of whatever terminal stdin or stderr is, or 80 columns, folding a row's cells (the created
    date, a long id) over several lines that grep and awk then read half of. With no terminal to
    fit, the width is ``PIPED_WIDTH``: each row is one line, as ``kubectl get`` prints it. A width
    given, or COLUMNS set, is kept; on a terminal nothing changes. "No terminal" is the file's own
    ``isatty()``, not Rich's ``is_terminal``: a CI job that sets ``FORCE_COLOR`` asks for colour in
    its log, which Rich grants by treating the pipe as a terminal of 80 columns.
    """

    @property
    def size(self) -> ConsoleDimensions:
        """The console's size: Rich's, ``PIPED_WIDTH`` wide when it writes to no terminal and no width is set."""
        size = super().size
        if self._width is None and not on_terminal(self) and not self._environ.get("COLUMNS", "").isdigit():
            return ConsoleDimensions(defaults.PIPED_WIDTH, size.height)
        return size

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        self._width, self._height = new_size


def on_terminal(console: Console) -> bool:
    """Whether ``console`` writes to a terminal a person watches: its file's own ``isatty()``.

    Not Rich's ``is_terminal``, which ``FORCE_COLOR`` (colour in a CI log) turns true for a pipe:
    what is laid out or redrawn for a screen (a table's width, a live display) would land in the log.
    """
    isatty = getattr(console.file, "isatty", None)
    try:
        return bool(isatty is not None and isatty())
    except ValueError:  # a closed file
        return False


def cli_console(*, stderr: bool = False) -> CliConsole:
    """A console as every command prints: no highlighting, long lines not wrapped, piped tables one row a line."""
    return CliConsole(stderr=stderr, highlight=False, soft_wrap=True)


console = cli_console()

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of text.")]
DbOpt = Annotated[
    str | None,
    typer.Option(
        "--db", help="Database URL (default: SQLite under .shiprail/; env SHIPRAIL_DATABASE_URL).", show_default=False
    ),
]
ActorOpt = Annotated[
    str | None,
    typer.Option("--as", envvar="SHIPRAIL_USER", help="Who is acting (a person in shiprail.yaml).", show_default=False),
]


def float_flag(value: str | float) -> float:
    """A flag's number (``parser=`` of a float option): ASCII digits, as numbers in files are.

    Click's own float() and int() also read other scripts' digits (Arabic-Indic, fullwidth), while
    a duration flag (``--max-anchor-age``) and every file refuse them.
    """
    if not isinstance(value, str):  # the option's default
        return float(value)
    try:
        number = ascii_float(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a number{digits_hint(value)}") from None
    # 1e400 reads as infinity and 1e-400 as 0: neither is what was written. (NaN and infinity
    # written as such are refused by each flag's own range, which names what it takes.)
    problem = out_of_range(value, number)
    if problem is not None:
        raise typer.BadParameter(problem)
    return number


def duration_flag(flag: str, text: str) -> int:
    """The seconds a duration flag (``--max-anchor-age 2h``) stands for; ``BadInput`` naming ``flag`` if it is none."""
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise BadInput(f"{flag}: {exc}") from None


def int_flag(value: str | int) -> int:
    """A flag's whole number (``parser=`` of an int option), in ASCII digits; see ``float_flag``."""
    if not isinstance(value, str):
        return int(value)
    if is_digits(value.strip().lstrip("+-")):
        with contextlib.suppress(ValueError):  # "--5", or more digits than int() reads
            return int(value)
    raise typer.BadParameter(f"{value!r} is not a whole number{digits_hint(value)}")


def emit_json(data: Any) -> None:
    """Print ``data`` as JSON on stdout."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def problems_json(problems: Sequence[Problem]) -> list[dict[str, Any]]:
    """Problems as JSON: where each one is, what it says, and the line as printed."""
    return [{"file": p.file, "line": p.line, "path": p.path, "message": p.message, "text": str(p)} for p in problems]


def error_json(exc: ShiprailError) -> dict[str, Any]:
    """The JSON form of an error."""
    out: dict[str, Any] = {"ok": False, "error": exc.message, "exit_code": exc.exit_code}
    if isinstance(exc, PlanInvalid):
        out["problems"] = [
            {"file": p.file, "line": p.line, "path": p.path, "message": p.message, "text": str(p)} for p in exc.problems
        ]
    gates = getattr(exc, "gates", None)
    if gates:
        out["failed_gates"] = gates
    return out


def report_error(exc: ShiprailError, as_json: bool) -> None:
    """Tell the user what went wrong: every problem of an invalid file, otherwise one sentence."""
    if as_json:
        emit_json(error_json(exc))
        return
    if isinstance(exc, PlanInvalid):
        for problem in exc.problems:
            sys.stderr.write(f"{problem}\n")
        return
    sys.stderr.write(f"error: {exc.message}\n")
