"""``gatepass leases``: list, show and revoke credential leases."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from gatepass.cli.client import admin_client, resource_path
from gatepass.cli.names import AgentNames, with_agent_names
from gatepass.cli.options import (
    ADDR_OPTION,
    CONFIG_OPTION,
    JSON_OPTION,
    OUTPUT_OPTION,
    WIDE_OPTION,
    Format,
    wants_json,
)
from gatepass.cli.output import print_json, print_record, print_table
from gatepass.cli.tables import Column

__all__ = ["LEASE_COLUMNS", "app"]

app = typer.Typer(help="Inspect and revoke credential leases.", no_args_is_help=True)

LEASE_COLUMNS = [
    Column("id", "id", "id"),
    Column("agent", "agent", "text", drop=3),
    Column("agent_id", "agent id", "id", wide=True),
    Column("task_id", "task", "id", drop=4),
    Column("target", "target", "text", drop=2),
    Column("kind", "kind", "word", drop=5),
    Column("actions", "actions", "text", drop=6),
    Column("state", "state", "word"),
    Column("issued_at", "issued", "time", wide=True),
    Column("expires_at", "expires", "time", drop=1),
    # A revocation a target refused shows here until it succeeds.
    Column("attempts", "revoke attempts", "word", wide=True),
    Column("last_error", "last error", "text", wide=True),
]


def print_leases(
    leases: list[dict[str, Any]],
    names: AgentNames,
    *,
    wide: bool,
    title: str | None = None,
) -> None:
    """Print leases as a table, with their agents' names."""
    print_table(
        with_agent_names(leases, names),
        LEASE_COLUMNS,
        wide=wide,
        title=title,
        empty="no leases",
    )


@app.command("list")
def list_leases(
    state: str | None = typer.Option(
        None,
        "--state",
        "-s",
        help="only this state (pending, active, revoking, revoked, expired)",
    ),
    task: str | None = typer.Option(None, "--task", help="only this task id"),
    limit: int = typer.Option(100, "--limit", "-n", min=1, max=1000, help="at most"),
    output: Format = OUTPUT_OPTION,
    wide: bool = WIDE_OPTION,
    as_json: bool = JSON_OPTION,
    addr: str | None = ADDR_OPTION,
    config: Path | None = CONFIG_OPTION,
) -> None:
    """List leases, newest first."""
    params: dict[str, str | int] = {"limit": limit}
    if state is not None:
        params["state"] = state
    if task is not None:
        params["task_id"] = task
    with admin_client(addr, config) as client:
        answer = client.get("/v1/leases", params)
        if wants_json(output, as_json):
            print_json(answer)
            return
        print_leases(answer["items"], AgentNames(client), wide=wide)


def _print_lease(lease: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        print_json(lease)
        return
    print_record(lease, title=f"lease {lease.get('id', '')}")


@app.command("show")
def show(
    lease_id: str = typer.Argument(..., metavar="ID", help="the lease id (lse_…)"),
    output: Format = OUTPUT_OPTION,
    as_json: bool = JSON_OPTION,
    addr: str | None = ADDR_OPTION,
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Show one lease."""
    with admin_client(addr, config) as client:
        lease = client.get(resource_path("/v1/leases", lease_id))
    _print_lease(lease, as_json=wants_json(output, as_json))


@app.command("revoke")
def revoke(
    lease_id: str = typer.Argument(..., metavar="ID", help="the lease id (lse_…)"),
    output: Format = OUTPUT_OPTION,
    as_json: bool = JSON_OPTION,
    addr: str | None = ADDR_OPTION,
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Revoke a lease at once."""
    with admin_client(addr, config) as client:
        lease = client.post(resource_path("/v1/leases", lease_id, "revoke"))
    _print_lease(lease, as_json=wants_json(output, as_json))
