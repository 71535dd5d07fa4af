"""
``gatepass ssf``: the Shared Signals transmitter's receivers and streams.

``receivers add`` registers a receiver (an ``ssf_receiver`` token limited to some
targets) and prints its token once, alone on stdout; ``receivers list`` shows
them; ``streams`` shows every stream with its status and how many SETs it has not
delivered.
Receivers manage their own streams over the API (docs/ssf.md).
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from gatepass.cli.client import admin_client
from gatepass.cli.options import (
    ADDR_OPTION,
    CONFIG_OPTION,
    JSON_OPTION,
    OUTPUT_OPTION,
    Format,
    wants_json,
)
from gatepass.cli.output import (
    print_json,
    print_table,
    stderr_console,
    terminal_safe,
)
from gatepass.cli.tables import Column

__all__ = ["app"]

app = typer.Typer(
    help="Shared Signals (SSF) receivers and streams: revocations as CAEP events.",
    no_args_is_help=True,
)
receivers = typer.Typer(help="Register and list SSF receivers.", no_args_is_help=True)
app.add_typer(receivers, name="receivers")

RECEIVER_COLUMNS = [
    Column("token_id", "token", "id"),
    Column("description", "description", "text"),
    Column("audiences", "audiences", "text"),
    Column("created_at", "created", "time"),
    Column("revoked", "revoked", "word"),
]
STREAM_COLUMNS = [
    Column("stream_id", "stream", "id"),
    Column("token_id", "receiver", "id"),
    Column("method", "method", "word"),
    Column("audiences", "audiences", "text"),
    Column("status", "status", "word"),
    Column("undelivered", "undelivered", "word"),
    Column("active_at", "active", "time"),
]
_NOT_AGAIN = "this token will not be shown again: store it now, e.g. in a secret store"


@receivers.command("add")
def add(
    audience: list[str] = typer.Option(
        ..., "--audience", "-a", help="a target name or URI it may hear about (repeat)"
    ),
    description: str = typer.Option(
        ..., "--description", "-d", help="what the receiver is (1-200 characters)"
    ),
    output: Format = OUTPUT_OPTION,
    as_json: bool = JSON_OPTION,
    addr: str | None = ADDR_OPTION,
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Register a receiver; its ssf_receiver token is printed once."""
    with admin_client(addr, config) as client:
        answer = client.post(
            "/v1/admin/ssf/receivers",
            {"description": description, "audiences": audience},
        )
    if wants_json(output, as_json):
        print_json(answer)
    else:
        # The details go to stderr and the token alone to stdout, as with
        # `gatepass tokens create`: TOKEN=$(gatepass ssf receivers add …).
        audiences = ", ".join(str(name) for name in answer.get("audiences", []))
        stderr_console().print(
            escape(terminal_safe(f"receiver {answer.get('token_id', '')}: {audiences}"))
        )
        # Plain echo, not Rich: a token must never be wrapped or styled.
        typer.echo(str(answer["token"]))
    stderr_console().print(_NOT_AGAIN)


@receivers.command("list")
def list_receivers(
    output: Format = OUTPUT_OPTION,
    as_json: bool = JSON_OPTION,
    addr: str | None = ADDR_OPTION,
    config: Path | None = CONFIG_OPTION,
) -> None:
    """List receivers: their token ids, audiences and dates, never a token."""
    with admin_client(addr, config) as client:
        answer = client.get("/v1/admin/ssf/receivers")
    if wants_json(output, as_json):
        print_json(answer)
        return
    items = [
        {**item, "audiences": ", ".join(item["audiences"])}
        for item in answer["receivers"]
    ]
    print_table(items, RECEIVER_COLUMNS, empty="no ssf receivers")


@app.command("streams")
def streams(
    output: Format = OUTPUT_OPTION,
    as_json: bool = JSON_OPTION,
    addr: str | None = ADDR_OPTION,
    config: Path | None = CONFIG_OPTION,
) -> None:
    """List every stream: receiver, delivery, status, SETs not yet delivered."""
    with admin_client(addr, config) as client:
        answer = client.get("/v1/admin/ssf/streams")
    if wants_json(output, as_json):
        print_json(answer)
        return
    items = [
        {**item, "audiences": ", ".join(item["audiences"])} for item in answer["items"]
    ]
    print_table(items, STREAM_COLUMNS, empty="no ssf streams")
