"""
What the commands print: Rich tables for people, the API's JSON for programs.

Also the command boundary: :class:`GatepassGroup` turns a gatepass error raised by
any command into ``gatepass: <detail>`` on stderr and the error's exit code.

Everything printed may hold text an agent chose (an intent, a label, an audit
record's data), so every output path escapes what a terminal would act on rather
than show: C0 and C1 controls (ESC starts ANSI sequences; U+009B is a one-byte CSI),
DEL, bidirectional overrides and isolates (U+202A-U+202E, U+2066-U+2069, the
"Trojan Source" characters of CVE-2021-42574), zero-width and other format
characters, line and paragraph separators (U+2028, U+2029) and lone surrogates.
They are shown as ``\u202e``-style escapes: JSON output stays valid JSON with the
same value, and tables show what is really there. Plain text is unchanged.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer.core import TyperGroup

from gatepass.cli.client import (
    BrokerUnreachableError,
    Connector,
    current_connector,
    use_connector,
)
from gatepass.cli.tables import Column, Layout, View, layout, table_width
from gatepass.errors import GatepassError

__all__ = [
    "GatepassGroup",
    "cell",
    "fail",
    "print_json",
    "print_record",
    "print_table",
    "safe_json",
    "stderr_console",
    "stdout_console",
    "terminal_safe",
]

# Unicode general categories a terminal may act on instead of displaying: controls
# (Cc), format characters (Cf: bidi controls, zero-width characters, BOM), line and
# paragraph separators (Zl, Zp) and surrogates (Cs).
_UNSAFE_CATEGORIES: Final = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
_SAFE_CONTROLS: Final = frozenset("\n\t")


def _unsafe(char: str) -> bool:
    return unicodedata.category(char) in _UNSAFE_CATEGORIES


def _escape(char: str) -> str:
    code = ord(char)
    if code > 0xFFFF:
        # JSON escapes only BMP code points: write a UTF-16 surrogate pair.
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
    return f"\\u{code:04x}"


def terminal_safe(text: str, *, keep_newlines: bool = False) -> str:
    """
    Return ``text`` with every character a terminal would act on escaped.

    Args:
        text: any text, possibly chosen by an agent.
        keep_newlines: leave newlines and tabs as they are (multi-line
            output that the command itself laid out).

    Returns:
        The text, unchanged when it holds nothing unsafe.
    """
    if all(not _unsafe(char) for char in text):
        return text
    kept = _SAFE_CONTROLS if keep_newlines else frozenset()
    return "".join(
        _escape(char) if _unsafe(char) and char not in kept else char for char in text
    )


def safe_json(
    document: object, *, indent: int | None = None, sort_keys: bool = False
) -> str:
    """
    Encode ``document`` as JSON that is safe to print on a terminal.

    Non-ASCII text stays readable; only the characters :func:`terminal_safe` names
    are written as JSON ``u``-escapes, which decode to the same value. They can
    only occur inside JSON strings, where such an escape is always valid.

    Args:
        document: a JSON-compatible value.
        indent: as for :func:`json.dumps`; compact when None.
        sort_keys: as for :func:`json.dumps`.
    """
    separators = (",", ":") if indent is None else None
    text = json.dumps(
        document,
        indent=indent,
        ensure_ascii=False,
        separators=separators,
        sort_keys=sort_keys,
    )
    return terminal_safe(text, keep_newlines=indent is not None)


class GatepassGroup(TyperGroup):
    """
    The root command group: the one boundary where errors become exit codes.

    It also hands the commands the :class:`~gatepass.cli.client.Connector` found in
    the context object, if any (tests pass one; real runs use the default).
    """

    # Typer's Context base class lives in its private vendored click, so the
    # parameter stays as loosely typed as the method it overrides needs.
    def invoke(self, ctx: Any) -> Any:  # noqa: ANN401
        """
        Run the command, rendering gatepass errors for the terminal.

        Args:
            ctx: the root command's context.

        Returns:
            What the command returned.

        Raises:
            typer.Exit: with the error's exit code after printing its detail.
        """
        with use_connector(ctx.find_object(Connector)):
            try:
                return super().invoke(ctx)
            except (GatepassError, BrokerUnreachableError) as error:
                fail(error.detail, error.exit_code)


def fail(detail: str, exit_code: int) -> NoReturn:
    """
    Print ``gatepass: <detail>`` to stderr and exit.

    Args:
        detail: the message, which never carries a secret.
        exit_code: the process exit code.

    Raises:
        typer.Exit: always.
    """
    typer.echo(f"gatepass: {terminal_safe(detail)}", err=True)
    raise typer.Exit(exit_code)


def stdout_console() -> Console:
    """
    Return a console on standard output.

    Returns:
        A console without syntax highlighting, so ids print as typed.
    """
    return Console(highlight=False)


def stderr_console() -> Console:
    """
    Return a console on standard error, for progress and notes.

    Returns:
        A console without syntax highlighting.
    """
    return Console(stderr=True, highlight=False)


def print_json(document: object) -> None:
    """
    Print one JSON document.

    Args:
        document: the decoded API answer.
    """
    typer.echo(safe_json(document, indent=2))


def cell(value: object) -> str:
    """
    Render one value for a table cell.

    Args:
        value: a JSON value.

    Returns:
        ``-`` for nothing, comma-joined lists, ``k=v`` pairs for objects.
    """
    if value is None or value in ("", [], {}):
        return "-"
    if isinstance(value, list):
        return ", ".join(cell(item) for item in value)
    if isinstance(value, dict):
        if all(isinstance(item, str) for item in value.values()):
            return terminal_safe(
                ", ".join(f"{key}={item}" for key, item in value.items())
            )
        return safe_json(value, sort_keys=True)
    return terminal_safe(str(value))


def print_table(
    items: Iterable[Mapping[str, Any]],
    columns: Sequence[Column],
    *,
    wide: bool = False,
    title: str | None = None,
    empty: str = "nothing to show",
    show_header: bool = True,
    at_least: Mapping[str, int] | None = None,
) -> Layout | None:
    """
    Print records as a table that fits the terminal, or a note when there are none.

    Args:
        items: the records.
        columns: every column the table may show (see :mod:`gatepass.cli.tables`).
        wide: ``--wide``: every column and full timestamps.
        title: the table title.
        empty: what to say when there are no records.
        show_header: print the column headers.
        at_least: minimum column widths by key (pages that must line up).

    Returns:
        The layout printed, or None when there was nothing to print.
    """
    rows = list(items)
    console = stdout_console()
    if not rows:
        if empty:
            console.print(escape(empty))
        return None
    view = View(
        now=current_connector().clock.now(), wide=wide, width=table_width(console)
    )
    laid = layout(
        rows,
        columns,
        view,
        render=cell,
        title=title,
        show_header=show_header,
        at_least=at_least,
    )
    console.width = laid.width
    console.print(laid.table)
    if laid.hidden:
        stderr_console().print(
            f"note: {escape(', '.join(laid.hidden))} left out to fit "
            f"{laid.width} columns; --wide shows every column"
        )
    return laid


def print_record(
    record: Mapping[str, Any], *, title: str | None = None, to_stderr: bool = False
) -> None:
    """
    Print one record as a two-column table of field and value.

    Args:
        record: the record.
        title: the table title.
        to_stderr: print it on stderr (when stdout carries only a value).
    """
    table = Table(title=title, title_justify="left", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for key, value in record.items():
        table.add_row(escape(terminal_safe(key)), escape(cell(value)))
    (stderr_console() if to_stderr else stdout_console()).print(table)
