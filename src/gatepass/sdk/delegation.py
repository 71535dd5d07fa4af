"""
Delegation on the agent side: the parent's grant, handed to the child to accept.

The parent asks for a grant with :meth:`Task.delegate <gatepass.sdk.Task.delegate>`
and passes :meth:`DelegationGrant.reveal` to the child over whatever channel the
pipeline uses; the child opens its own task from it with
:meth:`GatepassClient.accept_delegation
<gatepass.sdk.GatepassClient.accept_delegation>`, proving its own identity and
binding the task to a key it generated. The grant is single use, names the one
agent that may accept it, and lives a minute or two.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass

from gatepass.errors import GatepassError, InvalidRequestError
from gatepass.ids import AgentId, TaskId, is_id
from gatepass.sdk.session import BrokerSession
from gatepass.secret import Secret
from gatepass.tokens import (
    DELEGATION_TOKEN_TYPE,
    TOKEN_EXCHANGE,
    TXN_TOKEN_TYPE,
    DPoPKey,
)

__all__ = ["DelegationGrant", "request_grant"]


@dataclass(frozen=True, slots=True, kw_only=True)
class DelegationGrant:
    """
    A single-use delegation token for one child agent, and what it hands over.

    Attributes:
        token: the delegation token; its ``repr`` never shows it.
        child: the one agent that may accept it.
        parent_task: the task it delegates from.
        targets: the sub-task's targets (names).
        actions: the sub-task's actions.
        purpose: the sub-task's purpose.
        max_ttl: the longest the child's task may live.
        expires_at: when the grant itself expires (accept it before).
    """

    token: Secret
    child: AgentId
    parent_task: TaskId
    targets: tuple[str, ...]
    actions: tuple[str, ...]
    purpose: str
    max_ttl: dt.timedelta
    expires_at: dt.datetime

    def reveal(self) -> str:
        """
        Return the grant as the string to hand to the child.

        Returns:
            The delegation token; treat it as a secret until it is accepted.
        """
        return self.token.reveal()


def request_grant(
    session: BrokerSession,
    key: DPoPKey,
    task_token: str,
    *,
    parent_task: TaskId,
    to: str,
    targets: Sequence[str],
    actions: Sequence[str],
    purpose: str,
    environment: str,
    intent: str,
    ttl: dt.timedelta | None,
) -> DelegationGrant:
    """
    Ask the broker for a delegation grant (RFC 8693, ``may_act`` = ``to``).

    Args:
        session: the broker connection.
        key: the parent task's DPoP key.
        task_token: the parent task's token.
        parent_task: the parent task's id.
        to: the child agent's id.
        targets: the sub-task's targets, a subset of the parent's.
        actions: the sub-task's actions.
        purpose: the sub-task's purpose.
        environment: the parent's environment (a sub-task never changes it).
        intent: free text describing the sub-task.
        ttl: the longest the child's task may live.

    Returns:
        The grant.

    Raises:
        InvalidRequestError: a parameter is malformed (raised locally).
        GatepassError: the broker refused (the class of its error code).
    """
    if not is_id(to, "agt"):
        raise InvalidRequestError("to must be the child agent's id (agt_...)")
    if isinstance(targets, str) or isinstance(actions, str):
        raise InvalidRequestError("targets and actions must be lists")
    if not targets or not actions:
        raise InvalidRequestError("a sub-task names at least one target and action")
    details: dict[str, object] = {
        "type": "agent_task",
        "intent": intent,
        "purpose": purpose,
        "environment": environment,
        "targets": list(targets),
        "actions": list(actions),
    }
    if ttl is not None:
        details["max_ttl_seconds"] = max(1, int(ttl.total_seconds()))
    form = {
        "grant_type": TOKEN_EXCHANGE,
        "subject_token": task_token,
        "subject_token_type": TXN_TOKEN_TYPE,
        "requested_token_type": DELEGATION_TOKEN_TYPE,
        "audience": to,
        "authorization_details": json.dumps([details]),
    }
    received_at = session.clock.now()
    response = session.post(session.metadata().token_endpoint, key, data=lambda: form)
    body = response.json()
    if not isinstance(body, dict):
        raise GatepassError("broker answered without a delegation token")
    token = body.get("access_token")
    expires_in = body.get("expires_in")
    granted = body.get("authorization_details")
    sub_task = granted[0] if isinstance(granted, list) and granted else None
    if (
        not isinstance(token, str)
        or body.get("issued_token_type") != DELEGATION_TOKEN_TYPE
        or type(expires_in) is not int
        or not isinstance(sub_task, dict)
        or type(sub_task.get("max_ttl_seconds")) is not int
    ):
        raise GatepassError("broker answered without a delegation token")
    return DelegationGrant(
        token=Secret(token),
        child=AgentId(to),
        parent_task=parent_task,
        targets=tuple(str(t) for t in sub_task.get("targets", targets)),
        actions=tuple(str(a) for a in sub_task.get("actions", actions)),
        purpose=str(sub_task.get("purpose", purpose)),
        max_ttl=dt.timedelta(seconds=sub_task["max_ttl_seconds"]),
        expires_at=received_at + dt.timedelta(seconds=expires_in),
    )
