"""``gatepass tasks``: list, show and close agent tasks."""

from __future__ import annotations

from typing import Any

import typer

from gatepass.cli.client import admin_client, resource_path
from gatepass.cli.leases import LEASE_COLUMNS
from gatepass.cli.output import JSON_OPTION, print_json, print_record, print_table

__all__ = ["app"]

app = typer.Typer(help="Inspect and close agent tasks.", no_args_is_help=True)

_COLUMNS = [
    ("id", "id"),
    ("agent_id", "agent"),
    ("tenant", "tenant"),
    ("environment", "env"),
    ("purpose", "purpose"),
    ("state", "state"),
    ("created_at", "created"),
    ("expires_at", "expires"),
]


def _show(task: dict[str, Any]) -> None:
    leases = task.get("leases")
    print_record(
        {key: value for key, value in task.items() if key != "leases"},
        title=f"task {task.get('id', '')}",
    )
    if isinstance(leases, list):
        print_table(leases, LEASE_COLUMNS, title="leases", empty="no leases")


@app.command("list")
def list_tasks(
    state: str | None = typer.Option(
        None, "--state", "-s", help="only tasks in this state (open, closed, expired)"
    ),
    agent: str | None = typer.Option(None, "--agent", "-a", help="only this agent id"),
    limit: int = typer.Option(100, "--limit", "-n", min=1, max=1000, help="at most"),
    as_json: bool = JSON_OPTION,
) -> None:
    """List tasks, newest first."""
    params: dict[str, str | int] = {"limit": limit}
    if state is not None:
        params["state"] = state
    if agent is not None:
        params["agent_id"] = agent
    with admin_client() as client:
        answer = client.get("/v1/tasks", params)
    if as_json:
        print_json(answer)
        return
    print_table(answer["items"], _COLUMNS, empty="no tasks")


@app.command("show")
def show(
    task_id: str = typer.Argument(..., metavar="ID", help="the task id (tsk_…)"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Show one task with its leases."""
    with admin_client() as client:
        task = client.get(resource_path("/v1/tasks", task_id))
    if as_json:
        print_json(task)
        return
    _show(task)


@app.command("close")
def close(
    task_id: str = typer.Argument(..., metavar="ID", help="the task id (tsk_…)"),
    reason: str | None = typer.Option(
        None, "--reason", "-r", help="why, for the audit log"
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Close a task and revoke its leases."""
    body = {"reason": reason} if reason is not None else None
    with admin_client() as client:
        task = client.post(resource_path("/v1/tasks", task_id, "close"), body)
    if as_json:
        print_json(task)
        return
    print_record(task, title=f"task {task.get('id', '')}")
