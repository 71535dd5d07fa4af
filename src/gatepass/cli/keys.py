"""``gatepass keys``: the token signing keys and their rotation."""

from __future__ import annotations

from pathlib import Path

import typer

from gatepass.cli.client import admin_client
from gatepass.cli.options import (
    ADDR_OPTION,
    CONFIG_OPTION,
    JSON_OPTION,
    OUTPUT_OPTION,
    WIDE_OPTION,
    Format,
    wants_json,
)
from gatepass.cli.output import print_json, print_table
from gatepass.cli.tables import Column

__all__ = ["app"]

app = typer.Typer(help="List and rotate token signing keys.", no_args_is_help=True)

_COLUMNS = [
    Column("kid", "kid", "id"),
    Column("alg", "alg", "word"),
    Column("state", "state", "word"),
    Column("created_at", "created", "time", drop=3),
    Column("activated_at", "activated", "time", drop=2),
    Column("retired_at", "retired", "time", drop=1),
]


@app.command("list")
def list_keys(
    output: Format = OUTPUT_OPTION,
    wide: bool = WIDE_OPTION,
    as_json: bool = JSON_OPTION,
    addr: str | None = ADDR_OPTION,
    config: Path | None = CONFIG_OPTION,
) -> None:
    """List signing keys: the next, the current and the retired ones."""
    with admin_client(addr, config) as client:
        answer = client.get("/v1/keys")
    if wants_json(output, as_json):
        print_json(answer)
        return
    print_table(answer["items"], _COLUMNS, wide=wide, empty="no signing keys")


@app.command("rotate")
def rotate(
    output: Format = OUTPUT_OPTION,
    as_json: bool = JSON_OPTION,
    addr: str | None = ADDR_OPTION,
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Rotate: the next key becomes current and a new next key is published."""
    with admin_client(addr, config) as client:
        answer = client.post("/v1/keys/rotate")
    if wants_json(output, as_json):
        print_json(answer)
        return
    print_table(answer["items"], _COLUMNS, title="signing keys after rotation")
