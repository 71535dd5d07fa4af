"""
``gatepass operators``: the named humans who administer, approve and audit.

``add`` prints the operator's first token once; ``token`` makes another. ``gatepass
whoami`` (also here) shows who the broker takes the current token for.
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
from gatepass.cli.output import print_json, print_record, print_table
from gatepass.cli.tables import Column
from gatepass.cli.tokens import TOKEN_COLUMNS, print_issued

__all__ = ["app", "whoami"]

app = typer.Typer(
    help="Add, list and disable operators; make their tokens.", no_args_is_help=True
)

_COLUMNS = [
    Column("id", "id", "id"),
    Column("name", "name", "text"),
    Column("roles", "roles", "text"),
    Column("groups", "groups", "text"),
    Column("tenants", "tenants", "text"),
    Column("status", "status", "word"),
    Column("created_at", "created", "time"),
]
_OPERATORS = "/v1/admin/operators"


def _show(operator: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        print_json(operator)
        return
    tokens = operator.get("tokens")
    shown = {key: value for key, value in operator.items() if key != "tokens"}
    print_record(shown, title=f"operator {operator.get('name', '')}")
    if isinstance(tokens, list):
        print_table(tokens, TOKEN_COLUMNS, title="tokens", empty="no tokens")


@app.command("add")
def add(
    name: str = typer.Argument(..., help="the operator's name, unique: [a-z0-9._-]"),
    role: list[str] = typer.Option(
        ..., "--role", "-r", help="admin, approver or auditor; repeat for more"
    ),
    group: list[str] = typer.Option(
        [], "--group", "-g", help="an approver group they belong to; repeatable"
    ),
    tenant: list[str] = typer.Option(
        [], "--tenant", "-t", help="a tenant they may act on, or '*'; repeatable"
    ),
    description: str = typer.Option(
        "", "--description", "-d", help="what their first token is for"
    ),
    output: Format = OUTPUT_OPTION,
    as_json: bool = JSON_OPTION,
    addr: str | None = ADDR_OPTION,
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Add an operator; their first token is printed once."""
    body: dict[str, Any] = {
        "name": name,
        "roles": role,
        "groups": group,
        "tenants": tenant,
    }
    if description:
        body["description"] = description
    with admin_client(addr, config) as client:
        answer = client.post(_OPERATORS, body)
    print_issued(answer, as_json=wants_json(output, as_json))


@app.command("list")
def list_operators(
    status: str | None = typer.Option(
        None, "--status", "-s", help="only this status (active, disabled)"
    ),
    output: Format = OUTPUT_OPTION,
    as_json: bool = JSON_OPTION,
    addr: str | None = ADDR_OPTION,
    config: Path | None = CONFIG_OPTION,
) -> None:
    """List operators."""
    params = {} if status is None else {"status": status}
    with admin_client(addr, config) as client:
        answer = client.get(_OPERATORS, params)
    if wants_json(output, as_json):
        print_json(answer)
        return
    print_table(answer["items"], _COLUMNS, empty="no operators")


@app.command("show")
def show(
    name: str = typer.Argument(..., help="the operator's name"),
    output: Format = OUTPUT_OPTION,
    as_json: bool = JSON_OPTION,
    addr: str | None = ADDR_OPTION,
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Show one operator and their tokens (ids and dates, never a token)."""
    with admin_client(addr, config) as client:
        operator = client.get(resource_path(_OPERATORS, name))
    _show(operator, as_json=wants_json(output, as_json))


@app.command("disable")
def disable(
    name: str = typer.Argument(..., help="the operator's name"),
    output: Format = OUTPUT_OPTION,
    as_json: bool = JSON_OPTION,
    addr: str | None = ADDR_OPTION,
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Disable an operator: every token they hold is revoked at once."""
    with admin_client(addr, config) as client:
        operator = client.post(resource_path(_OPERATORS, name, "disable"))
    _show(operator, as_json=wants_json(output, as_json))


@app.command("token")
def token(
    name: str = typer.Argument(..., help="the operator's name"),
    description: str = typer.Option(
        "", "--description", "-d", help="what the token is for"
    ),
    output: Format = OUTPUT_OPTION,
    as_json: bool = JSON_OPTION,
    addr: str | None = ADDR_OPTION,
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Make another token for an operator; it is printed once."""
    body = {"description": description} if description else None
    with admin_client(addr, config) as client:
        answer = client.post(resource_path(_OPERATORS, name, "tokens"), body)
    print_issued(answer, as_json=wants_json(output, as_json))


def whoami(
    output: Format = OUTPUT_OPTION,
    as_json: bool = JSON_OPTION,
    addr: str | None = ADDR_OPTION,
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Show who the broker takes the current token for, and what it may do."""
    with admin_client(addr, config) as client:
        answer = client.get("/v1/admin/whoami")
    if wants_json(output, as_json):
        print_json(answer)
        return
    print_record(answer, title=str(answer.get("actor", "")))
