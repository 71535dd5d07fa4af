"""``gatepass targets``: the targets the broker is configured with."""

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

app = typer.Typer(help="Show the configured targets.", no_args_is_help=True)

_COLUMNS = [
    Column("name", "name", "word"),
    Column("uri", "uri", "text", drop=2),
    Column("kind", "kind", "word", drop=4),
    Column("environment", "env", "word"),
    Column("tenant", "tenant", "word", drop=3),
    Column("risk", "risk", "word", drop=5),
    Column("actions", "actions", "text", drop=1),
    Column("max_ttl_seconds", "max ttl (s)", "word", wide=True),
]


@app.command("list")
def list_targets(
    output: Format = OUTPUT_OPTION,
    wide: bool = WIDE_OPTION,
    as_json: bool = JSON_OPTION,
    addr: str | None = ADDR_OPTION,
    config: Path | None = CONFIG_OPTION,
) -> None:
    """List the configured targets."""
    with admin_client(addr, config) as client:
        answer = client.get("/v1/targets")
    if wants_json(output, as_json):
        print_json(answer)
        return
    print_table(answer["items"], _COLUMNS, wide=wide, empty="no targets configured")
