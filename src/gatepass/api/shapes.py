"""JSON shapes of the broker's records, as docs/api.md defines them."""

from __future__ import annotations

import datetime as dt
from typing import Any

from gatepass.broker import TreeNode
from gatepass.models import Agent, ApiToken, Lease, Operator, Target, Task

__all__ = [
    "agent_json",
    "api_token_json",
    "lease_json",
    "operator_json",
    "target_json",
    "task_json",
    "task_tree_json",
]


def _time(moment: dt.datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def agent_json(agent: Agent) -> dict[str, Any]:
    """Return an agent's public shape (its public key only)."""
    return {
        "id": agent.id,
        "name": agent.name,
        "tenant": agent.tenant,
        "labels": agent.labels,
        "public_jwk": agent.public_jwk,
        "algorithm": agent.algorithm,
        "status": agent.status.value,
        "created_at": _time(agent.created_at),
        "owners": list(agent.owners),
    }


def operator_json(operator: Operator) -> dict[str, Any]:
    """Return an operator's shape (their tokens are listed apart, never shown)."""
    return {
        "id": operator.id,
        "name": operator.name,
        "roles": sorted(role.value for role in operator.roles),
        "groups": sorted(operator.groups),
        "tenants": sorted(operator.tenants),
        "status": operator.status.value,
        "created_at": _time(operator.created_at),
    }


def api_token_json(token: ApiToken) -> dict[str, Any]:
    """Return an API token's shape: its id and facts, never the token or its hash."""
    return {
        "id": token.id,
        "role": token.role.value,
        "description": token.description,
        "operator": token.operator_name,
        "state": "active" if token.revoked_at is None else "revoked",
        "created_at": _time(token.created_at),
        "revoked_at": _time(token.revoked_at),
    }


def task_json(task: Task) -> dict[str, Any]:
    """Return a task's shape (no token, no key)."""
    return {
        "id": task.id,
        "agent_id": task.agent_id,
        "tenant": task.tenant,
        "environment": task.environment,
        "purpose": task.purpose,
        "intent": task.intent,
        "targets": list(task.targets),
        "state": task.state.value,
        "created_at": _time(task.created_at),
        "expires_at": _time(task.expires_at),
        "closed_at": _time(task.closed_at),
        "close_reason": task.close_reason,
    }


def lease_json(lease: Lease) -> dict[str, Any]:
    """Return a lease's shape (its handle is a jti, never the token)."""
    return {
        "id": lease.id,
        "task_id": lease.task_id,
        "agent_id": lease.agent_id,
        "target": lease.target,
        "kind": lease.kind,
        "actions": list(lease.actions),
        "state": lease.state.value,
        "issued_at": _time(lease.issued_at),
        "expires_at": _time(lease.expires_at),
        "revoked_at": _time(lease.revoked_at),
        "policy_ids": list(lease.policy_ids),
        "attempts": lease.attempts,
        "last_error": lease.last_error,
    }


def target_json(target: Target) -> dict[str, Any]:
    """Return a target's shape."""
    return {
        "name": target.name,
        "uri": target.uri,
        "kind": target.kind,
        "environment": target.environment,
        "tenant": target.tenant,
        "risk": target.risk,
        "actions": list(target.actions),
        "max_ttl_seconds": int(target.max_ttl.total_seconds()),
    }


def task_tree_json(nodes: list[TreeNode], *, requested: str) -> dict[str, Any]:
    """
    Return a delegation tree as nested tasks, the root outermost.

    Each task has its shape plus ``agent_name``, ``depth``, ``parent_id``,
    ``lineage_id``, ``actions``, ``actors`` (current agent first), its ``leases``
    and its ``children``; the root also says which task was ``requested``.

    Args:
        nodes: the tree, root first, each parent before its children.
        requested: the task id the caller asked about.
    """
    shaped: dict[str, dict[str, Any]] = {}
    root: dict[str, Any] | None = None
    for node in nodes:
        task = node.task
        body = task_json(task)
        body.update(
            agent_name=node.agent_name,
            depth=task.depth,
            parent_id=task.parent_id,
            lineage_id=task.lineage_id,
            actions=None if task.actions is None else list(task.actions),
            actors=list(task.actors),
            leases=[lease_json(lease) for lease in node.leases],
            children=[],
        )
        shaped[task.id] = body
        parent = shaped.get(task.parent_id or "")
        if parent is not None:
            parent["children"].append(body)
        elif root is None:
            root = body
    if root is None:
        return {"requested": requested, "children": []}
    return {"requested": requested, **root}
