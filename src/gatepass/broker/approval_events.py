"""
An approval's life in the audit log and to its approvers, written with the change.

Every transition of an approval (requested, each vote, approved, denied, expired,
redeemed, cancelled) is audited in the transaction that makes it, and the ones
approvers care about are put in the outbox for their group's webhook in that same
transaction, so a notification exists exactly when its change committed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any, Protocol

from gatepass.approvals import WebhookEvent
from gatepass.audit import Outcome
from gatepass.broker.trail import Attempt, AuditRecorder
from gatepass.models import Approval, ApprovalState
from gatepass.store import Connection
from gatepass.store import approvals as approval_rows

__all__ = ["ApprovalEvents", "ApprovalNotifier", "approval_json"]


class ApprovalNotifier(Protocol):
    """Puts approval notifications in the outbox (``broker/notifications.py``)."""

    def enqueue(
        self,
        conn: Connection,
        approval: Approval,
        event: WebhookEvent,
        now: dt.datetime,
    ) -> object:
        """Queue ``event`` about ``approval`` for its groups, in this transaction."""
        ...


def approval_json(approval: Approval) -> dict[str, Any]:
    """
    Return an approval as the API shows it.

    The broker's canonical parameters come first; the agent's own words only under
    ``agent_supplied``, so no reader mistakes them for facts.
    """

    def iso(value: dt.datetime | None) -> str | None:
        return None if value is None else value.isoformat().replace("+00:00", "Z")

    return {
        "approval_id": approval.id,
        "state": approval.state.value,
        "agent_id": approval.agent_id,
        "task_id": approval.task_id,
        "tenant": approval.tenant,
        "environment": approval.environment,
        "target": approval.target,
        "kind": approval.kind,
        "actions": list(approval.actions),
        "ttl_seconds": None
        if approval.ttl is None
        else int(approval.ttl.total_seconds()),
        "groups": list(approval.groups),
        "quorum": approval.quorum,
        "exclude_owners": approval.exclude_owners,
        "max_uses": approval.max_uses,
        "uses": approval.uses,
        "policy_ids": list(approval.policy_ids),
        "request": approval.request,
        "request_hash": approval.request_hash,
        "created_at": iso(approval.created_at),
        "expires_at": iso(approval.expires_at),
        "approved_at": iso(approval.approved_at),
        "redeem_by": iso(approval.redeem_by),
        "ended_at": iso(approval.ended_at),
        "end_reason": approval.end_reason,
        "votes": [
            {
                "operator": vote.operator_name,
                "choice": vote.choice.value,
                "reason": vote.reason,
                "at": iso(vote.at),
            }
            for vote in approval.votes
        ],
        "agent_supplied": {"justification": approval.justification},
    }


def _summary(approval: Approval) -> dict[str, Any]:
    """What an audit record says about an approval (no agent-supplied text)."""
    return {
        "agent_id": approval.agent_id,
        "task_id": approval.task_id,
        "tenant": approval.tenant,
        "target": approval.target,
        "kind": approval.kind,
        "actions": list(approval.actions),
        "groups": list(approval.groups),
        "quorum": approval.quorum,
        "request_hash": approval.request_hash,
    }


class ApprovalEvents:
    """
    Audit and announce approval transitions inside their transactions.

    Args:
        notifier: where announcements go.
    """

    def __init__(self, notifier: ApprovalNotifier) -> None:
        """Keep the notifier."""
        self._notifier = notifier

    def record(
        self,
        conn: Connection,
        audit: AuditRecorder,
        approval: Approval,
        kind: str,
        *,
        actor: str,
        outcome: Outcome = Outcome.OK,
        now: dt.datetime,
        notify: str | None = None,
        **data: Any,  # noqa: ANN401 - audit data is JSON
    ) -> None:
        """
        Append the audit record of one transition, and queue its announcement.

        Args:
            conn: the transaction that made the transition.
            audit: its recorder.
            approval: the approval after the transition.
            kind: the audit kind (``approval.requested``...).
            actor: who made it happen.
            outcome: the record's outcome.
            now: the transition's time.
            notify: the webhook event to queue, if approvers should hear of it.
            data: more audit data.
        """
        attempt = Attempt(
            kind=kind,
            actor=actor,
            subject=approval.id,
            data={**_summary(approval), **data},
        )
        audit.record(conn, attempt, outcome)
        if notify is not None:
            self._notifier.enqueue(conn, approval, WebhookEvent(notify), now)

    def end_all(
        self,
        conn: Connection,
        audit: AuditRecorder,
        ended: Iterable[str],
        *,
        actor: str,
        now: dt.datetime,
    ) -> None:
        """Audit and announce approvals another change just ended (cancel, expire)."""
        for approval_id in ended:
            approval = approval_rows.get_approval(conn, approval_id)
            if approval is None:  # pragma: no cover - ended in this transaction
                continue
            state = approval.state
            kind = (
                "approval.expired"
                if state is ApprovalState.EXPIRED
                else "approval.cancelled"
            )
            self.record(
                conn,
                audit,
                approval,
                kind,
                actor=actor,
                now=now,
                notify=kind,
                reason=approval.end_reason,
            )
