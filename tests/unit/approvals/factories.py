"""Approval records for the webhook tests."""

from __future__ import annotations

import datetime as dt
from typing import Any

from gatepass.ids import AgentId, TaskId, new_approval_id
from gatepass.models import Approval, ApprovalState

T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


def make_approval(**overrides: Any) -> Approval:
    """Build a pending approval for a prod write, with ``overrides`` applied."""
    agent = AgentId("agt_requester")
    task = TaskId("tsk_requester")
    fields: dict[str, Any] = {
        "id": new_approval_id(),
        "state": ApprovalState.PENDING,
        "request_hash": "0" * 64,
        "request": {
            "v": "gatepass.approval.v1",
            "agent_id": agent,
            "task_id": task,
            "target": "tickets-prod",
            "kind": "access_token",
            "actions": ["write"],
            "requested_ttl_seconds": None,
            "policy_digest": "d" * 64,
        },
        "agent_id": agent,
        "task_id": task,
        "tenant": "acme",
        "environment": "prod",
        "target": "tickets-prod",
        "kind": "access_token",
        "actions": ("write",),
        "groups": ("prod-approvers",),
        "quorum": 1,
        "exclude_owners": False,
        "max_uses": 1,
        "ttl": dt.timedelta(seconds=60),
        "policy_ids": ("prod-write",),
        "justification": "close the duplicate ticket",
        "created_at": T0,
        "expires_at": T0 + dt.timedelta(minutes=15),
    }
    fields.update(overrides)
    return Approval(**fields)
