"""
``gatepass tokens``: one revocable API token per resource server, proxy or operator.

``create`` prints the token once, alone on standard output (so
``TOKEN=$(gatepass tokens create …)`` works), with a note on standard error; the
broker keeps only its hash. ``revoke`` takes effect at the token's next request.
"""

from __future__ import annotations

import enum
from pathlib import Path

import typer

from gatepass.cli.client import admin_client, resource_path
from gatepass.cli.options import (
    ADDR_OPTION,
    CONFIG_OPTION,
    JSON_OPTION,
    OUTPUT_OPTION,
    WIDE_OPTION,
    Format,
    wants_json,
)
from gatepass.cli.output import print_json, print_table, stderr_console
from gatepass.cli.tables import Column

__all__ = ["app"]

app = typer.Typer(
    help="Create, list and revoke API tokens (introspect, proxy, admin).",
    no_args_is_help=True,
)

_COLUMNS = [
    Column("id", "id", "id"),
    Column("name", "name", "text"),
    Column("role", "role", "word"),
    Column("created_at", "created", "time", drop=1),
]


class Role(enum.StrEnum):
    """What an API token may do."""

    INTROSPECT = "introspect"
    PROXY = "proxy"
    ADMIN = "admin"


@app.command("create")
def create(
    role: Role = typer.Option(
        ...,
        "--role",
        "-r",
        help="introspect (a resource server), proxy (the credential-injecting "
        "proxy) or admin (everything)",
    ),
    name: str = typer.Option(
        ..., "--name", "-n", help="who holds it, unique enough to tell: [a-z0-9._-]"
    ),
    output: Format = OUTPUT_OPTION,
    as_json: bool = JSON_OPTION,
    addr: str | None = ADDR_OPTION,
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Create an API token; it is shown once and stored only as a hash."""
    with admin_client(addr, config) as client:
        answer = client.post("/v1/tokens", {"role": role.value, "name": name})
    if wants_json(output, as_json):
        print_json(answer)
        return
    stderr_console().print(
        f"created {answer['role']} token {answer['id']} for {answer['name']}; it "
        "is shown once, below: store it now (gatepass tokens revoke "
        f"{answer['id']} ends it)",
        markup=False,
        soft_wrap=True,
    )
    # Alone on stdout, so that a script can capture it; never logged.
    typer.echo(answer["token"])


@app.command("list")
def list_tokens(
    output: Format = OUTPUT_OPTION,
    wide: bool = WIDE_OPTION,
    as_json: bool = JSON_OPTION,
    addr: str | None = ADDR_OPTION,
    config: Path | None = CONFIG_OPTION,
) -> None:
    """List live API tokens (never the tokens themselves)."""
    with admin_client(addr, config) as client:
        answer = client.get("/v1/tokens")
    if wants_json(output, as_json):
        print_json(answer)
        return
    print_table(answer["items"], _COLUMNS, wide=wide, empty="no api tokens")


@app.command("revoke")
def revoke(
    token_id: str = typer.Argument(..., metavar="ID", help="the token id (tok_…)"),
    output: Format = OUTPUT_OPTION,
    as_json: bool = JSON_OPTION,
    addr: str | None = ADDR_OPTION,
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Revoke an API token: its next request is refused."""
    with admin_client(addr, config) as client:
        answer = client.post(resource_path("/v1/tokens", token_id, "revoke"))
    if wants_json(output, as_json):
        print_json(answer)
        return
    print_table([answer], _COLUMNS, title="revoked")
