"""``gatepass leases``: list, show and revoke credential leases."""

from __future__ import annotations

import typer

from gatepass.cli.client import admin_client, resource_path
from gatepass.cli.output import JSON_OPTION, print_json, print_record, print_table

__all__ = ["LEASE_COLUMNS", "app"]

app = typer.Typer(help="Inspect and revoke credential leases.", no_args_is_help=True)

LEASE_COLUMNS = [
    ("id", "id"),
    ("task_id", "task"),
    ("target", "target"),
    ("kind", "kind"),
    ("actions", "actions"),
    ("state", "state"),
    ("issued_at", "issued"),
    ("expires_at", "expires"),
    # A revocation a target refused shows here until it succeeds.
    ("attempts", "revoke attempts"),
    ("last_error", "last error"),
]


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
    as_json: bool = JSON_OPTION,
) -> None:
    """List leases, newest first."""
    params: dict[str, str | int] = {"limit": limit}
    if state is not None:
        params["state"] = state
    if task is not None:
        params["task_id"] = task
    with admin_client() as client:
        answer = client.get("/v1/leases", params)
    if as_json:
        print_json(answer)
        return
    print_table(answer["items"], LEASE_COLUMNS, empty="no leases")


@app.command("show")
def show(
    lease_id: str = typer.Argument(..., metavar="ID", help="the lease id (lse_…)"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Show one lease."""
    with admin_client() as client:
        lease = client.get(resource_path("/v1/leases", lease_id))
    if as_json:
        print_json(lease)
        return
    print_record(lease, title=f"lease {lease.get('id', '')}")


@app.command("revoke")
def revoke(
    lease_id: str = typer.Argument(..., metavar="ID", help="the lease id (lse_…)"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Revoke a lease at once."""
    with admin_client() as client:
        lease = client.post(resource_path("/v1/leases", lease_id, "revoke"))
    if as_json:
        print_json(lease)
        return
    print_record(lease, title=f"lease {lease.get('id', '')}")
