"""
Tables for people: they fit the terminal, and never break an id or a time.

Each :class:`Column` has a shape. ``id``, ``time`` and ``word`` cells are never
wrapped (an id is copied into the next command; a time or a kind split over two
lines is unreadable); ``text`` cells wrap at spaces. Times are shown relative to
now (``5m ago``, ``in 14m``) and in full under ``--wide``.

When the table does not fit the terminal, columns are left out, the highest
``drop`` first, and a note on stderr names them (``--wide`` shows every column
and lets the terminal wrap the lines instead). Piped output without ``COLUMNS``
is laid out 160 wide, for logs and pagers.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from rich.cells import cell_len
from rich.console import Console
from rich.markup import escape
from rich.table import Table

__all__ = [
    "Column",
    "Layout",
    "View",
    "full_time",
    "layout",
    "parse_time",
    "relative_time",
    "table_width",
]

Shape = Literal["id", "time", "word", "text"]

_GAP: Final = 2  # one space of padding on each side of a column boundary
_TEXT_MIN: Final = 12  # the narrowest a wrapping column is squeezed to
_PIPED_WIDTH: Final = 160


@dataclass(frozen=True, slots=True)
class Column:
    """
    One column of a table.

    Attributes:
        key: the record's field.
        header: the column's title.
        shape: ``id``, ``time`` and ``word`` never wrap; ``text`` wraps.
        wide: shown only under ``--wide``.
        drop: 0 to always show; otherwise left out, highest first, when the
            table would not fit.
    """

    key: str
    header: str
    shape: Shape = "text"
    wide: bool = False
    drop: int = 0


@dataclass(frozen=True, slots=True)
class View:
    """
    How a table is shown.

    Attributes:
        now: the time relative times are counted from.
        wide: every column, full timestamps, no squeezing.
        width: the terminal's width in cells.
    """

    now: dt.datetime
    wide: bool = False
    width: int = 80


@dataclass(frozen=True, slots=True)
class Layout:
    """
    A table ready to print.

    Attributes:
        table: the Rich table.
        width: the width to print it at.
        hidden: the headers of columns left out to fit.
        shown: the columns shown.
        widths: the width of each shown column that never wraps, by key.
    """

    table: Table
    width: int
    hidden: tuple[str, ...]
    shown: tuple[Column, ...]
    widths: Mapping[str, int]


def table_width(console: Console) -> int:
    """
    Return the width tables are laid out at on ``console``.

    ``COLUMNS`` wins; then the terminal's width; piped output gets 160.
    """
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    if console.is_terminal:
        return console.width
    return _PIPED_WIDTH


def parse_time(value: object) -> dt.datetime | None:
    """Return an API timestamp as an aware datetime, or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def relative_time(moment: dt.datetime, now: dt.datetime) -> str:
    """
    Say when ``moment`` is, from ``now``, in the largest whole unit.

    Returns:
        ``now``, ``42s ago``, ``5m ago``, ``3h ago``, ``2d ago``, or ``in 14m``.
    """
    seconds = (moment - now).total_seconds()
    span = abs(seconds)
    if span < 1:
        return "now"
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if span >= size:
            amount = f"{int(span // size)}{unit}"
            break
    else:
        amount = f"{int(span)}s"
    return f"{amount} ago" if seconds < 0 else f"in {amount}"


def full_time(moment: dt.datetime) -> str:
    """Return a time in UTC to the second: ``2026-01-06T10:00:00Z``."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


Render = Callable[[object], str]


def _shown(value: object, column: Column, view: View, render: Render) -> str:
    if column.shape == "time":
        moment = parse_time(value)
        if moment is not None:
            return full_time(moment) if view.wide else relative_time(moment, view.now)
    return render(value)


def _needed(column: Column, cells: Sequence[str], *, wide: bool) -> int:
    """The narrowest this column can be without breaking what must not break."""
    longest = max((cell_len(cell) for cell in cells), default=0)
    header = max(cell_len(word) for word in column.header.split() or [""])
    if column.shape != "text" or wide:
        # Under --wide nothing is squeezed: the terminal wraps long lines.
        return max(longest, cell_len(column.header) if wide else header)
    words = max((cell_len(word) for cell in cells for word in cell.split()), default=0)
    return max(header, min(longest, max(_TEXT_MIN, min(words, 24))))


def layout(
    rows: Iterable[Mapping[str, Any]],
    columns: Sequence[Column],
    view: View,
    *,
    render: Render,
    title: str | None = None,
    show_header: bool = True,
    at_least: Mapping[str, int] | None = None,
) -> Layout:
    """
    Lay records out as a table that fits ``view.width``.

    Args:
        rows: the records.
        columns: every column the table may show, in order.
        view: the time, width and ``--wide`` choice.
        render: turns a value into terminal-safe cell text.
        title: the table's title.
        show_header: print the headers (``audit tail --follow`` prints them once).
        at_least: minimum widths by key, so that pages printed one after another
            line up.

    Returns:
        The table, the width to print it at, and the columns left out.
    """
    records = list(rows)
    chosen = [column for column in columns if view.wide or not column.wide]
    cells = {
        column.key: [
            _shown(row.get(column.key), column, view, render) for row in records
        ]
        for column in chosen
    }
    floor = at_least or {}
    needed = {
        column.key: max(
            _needed(column, cells[column.key], wide=view.wide),
            floor.get(column.key, 0),
        )
        for column in chosen
    }

    def total(shown: list[Column]) -> int:
        return sum(needed[c.key] for c in shown) + _GAP * max(0, len(shown) - 1)

    dropped: list[Column] = []
    if not view.wide:
        while total(chosen) > view.width:
            droppable = [c for c in chosen if c.drop]
            if not droppable:
                break
            # The highest drop goes first; among equals, the rightmost.
            victim = max(reversed(droppable), key=lambda c: c.drop)
            chosen.remove(victim)
            dropped.append(victim)
        # A column dropped early may fit again once wider ones went.
        for column in sorted(dropped, key=lambda c: c.drop):
            trial = [c for c in columns if c in chosen or c is column]
            if total(trial) <= view.width:
                chosen = trial
                dropped.remove(column)
    hidden = [column.header for column in columns if column in dropped]
    width = max(view.width, total(chosen)) if view.wide else view.width
    table = Table(
        title=title,
        title_justify="left",
        box=None,
        padding=(0, 1),
        pad_edge=False,
        show_header=show_header,
        header_style="bold",
    )
    for column in chosen:
        whole = column.shape != "text"
        table.add_column(
            column.header,
            no_wrap=whole,
            overflow="fold",
            min_width=needed[column.key] if whole or view.wide else None,
        )
    for index in range(len(records)):
        table.add_row(*(escape(cells[column.key][index]) for column in chosen))
    return Layout(
        table=table,
        width=width,
        hidden=tuple(hidden),
        shown=tuple(chosen),
        widths={c.key: needed[c.key] for c in chosen if c.shape != "text"},
    )
