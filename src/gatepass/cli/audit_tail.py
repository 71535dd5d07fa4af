"""
``gatepass audit tail``: the newest audit events as a table, filtered, followed.

A table by default (relative times, agent names for agent ids, one line per event
where the terminal allows), JSON lines with ``-o json``. The filters (``--agent``,
``--task``, ``--kind``, ``--outcome``, ``--since``) are applied by the broker, so
``--limit`` counts matching events. ``--follow`` keeps polling every second and
continues exactly where the last answer ended, so no event is shown twice or
missed; its table prints the headers once.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import typer

from gatepass.audit import Outcome
from gatepass.cli.client import admin_client, current_connector
from gatepass.cli.names import AgentNames
from gatepass.cli.options import (
    ADDR_OPTION,
    CONFIG_OPTION,
    JSON_OPTION,
    OUTPUT_OPTION,
    WIDE_OPTION,
    Format,
    wants_json,
)
from gatepass.cli.output import cell, print_table, safe_json, stdout_console
from gatepass.cli.tables import Column
from gatepass.errors import InvalidRequestError

__all__ = ["parse_since", "tail"]

_POLL_SECONDS: Final = 1.0
_COLUMNS: Final = (
    Column("seq", "seq", "word"),
    Column("at", "at", "time"),
    Column("kind", "kind", "word"),
    Column("outcome", "outcome", "word"),
    Column("actor", "actor", "id", drop=2),
    Column("subject", "subject", "id", drop=3),
    Column("detail", "detail", "text", drop=1),
)
# The details worth a glance in a table, in this order; the rest is in -o json.
_DETAIL_KEYS: Final = (
    "name",
    "role",
    "target",
    "actions",
    "purpose",
    "intent",
    "environment",
    "lease_id",
    "reason",
    "route",
    "method",
    "path",
    "status",
    "revoked_leases",
    "closed_tasks",
)
_LISTED: Final = 3
_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


def parse_since(value: str, now: dt.datetime) -> dt.datetime:
    """
    Read ``--since``: a duration back from now, or a time.

    A duration is a whole number of seconds, minutes, hours or days (``30s``,
    ``10m``, ``2h``, ``1d``); a time is ISO 8601 with a zone.

    Raises:
        InvalidRequestError: it is neither.
    """
    found = _DURATION.match(value.strip())
    if found is not None:
        amount, unit = int(found.group(1)), found.group(2)
        try:
            return now - dt.timedelta(seconds=amount * _UNITS[unit])
        except OverflowError:
            raise InvalidRequestError("--since goes back past year 1") from None
    try:
        moment = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise InvalidRequestError(
            "--since must be a duration such as 10m, 2h or 1d, or an ISO 8601 "
            "time with a zone such as 2026-01-06T10:00:00Z"
        )
    return moment


def _detail(event: Mapping[str, Any]) -> str:
    """Summarize a record's details: a refusal's reason, else a few key fields."""
    data = event.get("data")
    if not isinstance(data, Mapping):
        return ""
    if isinstance(data.get("detail"), str):
        return f"{data.get('error', 'refused')}: {data['detail']}"
    parts: list[str] = []
    for key in _DETAIL_KEYS:
        value = data.get(key)
        if value in (None, "", [], {}):
            continue
        if isinstance(value, list) and len(value) > _LISTED:
            parts.append(f"{key}={len(value)}")
        else:
            parts.append(f"{key}={cell(value)}")
    return " ".join(parts)


class _Printer:
    """Prints pages of events: JSON lines, or one table whose headers come once."""

    def __init__(self, *, as_json: bool, wide: bool, names: AgentNames) -> None:
        self._as_json = as_json
        self._wide = wide
        self._names = names
        self._columns: Sequence[Column] = _COLUMNS
        self._widths: dict[str, int] = {}
        self._headed = False
        self._said_empty = False

    def _row(self, event: Mapping[str, Any]) -> dict[str, Any]:
        row = dict(event)
        actor = event.get("actor")
        if isinstance(actor, str) and actor.startswith("agt_"):
            row["actor"] = self._names.name(actor) or actor
        row["detail"] = _detail(event)
        return row

    def page(self, events: list[dict[str, Any]]) -> None:
        if self._as_json:
            for event in events:
                # Agent-chosen text must not drive the terminal (cli/output.py).
                typer.echo(safe_json(event))
            return
        if not events:
            # Said once, and only before any event: polls that find nothing are
            # silent.
            if not self._headed and not self._said_empty:
                stdout_console().print("no audit events")
                self._said_empty = True
            return
        laid = print_table(
            [self._row(event) for event in events],
            self._columns,
            wide=self._wide,
            show_header=not self._headed,
            at_least=self._widths,
        )
        if laid is not None:
            # Later pages keep the first one's columns, at least as wide.
            self._headed = True
            self._columns = laid.shown
            for key, width in laid.widths.items():
                self._widths[key] = max(width, self._widths.get(key, 0))


def tail(
    after: int | None = typer.Option(
        None, "--after", min=0, help="start after this seq (default: the newest events)"
    ),
    limit: int = typer.Option(
        100,
        "--limit",
        "-n",
        min=1,
        max=1000,
        help="at most this many events (per poll with --follow)",
    ),
    follow: bool = typer.Option(
        False, "--follow", "-f", help="keep polling every second until Ctrl-C"
    ),
    agent: str | None = typer.Option(
        None, "--agent", "-a", help="only events of this agent (an id or a name)"
    ),
    task: str | None = typer.Option(None, "--task", help="only events of this task id"),
    kind: str | None = typer.Option(
        None,
        "--kind",
        "-k",
        help="only this kind (task.open) or family of kinds (task)",
    ),
    outcome: Outcome | None = typer.Option(
        None, "--outcome", help="only this outcome", case_sensitive=False
    ),
    since: str | None = typer.Option(
        None,
        "--since",
        help="only events since a duration ago (10m, 2h, 1d) or an ISO 8601 time",
    ),
    output: Format = OUTPUT_OPTION,
    wide: bool = WIDE_OPTION,
    as_json: bool = JSON_OPTION,
    addr: str | None = ADDR_OPTION,
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Show the newest audit events as a table (or JSON lines with -o json)."""
    connector = current_connector()
    filters: dict[str, str | int] = {}
    if since is not None:
        filters["since"] = parse_since(since, connector.clock.now()).isoformat()
    chosen = {
        "task": task,
        "kind": kind,
        "outcome": None if outcome is None else outcome.value,
    }
    filters.update({key: value for key, value in chosen.items() if value is not None})
    with admin_client(addr, config) as client:
        names = AgentNames(client)
        if agent is not None:
            filters["agent"] = names.resolve(agent)
        printer = _Printer(as_json=wants_json(output, as_json), wide=wide, names=names)
        try:
            while True:
                query: dict[str, str | int] = (
                    {"last": limit}
                    if after is None
                    else {"after": after, "limit": limit}
                )
                answer = client.get("/v1/audit/events", {**query, **filters})
                printer.page(answer["items"])
                after = int(answer["next"])
                if not follow:
                    return
                # A full page means more is waiting: fetch it without pausing.
                if len(answer["items"]) < limit:
                    connector.wait(_POLL_SECONDS)
        except KeyboardInterrupt:
            # Ctrl-C is how --follow ends; it is not a failure.
            return
