"""
Persistence of approvals, their votes and their redemptions.

Every state change is a conditional ``UPDATE`` (``WHERE state = …``), so two
concurrent requests can never both win a transition: two redemptions of a
single-use approval, an approve racing a deny, an expiry racing a vote. A vote
transaction first locks its approval row (:func:`lock_approval`), so the votes it
counts are all the votes there are. Final states (redeemed, denied, expired,
cancelled) are irreversible facts for the anchor journal (``store/anchors.py``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from typing import Any

from sqlalchemy import Connection, Row, and_, func, select, update
from sqlalchemy.exc import IntegrityError

from gatepass.errors import ConflictError
from gatepass.ids import AgentId, ApprovalId, OperatorId, TaskId
from gatepass.models import Approval, ApprovalState, Vote, VoteChoice
from gatepass.store.anchors import note_ended
from gatepass.store.tables import (
    agents,
    approval_redemptions,
    approval_votes,
    approvals,
)

__all__ = [
    "OPEN_STATES",
    "cancel_approvals",
    "consume_approval",
    "count_pending",
    "end_approval",
    "expire_approvals",
    "find_open_approval",
    "get_approval",
    "insert_approval",
    "list_approvals",
    "lock_approval",
    "mark_approved",
    "record_vote",
    "serialize_requests_of",
    "vote_groups",
]

OPEN_STATES = (ApprovalState.PENDING.value, ApprovalState.APPROVED.value)
"""States an approval can still leave (and so can still yield a credential)."""
_JOURNAL_KIND = "approvals"


def _to_vote(row: Row[Any]) -> Vote:
    return Vote(
        operator_id=OperatorId(row.operator_id),
        operator_name=row.operator_name,
        choice=VoteChoice(row.choice),
        reason=row.reason,
        at=row.at,
    )


def _to_approval(row: Row[Any], votes: tuple[Vote, ...]) -> Approval:
    return Approval(
        id=ApprovalId(row.id),
        state=ApprovalState(row.state),
        request_hash=row.request_hash,
        request=dict(row.request),
        agent_id=AgentId(row.agent_id),
        task_id=TaskId(row.task_id),
        tenant=row.tenant,
        environment=row.environment,
        target=row.target,
        kind=row.kind,
        actions=tuple(row.actions),
        groups=tuple(row.groups),
        quorum=int(row.quorum),
        exclude_owners=bool(row.exclude_owners),
        max_uses=int(row.max_uses),
        uses=int(row.uses),
        ttl=None if row.ttl_seconds is None else dt.timedelta(seconds=row.ttl_seconds),
        policy_ids=tuple(row.policy_ids),
        justification=row.justification,
        created_at=row.created_at,
        expires_at=row.expires_at,
        approved_at=row.approved_at,
        redeem_by=row.redeem_by,
        ended_at=row.ended_at,
        end_reason=row.end_reason,
        votes=votes,
    )


def insert_approval(conn: Connection, approval: Approval) -> None:
    """Record a new (pending) approval."""
    conn.execute(
        approvals.insert().values(
            id=approval.id,
            state=approval.state.value,
            request_hash=approval.request_hash,
            request=approval.request,
            agent_id=approval.agent_id,
            task_id=approval.task_id,
            tenant=approval.tenant,
            environment=approval.environment,
            target=approval.target,
            kind=approval.kind,
            actions=list(approval.actions),
            groups=list(approval.groups),
            quorum=approval.quorum,
            exclude_owners=int(approval.exclude_owners),
            max_uses=approval.max_uses,
            uses=approval.uses,
            ttl_seconds=None
            if approval.ttl is None
            else int(approval.ttl.total_seconds()),
            policy_ids=list(approval.policy_ids),
            justification=approval.justification,
            created_at=approval.created_at,
            expires_at=approval.expires_at,
        )
    )


def _votes(conn: Connection, approval_id: str) -> tuple[Vote, ...]:
    rows = conn.execute(
        select(approval_votes)
        .where(approval_votes.c.approval_id == approval_id)
        .order_by(approval_votes.c.at, approval_votes.c.operator_name)
    )
    return tuple(_to_vote(row) for row in rows)


def get_approval(conn: Connection, approval_id: str) -> Approval | None:
    """Return the approval with its votes, or None."""
    row = conn.execute(
        select(approvals).where(approvals.c.id == approval_id)
    ).one_or_none()
    return None if row is None else _to_approval(row, _votes(conn, approval_id))


def lock_approval(conn: Connection, approval_id: str) -> Approval | None:
    """
    Return the approval, its row locked until the transaction ends.

    On PostgreSQL ``FOR UPDATE`` makes concurrent votes on one approval wait for
    each other, so each counts every vote before it; SQLite runs one write
    transaction at a time anyway.
    """
    row = conn.execute(
        select(approvals).where(approvals.c.id == approval_id).with_for_update()
    ).one_or_none()
    return None if row is None else _to_approval(row, _votes(conn, approval_id))


def find_open_approval(
    conn: Connection, task_id: str, request_hash: str
) -> Approval | None:
    """Return the task's pending or approved approval of this exact request."""
    row = conn.execute(
        select(approvals)
        .where(
            approvals.c.task_id == task_id,
            approvals.c.request_hash == request_hash,
            approvals.c.state.in_(OPEN_STATES),
        )
        .order_by(approvals.c.created_at.desc())
        .limit(1)
    ).one_or_none()
    return None if row is None else _to_approval(row, _votes(conn, row.id))


def serialize_requests_of(conn: Connection, agent_id: str) -> None:
    """
    Lock the agent's row until the transaction ends.

    Requests for new approvals by one agent then run one after another on
    PostgreSQL, so the pending quotas counted inside hold under concurrency.
    """
    conn.execute(
        select(agents.c.id).where(agents.c.id == agent_id).with_for_update()
    ).all()


def count_pending(
    conn: Connection, *, agent_id: str | None = None, task_id: str | None = None
) -> int:
    """Return how many approvals of the agent (or the task) wait for votes."""
    query = select(func.count()).where(approvals.c.state == ApprovalState.PENDING.value)
    if agent_id is not None:
        query = query.where(approvals.c.agent_id == agent_id)
    if task_id is not None:
        query = query.where(approvals.c.task_id == task_id)
    return int(conn.execute(query).scalar_one())


def list_approvals(
    conn: Connection,
    *,
    states: Collection[str] | None = None,
    tenants: Collection[str] | None = None,
    task_id: str | None = None,
    limit: int = 100,
) -> list[Approval]:
    """Return approvals, newest first, filtered by state, tenant and task."""
    query = select(approvals).order_by(approvals.c.created_at.desc()).limit(limit)
    if states is not None:
        query = query.where(approvals.c.state.in_(list(states)))
    if tenants is not None:
        query = query.where(approvals.c.tenant.in_(list(tenants)))
    if task_id is not None:
        query = query.where(approvals.c.task_id == task_id)
    return [_to_approval(row, _votes(conn, row.id)) for row in conn.execute(query)]


def record_vote(
    conn: Connection,
    approval_id: str,
    vote: Vote,
    *,
    groups: Collection[str],
) -> None:
    """
    Record one operator's vote, and the groups it counts for.

    Raises:
        ConflictError: the operator already voted on this approval.
    """
    try:
        with conn.begin_nested():
            conn.execute(
                approval_votes.insert().values(
                    approval_id=approval_id,
                    operator_id=vote.operator_id,
                    operator_name=vote.operator_name,
                    choice=vote.choice.value,
                    reason=vote.reason[:500],
                    groups=sorted(groups),
                    at=vote.at,
                )
            )
    except IntegrityError as exc:
        raise ConflictError("you already voted on this approval") from exc


def vote_groups(conn: Connection, approval_id: str) -> dict[str, set[str]]:
    """Return, per group, the operator ids whose approve votes count for it."""
    counted: dict[str, set[str]] = {}
    rows = conn.execute(
        select(approval_votes.c.operator_id, approval_votes.c.groups).where(
            approval_votes.c.approval_id == approval_id,
            approval_votes.c.choice == VoteChoice.APPROVE.value,
        )
    )
    for row in rows:
        for group in row.groups or ():
            counted.setdefault(str(group), set()).add(str(row.operator_id))
    return counted


def mark_approved(
    conn: Connection, approval_id: str, *, now: dt.datetime, redeem_by: dt.datetime
) -> bool:
    """Turn a pending approval approved; False if it was no longer pending."""
    result = conn.execute(
        update(approvals)
        .where(
            approvals.c.id == approval_id,
            approvals.c.state == ApprovalState.PENDING.value,
        )
        .values(
            state=ApprovalState.APPROVED.value, approved_at=now, redeem_by=redeem_by
        )
    )
    return result.rowcount > 0


def end_approval(
    conn: Connection,
    approval_id: str,
    state: ApprovalState,
    *,
    now: dt.datetime,
    reason: str,
) -> bool:
    """
    End an open approval in ``state`` (denied, expired or cancelled).

    Returns:
        True if this call ended it; False if it had already ended.
    """
    result = conn.execute(
        update(approvals)
        .where(approvals.c.id == approval_id, approvals.c.state.in_(OPEN_STATES))
        .values(state=state.value, ended_at=now, end_reason=reason[:200])
    )
    ended = result.rowcount > 0
    note_ended(conn, _JOURNAL_KIND, [approval_id] if ended else [])
    return ended


def expire_approvals(
    conn: Connection, now: dt.datetime, *, limit: int = 500
) -> list[ApprovalId]:
    """
    Expire pending approvals past ``expires_at`` and approved ones past ``redeem_by``.

    Returns:
        The ids this call expired.
    """
    overdue = conn.execute(
        select(approvals.c.id, approvals.c.state)
        .where(
            (
                and_(
                    approvals.c.state == ApprovalState.PENDING.value,
                    approvals.c.expires_at <= now,
                )
            )
            | (
                and_(
                    approvals.c.state == ApprovalState.APPROVED.value,
                    approvals.c.redeem_by <= now,
                )
            )
        )
        .limit(limit)
    ).all()
    return [
        ApprovalId(row.id)
        for row in overdue
        if end_approval(
            conn,
            row.id,
            ApprovalState.EXPIRED,
            now=now,
            reason="not approved in time"
            if row.state == ApprovalState.PENDING.value
            else "not redeemed in time",
        )
    ]


def cancel_approvals(
    conn: Connection,
    *,
    now: dt.datetime,
    reason: str,
    task_ids: Collection[str] = (),
    agent_id: str | None = None,
) -> list[ApprovalId]:
    """
    Cancel the open approvals of these tasks (or of this agent).

    Returns:
        The ids this call cancelled.
    """
    query = select(approvals.c.id).where(approvals.c.state.in_(OPEN_STATES))
    if agent_id is not None:
        query = query.where(approvals.c.agent_id == agent_id)
    elif task_ids:
        query = query.where(approvals.c.task_id.in_(list(task_ids)))
    else:
        return []
    ids = [row.id for row in conn.execute(query)]
    return [
        ApprovalId(approval_id)
        for approval_id in ids
        if end_approval(
            conn, approval_id, ApprovalState.CANCELLED, now=now, reason=reason
        )
    ]


def consume_approval(
    conn: Connection, approval_id: str, *, lease_id: str, now: dt.datetime
) -> bool:
    """
    Spend one use of an approved approval for a lease, atomically.

    One conditional ``UPDATE`` decides: of two concurrent redemptions of a
    single-use approval exactly one matches ``uses < max_uses``. The last use turns
    the approval ``redeemed``, for good: a use is never given back, not even when
    the engine then fails to make the credential (the agent asks again).

    Returns:
        True if a use was spent; False if none was left, the window passed, or the
        approval is not (or no longer) approved.
    """
    result = conn.execute(
        update(approvals)
        .where(
            approvals.c.id == approval_id,
            approvals.c.state == ApprovalState.APPROVED.value,
            approvals.c.uses < approvals.c.max_uses,
            approvals.c.redeem_by > now,
        )
        .values(uses=approvals.c.uses + 1)
    )
    if result.rowcount == 0:
        return False
    conn.execute(
        approval_redemptions.insert().values(
            lease_id=lease_id, approval_id=approval_id, at=now
        )
    )
    spent = conn.execute(
        update(approvals)
        .where(
            approvals.c.id == approval_id,
            approvals.c.uses >= approvals.c.max_uses,
            approvals.c.state == ApprovalState.APPROVED.value,
        )
        .values(
            state=ApprovalState.REDEEMED.value,
            ended_at=now,
            end_reason="redeemed",
        )
    )
    note_ended(conn, _JOURNAL_KIND, [approval_id] if spent.rowcount else [])
    return True
