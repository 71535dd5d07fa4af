"""JSON shapes of the broker's records, as docs/api.md defines them."""

from __future__ import annotations

import datetime as dt
from typing import Any

from gatepass.models import Agent, ApiToken, Lease, Target, Task

__all__ = ["agent_json", "api_token_json", "lease_json", "target_json", "task_json"]


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


def api_token_json(token: ApiToken) -> dict[str, Any]:
    """Return an API token's shape: what it is for, never the token or its hash."""
    return {
        "id": token.id,
        "name": token.name,
        "role": token.role.value,
        "created_at": _time(token.created_at),
    }
