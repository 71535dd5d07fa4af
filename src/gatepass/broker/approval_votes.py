"""
The approver's side of a step-up approval: see what waits, approve or deny.

A vote is an operator's (a named human's, never the bootstrap token's), for an
approval of a tenant they hold and a group they are in. The requesting agent, its
owners when the policy excludes them (``@exclude_owners``) and anyone in its
delegation chain cannot approve. Each group needs ``quorum`` distinct approvers
(one vote per operator, by the table's key); any deny is final, also after the
quorum was reached but before the credential was redeemed. The vote, the
transition it causes and the announcements commit together, under a lock on the
approval's row so that concurrent votes count each other.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from gatepass.audit import Outcome
from gatepass.broker.approval_events import ApprovalEvents, approval_json
from gatepass.broker.context import BrokerContext
from gatepass.broker.trail import Attempt, AuditRecorder
from gatepass.errors import (
    AccessDeniedError,
    ConflictError,
    GatepassError,
    InvalidRequestError,
    NotFoundError,
)
from gatepass.models import (
    Approval,
    ApprovalState,
    Operator,
    OperatorRole,
    Vote,
    VoteChoice,
)
from gatepass.store import Connection
from gatepass.store import agents as agent_rows
from gatepass.store import approvals as approval_rows
from gatepass.store import tasks as task_rows

__all__ = ["ApprovalVotes", "Viewer"]

_MAX_REASON = 500


@dataclass(frozen=True, slots=True, kw_only=True)
class Viewer:
    """
    Who reads approvals: an operator, or a service admin/auditor token.

    Attributes:
        actor: the audit actor name.
        operator: the operator, if the caller is one.
        sees_all: admins and auditors see every approval; approvers those of
            their tenants and groups.
    """

    actor: str
    operator: Operator | None
    sees_all: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class _Ballot:
    """One vote being cast."""

    operator: Operator
    approval_id: str
    choice: VoteChoice
    reason: str
    now: dt.datetime
    attempt: Attempt


class ApprovalVotes:
    """
    List, show and vote on approvals.

    Args:
        context: the broker's collaborators.
    """

    def __init__(self, context: BrokerContext) -> None:
        """Keep the context."""
        self._context = context
        self._events = ApprovalEvents(context.notifier)

    async def list(
        self, viewer: Viewer, *, states: tuple[str, ...] | None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Return the approvals the viewer may see, newest first."""
        operator = viewer.operator
        tenants = None
        if not viewer.sees_all and operator is not None and "*" not in operator.tenants:
            tenants = sorted(operator.tenants)
        found = await self._context.database.read(
            lambda c: approval_rows.list_approvals(
                c, states=states, tenants=tenants, limit=limit
            )
        )
        return [
            approval_json(approval)
            for approval in found
            if self._may_see(viewer, approval)
        ]

    async def show(self, viewer: Viewer, approval_id: str) -> dict[str, Any]:
        """
        Return one approval with the broker's facts about its agent and task.

        Raises:
            NotFoundError: no such approval, or one the viewer may not see.
        """

        def read(c: Connection) -> dict[str, Any] | None:
            approval = approval_rows.get_approval(c, approval_id)
            if approval is None or not self._may_see(viewer, approval):
                return None
            agent = agent_rows.get_agent(c, approval.agent_id)
            task = task_rows.get_task(c, approval.task_id)
            shown = approval_json(approval)
            shown["agent"] = {
                "id": approval.agent_id,
                "name": None if agent is None else agent.name,
                "owners": [] if agent is None else list(agent.owners),
                "issuer": None if agent is None else agent.issuer,
            }
            shown["task"] = {
                "id": approval.task_id,
                "purpose": None if task is None else task.purpose,
                "state": None if task is None else task.state.value,
                "expires_at": None
                if task is None
                else task.expires_at.isoformat().replace("+00:00", "Z"),
            }
            # The task's intent is the agent's words too.
            shown["agent_supplied"]["intent"] = None if task is None else task.intent
            # Each group needs its own quorum: how many distinct approvers count
            # for each so far.
            counted = approval_rows.vote_groups(c, approval.id)
            shown["progress"] = {
                group: len(counted.get(group, ())) for group in approval.groups
            }
            return shown

        shown = await self._context.database.read(read)
        if shown is None:
            raise NotFoundError("no such approval")
        return shown

    def _may_see(self, viewer: Viewer, approval: Approval) -> bool:
        operator = viewer.operator
        if viewer.sees_all or operator is None:
            return viewer.sees_all
        return operator.may_act_on(approval.tenant) and bool(
            operator.groups & set(approval.groups)
        )

    async def vote(
        self, operator: Operator, approval_id: str, choice: VoteChoice, reason: str
    ) -> dict[str, Any]:
        """
        Cast an operator's vote.

        Returns:
            The approval after the vote.

        Raises:
            InvalidRequestError: the reason is empty or too long.
            NotFoundError: no such approval (or one the operator may not see).
            AccessDeniedError: the operator may not vote on it (tenant, group,
                self-approval, owner, delegation chain).
            ConflictError: the approval is no longer open, or the operator voted.
        """
        context = self._context
        actor = f"operator:{operator.name}"
        attempt = Attempt(
            kind="approval.vote",
            actor=actor,
            subject=approval_id[:64],
            data={"choice": choice.value},
        )
        try:
            if not reason.strip() or len(reason) > _MAX_REASON:
                raise InvalidRequestError(
                    f"a vote needs a reason of 1 to {_MAX_REASON} characters"
                )
            if OperatorRole.APPROVER not in operator.roles:
                raise AccessDeniedError("only approvers vote on approvals")
            now = context.clock.now()
            ballot = _Ballot(
                operator=operator,
                approval_id=approval_id,
                choice=choice,
                reason=reason,
                now=now,
                attempt=attempt,
            )
            outcome = await context.trail.write(
                lambda conn, audit: self._cast(conn, audit, ballot)
            )
            if isinstance(outcome, GatepassError):
                raise outcome
        except GatepassError as error:
            await context.trail.refuse(attempt, error)
            raise
        return approval_json(outcome)

    def _cast(
        self, conn: Connection, audit: AuditRecorder, ballot: _Ballot
    ) -> Approval | GatepassError:
        operator = ballot.operator
        approval = approval_rows.lock_approval(conn, ballot.approval_id)
        if approval is None or not operator.may_act_on(approval.tenant):
            return NotFoundError("no such approval")
        closed = self._closed(conn, audit, approval, ballot)
        if closed is not None:
            return closed
        refusal = self._refusal(conn, operator, approval)
        if refusal is not None:
            return refusal
        groups = operator.groups & set(approval.groups)
        approval_rows.record_vote(
            conn,
            approval.id,
            Vote(
                operator_id=operator.id,
                operator_name=operator.name,
                choice=ballot.choice,
                reason=ballot.reason,
                at=ballot.now,
            ),
            groups=groups,
        )
        attempt = ballot.attempt
        attempt.data.update(groups=sorted(groups), reason=ballot.reason)
        attempt.subject = approval.id
        approve = ballot.choice is VoteChoice.APPROVE
        audit.record(conn, attempt, Outcome.ALLOW if approve else Outcome.DENY)
        if not approve:
            return self._deny(conn, audit, approval, ballot)
        counted = approval_rows.vote_groups(conn, approval.id)
        if all(len(counted.get(g, ())) >= approval.quorum for g in approval.groups):
            return self._approve(conn, audit, approval, ballot)
        return approval_rows.get_approval(conn, approval.id) or approval

    def _closed(
        self,
        conn: Connection,
        audit: AuditRecorder,
        approval: Approval,
        ballot: _Ballot,
    ) -> GatepassError | None:
        """Refuse a vote on an approval that ended (expiring it if overdue)."""
        now = ballot.now
        overdue = (
            approval.state is ApprovalState.PENDING and approval.expires_at <= now
        ) or (
            approval.state is ApprovalState.APPROVED
            and approval.redeem_by is not None
            and approval.redeem_by <= now
        )
        if overdue:
            if approval_rows.end_approval(
                conn,
                approval.id,
                ApprovalState.EXPIRED,
                now=now,
                reason="not approved in time"
                if approval.state is ApprovalState.PENDING
                else "not redeemed in time",
            ):
                self._events.end_all(
                    conn, audit, [approval.id], actor="system", now=now
                )
            return ConflictError("the approval has expired")
        # A deny still stops an approved request that was not redeemed yet.
        open_states = {ApprovalState.PENDING}
        if ballot.choice is VoteChoice.DENY:
            open_states.add(ApprovalState.APPROVED)
        if approval.state not in open_states:
            return ConflictError(f"the approval is {approval.state.value}")
        return None

    def _deny(
        self,
        conn: Connection,
        audit: AuditRecorder,
        approval: Approval,
        ballot: _Ballot,
    ) -> Approval:
        approval_rows.end_approval(
            conn,
            approval.id,
            ApprovalState.DENIED,
            now=ballot.now,
            reason=f"denied by {ballot.operator.name}",
        )
        denied = approval_rows.get_approval(conn, approval.id) or approval
        self._events.record(
            conn,
            audit,
            denied,
            "approval.denied",
            actor=ballot.attempt.actor,
            now=ballot.now,
            notify="approval.denied",
        )
        return denied

    def _approve(
        self,
        conn: Connection,
        audit: AuditRecorder,
        approval: Approval,
        ballot: _Ballot,
    ) -> Approval:
        window = dt.timedelta(
            seconds=self._context.settings.approvals.redeem_window_seconds
        )
        task = task_rows.get_task(conn, approval.task_id)
        redeem_by = ballot.now + window
        if task is not None:
            redeem_by = min(redeem_by, task.expires_at)
        approval_rows.mark_approved(
            conn, approval.id, now=ballot.now, redeem_by=redeem_by
        )
        approved = approval_rows.get_approval(conn, approval.id) or approval
        self._events.record(
            conn,
            audit,
            approved,
            "approval.approved",
            actor=ballot.attempt.actor,
            now=ballot.now,
            notify="approval.approved",
            approvers=sorted(vote.operator_name for vote in approved.votes),
            redeem_by=redeem_by.isoformat(),
        )
        return approved

    def _refusal(
        self, conn: Connection, operator: Operator, approval: Approval
    ) -> GatepassError | None:
        """Why this operator may not vote on this approval, if they may not."""
        if not operator.groups & set(approval.groups):
            return AccessDeniedError(
                "you are in none of the approver groups this request needs"
            )
        agent = agent_rows.get_agent(conn, approval.agent_id)
        task = task_rows.get_task(conn, approval.task_id)
        # No self-approval: the requester, anyone in its delegation chain and (when
        # the policy says so) its owners stay out of it.
        requester: set[str] = {approval.agent_id}
        if agent is not None:
            requester.add(agent.name)
        if task is not None:
            for actor in task.actors:
                requester.add(actor)
                in_chain = agent_rows.get_agent(conn, actor)
                if in_chain is not None:
                    requester.add(in_chain.name)
        if operator.name in requester or operator.id in requester:
            return AccessDeniedError("you may not approve your own request")
        if (
            approval.exclude_owners
            and agent is not None
            and operator.name in agent.owners
        ):
            return AccessDeniedError(
                "owners of the agent may not approve its requests (policy)"
            )
        return None
