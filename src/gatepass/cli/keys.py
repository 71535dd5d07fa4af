"""``gatepass keys``: the token signing keys and their rotation."""

from __future__ import annotations

import typer

from gatepass.cli.client import admin_client
from gatepass.cli.output import JSON_OPTION, print_json, print_table

__all__ = ["app"]

app = typer.Typer(help="List and rotate token signing keys.", no_args_is_help=True)

_COLUMNS = [
    ("kid", "kid"),
    ("alg", "alg"),
    ("state", "state"),
    ("created_at", "created"),
    ("activated_at", "activated"),
    ("retired_at", "retired"),
]


@app.command("list")
def list_keys(as_json: bool = JSON_OPTION) -> None:
    """List signing keys: the next, the current and the retired ones."""
    with admin_client() as client:
        answer = client.get("/v1/keys")
    if as_json:
        print_json(answer)
        return
    print_table(answer["items"], _COLUMNS, empty="no signing keys")


@app.command("rotate")
def rotate(as_json: bool = JSON_OPTION) -> None:
    """Rotate: the next key becomes current and a new next key is published."""
    with admin_client() as client:
        answer = client.post("/v1/keys/rotate")
    if as_json:
        print_json(answer)
        return
    print_table(answer["items"], _COLUMNS, title="signing keys after rotation")
