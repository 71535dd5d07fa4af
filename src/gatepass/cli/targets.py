"""``gatepass targets``: the targets the broker is configured with."""

from __future__ import annotations

import typer

from gatepass.cli.client import admin_client
from gatepass.cli.output import JSON_OPTION, print_json, print_table

__all__ = ["app"]

app = typer.Typer(help="Show the configured targets.", no_args_is_help=True)

_COLUMNS = [
    ("name", "name"),
    ("uri", "uri"),
    ("kind", "kind"),
    ("environment", "env"),
    ("tenant", "tenant"),
    ("risk", "risk"),
    ("actions", "actions"),
    ("max_ttl_seconds", "max ttl (s)"),
]


@app.command("list")
def list_targets(as_json: bool = JSON_OPTION) -> None:
    """List the configured targets."""
    with admin_client() as client:
        answer = client.get("/v1/targets")
    if as_json:
        print_json(answer)
        return
    print_table(answer["items"], _COLUMNS, empty="no targets configured")
