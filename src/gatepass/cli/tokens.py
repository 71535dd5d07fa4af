"""
``gatepass tokens``: API tokens for resource servers, proxies and automation.

``create`` makes a service token (``introspect``, ``proxy`` or ``admin``) and prints
it once; ``list`` shows every API token (operators' too) by id, never the token;
``revoke`` ends one at once. Operators' own tokens come from ``gatepass operators``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from gatepass.cli.client import admin_client, resource_path
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
    print_record,
    print_table,
    stderr_console,
)
from gatepass.cli.tables import Column

__all__ = ["TOKEN_COLUMNS", "app", "print_issued"]

app = typer.Typer(
    help="Create, list and revoke API tokens (service tokens).", no_args_is_help=True
)

TOKEN_COLUMNS = [
    Column("id", "id", "id"),
    Column("role", "role", "word"),
    Column("operator", "operator", "text"),
    Column("description", "description", "text"),
    Column("state", "state", "word"),
    Column("created_at", "created", "time"),
    Column("revoked_at", "revoked", "time"),
]

_NOT_AGAIN = "this token will not be shown again: store it now, e.g. in a secret store"


def print_issued(answer: dict[str, Any], *, as_json: bool) -> None:
    """
    Print an answer that holds a new token, the one time it is shown.

    Args:
        answer: the API's answer (``token``, ``record``, maybe ``operator``).
        as_json: print the API's JSON as is.
    """
    if as_json:
        print_json(answer)
    else:
        # The details go to stderr and the token alone to stdout, so that
        # TOKEN=$(gatepass tokens create …) captures exactly the token.
        if isinstance(answer.get("operator"), dict):
            operator = answer["operator"]
            print_record(
                operator,
                title=f"operator {operator.get('name', '')}",
                to_stderr=True,
            )
        print_record(
            answer["record"],
            title=f"token {answer.get('token_id', '')}",
            to_stderr=True,
        )
        # Plain echo, not Rich: a token must never be wrapped or styled.
        typer.echo(str(answer["token"]))
    stderr_console().print(_NOT_AGAIN)


@app.command("create")
def create(
    role: str = typer.Option(
        ..., "--role", "-r", help="introspect (resource servers), proxy or admin"
    ),
    description: str = typer.Option(
        ..., "--description", "-d", help="what the token is for (1-200 characters)"
    ),
    output: Format = OUTPUT_OPTION,
    as_json: bool = JSON_OPTION,
    addr: str | None = ADDR_OPTION,
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Make a service token; it is printed once."""
    with admin_client(addr, config) as client:
        answer = client.post(
            "/v1/admin/tokens", {"role": role, "description": description}
        )
    print_issued(answer, as_json=wants_json(output, as_json))


@app.command("list")
def list_tokens(
    output: Format = OUTPUT_OPTION,
    as_json: bool = JSON_OPTION,
    addr: str | None = ADDR_OPTION,
    config: Path | None = CONFIG_OPTION,
) -> None:
    """List API tokens: ids, roles, operators and dates, never a token."""
    with admin_client(addr, config) as client:
        answer = client.get("/v1/admin/tokens")
    if wants_json(output, as_json):
        print_json(answer)
        return
    print_table(answer["items"], TOKEN_COLUMNS, empty="no api tokens")


@app.command("revoke")
def revoke(
    token_id: str = typer.Argument(..., metavar="ID", help="the token id (tok_…)"),
    output: Format = OUTPUT_OPTION,
    as_json: bool = JSON_OPTION,
    addr: str | None = ADDR_OPTION,
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Revoke an API token (a service token or an operator's); it stops at once."""
    with admin_client(addr, config) as client:
        token = client.post(resource_path("/v1/admin/tokens", token_id, "revoke"))
    if wants_json(output, as_json):
        print_json(token)
        return
    print_record(token, title=f"token {token.get('id', '')}")
