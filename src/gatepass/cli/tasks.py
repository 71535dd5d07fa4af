"""``gatepass tasks``: list, show, close agent tasks, and show delegation trees."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from gatepass.cli.client import admin_client, resource_path
from gatepass.cli.leases import print_leases
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
from gatepass.cli.task_tree import render_tree

__all__ = ["app"]

app = typer.Typer(help="Inspect and close agent tasks.", no_args_is_help=True)

_COLUMNS = [
    Column("id", "id", "id"),
    Column("agent", "agent", "text", drop=2),
    Column("agent_id", "agent id", "id", wide=True),
    Column("tenant", "tenant", "word", drop=4),
    Column("environment", "env", "word", drop=3),
    Column("purpose", "purpose", "text", drop=5),
    Column("state", "state", "word"),
    Column("created_at", "created", "time", wide=True),
    Column("expires_at", "expires", "time", drop=1),
]


@app.command("list")
def list_tasks(
    state: str | None = typer.Option(
        None, "--state", "-s", help="only tasks in this state (open, closed, expired)"
    ),
    agent: str | None = typer.Option(
        None, "--agent", "-a", help="only this agent (an id or a name)"
    ),
    limit: int = typer.Option(100, "--limit", "-n", min=1, max=1000, help="at most"),
    output: Format = OUTPUT_OPTION,
    wide: bool = WIDE_OPTION,
    as_json: bool = JSON_OPTION,
    addr: str | None = ADDR_OPTION,
    config: Path | None = CONFIG_OPTION,
) -> None:
    """List tasks, newest first."""
    params: dict[str, str | int] = {"limit": limit}
    if state is not None:
        params["state"] = state
    with admin_client(addr, config) as client:
        names = AgentNames(client)
        if agent is not None:
            params["agent_id"] = names.resolve(agent)
        answer = client.get("/v1/tasks", params)
        if wants_json(output, as_json):
            print_json(answer)
            return
        print_table(
            with_agent_names(answer["items"], names),
            _COLUMNS,
            wide=wide,
            empty="no tasks",
        )


def _show(task: dict[str, Any], names: AgentNames, *, wide: bool) -> None:
    leases = task.get("leases")
    record = {key: value for key, value in task.items() if key != "leases"}
    agent_id = record.get("agent_id")
    if isinstance(agent_id, str):
        record["agent"] = names.name(agent_id) or agent_id
    print_record(record, title=f"task {task.get('id', '')}")
    if isinstance(leases, list):
        print_leases(leases, names, wide=wide, title="leases")


@app.command("show")
def show(
    task_id: str = typer.Argument(..., metavar="ID", help="the task id (tsk_…)"),
    output: Format = OUTPUT_OPTION,
    wide: bool = WIDE_OPTION,
    as_json: bool = JSON_OPTION,
    addr: str | None = ADDR_OPTION,
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Show one task with its leases."""
    with admin_client(addr, config) as client:
        task = client.get(resource_path("/v1/tasks", task_id))
        if wants_json(output, as_json):
            print_json(task)
            return
        _show(task, AgentNames(client), wide=wide)


@app.command("tree")
def tree(
    task_id: str = typer.Argument(..., metavar="ID", help="any task of the tree"),
    output: Format = OUTPUT_OPTION,
    as_json: bool = JSON_OPTION,
    addr: str | None = ADDR_OPTION,
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Show the delegation tree a task belongs to: agents, states, leases."""
    with admin_client(addr, config) as client:
        answer = client.get(resource_path("/v1/admin/tasks", task_id, "tree"))
    if wants_json(output, as_json):
        print_json(answer)
        return
    for line in render_tree(answer):
        typer.echo(line)


@app.command("close")
def close(
    task_id: str = typer.Argument(..., metavar="ID", help="the task id (tsk_…)"),
    reason: str | None = typer.Option(
        None, "--reason", "-r", help="why, for the audit log"
    ),
    output: Format = OUTPUT_OPTION,
    as_json: bool = JSON_OPTION,
    addr: str | None = ADDR_OPTION,
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Close a task and revoke its leases."""
    body = {"reason": reason} if reason is not None else None
    with admin_client(addr, config) as client:
        task = client.post(resource_path("/v1/tasks", task_id, "close"), body)
    if wants_json(output, as_json):
        print_json(task)
        return
    print_record(task, title=f"task {task.get('id', '')}")
