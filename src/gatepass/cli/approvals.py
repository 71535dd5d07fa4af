"""
``gatepass approvals``: see what waits for approval, approve or deny.

``show`` prints the broker's own canonical parameters first (agent, owners,
tenant, environment, target, actions, TTL, groups, quorum, policy) and only then
what the agent wrote, under a title that says so; every value goes through the
CLI's escaping (control characters, ANSI sequences, bidi overrides, markup).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from gatepass.approvals.text import inert
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

__all__ = ["app"]

app = typer.Typer(
    help="See and vote on requests waiting for human approval.", no_args_is_help=True
)

_COLUMNS = [
    Column("approval_id", "id", "id"),
    Column("state", "state", "word"),
    Column("tenant", "tenant", "text"),
    Column("target", "target", "text"),
    Column("actions", "actions", "text"),
    Column("groups", "groups", "text"),
    Column("quorum", "quorum", "word"),
    Column("expires_at", "expires", "time"),
]

_FACTS = (
    "approval_id",
    "state",
    "tenant",
    "environment",
    "target",
    "kind",
    "actions",
    "ttl_seconds",
    "groups",
    "quorum",
    "exclude_owners",
    "policy_ids",
    "created_at",
    "expires_at",
    "approved_at",
    "redeem_by",
    "end_reason",
    "request_hash",
)
_AGENT_TITLE = (
    "written by the agent (not checked by gatepass; do not follow its instructions)"
)


def _facts(shown: dict[str, Any]) -> dict[str, Any]:
    agent = shown.get("agent") or {}
    task = shown.get("task") or {}
    facts: dict[str, Any] = {
        "agent": f"{agent.get('name')} ({agent.get('id')})",
        "owners": agent.get("owners"),
        "task": f"{task.get('id')} ({task.get('state')})",
        "task purpose": task.get("purpose"),
    }
    facts.update({key: shown.get(key) for key in _FACTS})
    return facts


@app.command("list")
def list_approvals(
    state: str = typer.Option(
        "pending", "--state", "-s", help="pending, approved, denied, expired, ..., all"
    ),
    limit: int = typer.Option(100, "--limit", "-n", min=1, max=500, help="at most"),
    output: Format = OUTPUT_OPTION,
    as_json: bool = JSON_OPTION,
    addr: str | None = ADDR_OPTION,
    config: Path | None = CONFIG_OPTION,
) -> None:
    """List approvals you may see (pending ones by default), newest first."""
    with admin_client(addr, config) as client:
        answer = client.get("/v1/admin/approvals", {"state": state, "limit": limit})
    if wants_json(output, as_json):
        print_json(answer)
        return
    print_table(answer["approvals"], _COLUMNS, empty="nothing waits for approval")


@app.command("show")
def show(
    approval_id: str = typer.Argument(..., metavar="ID", help="the approval (apr_…)"),
    output: Format = OUTPUT_OPTION,
    as_json: bool = JSON_OPTION,
    addr: str | None = ADDR_OPTION,
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Show one approval: the broker's facts first, the agent's words last."""
    with admin_client(addr, config) as client:
        shown = client.get(resource_path("/v1/admin/approvals", approval_id))
    if wants_json(output, as_json):
        print_json(shown)
        return
    print_record(_facts(shown), title=f"approval {shown.get('approval_id', '')}")
    votes = shown.get("votes") or []
    print_table(
        votes,
        [
            Column("operator", "operator", "text"),
            Column("choice", "vote", "word"),
            Column("reason", "reason", "text"),
            Column("at", "at", "time"),
        ],
        title="votes",
        empty="no votes yet",
    )
    supplied = shown.get("agent_supplied") or {}
    print_record(
        {
            "justification": inert(supplied.get("justification") or "") or None,
            "task intent": inert(supplied.get("intent") or "") or None,
        },
        title=_AGENT_TITLE,
    )


def _vote(
    approval_id: str,
    verb: str,
    reason: str,
    *,
    as_json: bool,
    addr: str | None,
    config: Path | None,
) -> None:
    with admin_client(addr, config) as client:
        voted = client.post(
            resource_path("/v1/admin/approvals", approval_id) + f"/{verb}",
            {"reason": reason},
        )
    if as_json:
        print_json(voted)
        return
    typer.echo(f"{voted['approval_id']}: {voted['state']}")


@app.command("approve")
def approve(
    approval_id: str = typer.Argument(..., metavar="ID", help="the approval (apr_…)"),
    reason: str = typer.Option(
        ..., "--reason", "-r", help="why (a change or ticket id), for the audit log"
    ),
    output: Format = OUTPUT_OPTION,
    as_json: bool = JSON_OPTION,
    addr: str | None = ADDR_OPTION,
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Approve a request (your vote counts once towards each group you hold)."""
    _vote(
        approval_id,
        "approve",
        reason,
        as_json=wants_json(output, as_json),
        addr=addr,
        config=config,
    )


@app.command("deny")
def deny(
    approval_id: str = typer.Argument(..., metavar="ID", help="the approval (apr_…)"),
    reason: str = typer.Option(..., "--reason", "-r", help="why, for the audit log"),
    output: Format = OUTPUT_OPTION,
    as_json: bool = JSON_OPTION,
    addr: str | None = ADDR_OPTION,
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Deny a request; a deny is final."""
    _vote(
        approval_id,
        "deny",
        reason,
        as_json=wants_json(output, as_json),
        addr=addr,
        config=config,
    )
