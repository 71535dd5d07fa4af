"""
``gatepass console``: the web console from the command line.

``login`` prints a one-time login link (single use, at most five minutes): with an
operator's own token, for that operator; with the admin token, for ``--operator``
(or the quickstart's ``[console] bootstrap_operator``). An approver's link is made
with the approver's own token only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from gatepass.cli.client import admin_client
from gatepass.cli.options import (
    ADDR_OPTION,
    CONFIG_OPTION,
    JSON_OPTION,
    OUTPUT_OPTION,
    Format,
    wants_json,
)
from gatepass.cli.output import print_json

__all__ = ["app"]

app = typer.Typer(help="The web console at /console.", no_args_is_help=True)


@app.command("login")
def login(
    operator: str | None = typer.Option(
        None, "--operator", "-u", help="the operator to sign in as"
    ),
    output: Format = OUTPUT_OPTION,
    as_json: bool = JSON_OPTION,
    addr: str | None = ADDR_OPTION,
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Print a one-time login link for the console (valid once, for minutes)."""
    body: dict[str, Any] = {} if operator is None else {"operator": operator}
    with admin_client(addr, config) as client:
        answer = client.post("/v1/admin/console/links", body)
    if wants_json(output, as_json):
        print_json(answer)
        return
    typer.echo(
        f"sign in as {answer['operator']} (once, until {answer['expires_at']}):",
        err=True,
    )
    typer.echo(answer["url"])
