"""
What the commands print: Rich tables for people, the API's JSON for programs.

Also the command boundary: :class:`GatepassGroup` turns a gatepass error raised by
any command into ``gatepass: <detail>`` on stderr and the error's exit code.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer.core import TyperGroup

from gatepass.cli.client import BrokerUnreachableError, Connector, use_connector
from gatepass.errors import GatepassError

__all__ = [
    "JSON_OPTION",
    "GatepassGroup",
    "cell",
    "fail",
    "print_json",
    "print_record",
    "print_table",
    "stderr_console",
    "stdout_console",
]

JSON_OPTION = typer.Option(False, "--json", help="print the API's JSON answer as is")


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
    typer.echo(f"gatepass: {detail}", err=True)
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
    typer.echo(json.dumps(document, indent=2, ensure_ascii=False))


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
            return ", ".join(f"{key}={item}" for key, item in value.items())
        return json.dumps(value, sort_keys=True)
    return str(value)


def print_table(
    items: Iterable[Mapping[str, Any]],
    columns: Sequence[tuple[str, str]],
    *,
    title: str | None = None,
    empty: str = "nothing to show",
) -> None:
    """
    Print records as a table, or a note when there are none.

    Args:
        items: the records.
        columns: ``(key, header)`` pairs, in order.
        title: the table title.
        empty: what to say when there are no records.
    """
    rows = list(items)
    console = stdout_console()
    if not console.is_terminal:
        # Piped or captured output is read by people in logs and pagers too; do
        # not squeeze it into 80 columns.
        console.width = max(console.width, 160)
    if not rows:
        console.print(escape(empty))
        return
    table = Table(title=title, title_justify="left")
    for key, header in columns:
        # Ids are copied into the next command: never break one across lines.
        whole = key == "id" or key.endswith("_id")
        table.add_column(header, overflow="fold", no_wrap=whole)
    for row in rows:
        table.add_row(*(escape(cell(row.get(key))) for key, _ in columns))
    console.print(table)


def print_record(record: Mapping[str, Any], *, title: str | None = None) -> None:
    """
    Print one record as a two-column table of field and value.

    Args:
        record: the record.
        title: the table title.
    """
    table = Table(title=title, title_justify="left", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for key, value in record.items():
        table.add_row(escape(key), escape(cell(value)))
    stdout_console().print(table)
