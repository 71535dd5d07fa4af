"""
The agent's side of a step-up approval: ask, poll, redeem.

One mechanism serves access tokens and engine credentials.
When policy says ``NeedsApproval``, the request is bound to its canonical form
(``gatepass.approvals.canonical``: agent, task, target, kind, actions, requested
TTL, policy digest) and answered ``authorization_pending`` with an ``approval_id``
(RFC 8628 §3.5 / CIBA vocabulary). The agent repeats the same request with that id
and a fresh DPoP proof until it is approved (the credential is issued), denied
(``access_denied``) or expired (``expired_token``). The approval is redeemed inside
the credential's own transaction (``consume``), so two concurrent redemptions of a
single-use approval yield exactly one credential.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

from gatepass.approvals import CanonicalRequest, request_hash
from gatepass.broker.approval_events import ApprovalEvents
from gatepass.broker.context import BrokerContext
from gatepass.broker.trail import Attempt, AuditRecorder
from gatepass.errors import (
    ApprovalDeniedError,
    ApprovalExpiredError,
    ApprovalPendingError,
    GatepassError,
    InvalidGrantError,
    RateLimitedError,
)
from gatepass.ids import new_approval_id
from gatepass.models import Agent, Approval, ApprovalState, Target, Task
from gatepass.policy import NeedsApproval
from gatepass.store import Connection
from gatepass.store import approvals as approval_rows

__all__ = ["ApprovalGate", "ApprovalRequest", "Redemption"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ApprovalRequest:
    """
    A credential request that policy says needs approval.

    Attributes:
        verdict: what policy said (its profile names the groups and quorum).
        agent: the requesting agent.
        task: its task (open).
        target: the target.
        kind: ``access_token`` or the engine kind.
        actions: the actions asked for.
        requested_ttl: the TTL the agent asked for, if any.
        approval_id: the approval the agent names when repeating the request.
        justification: the agent's own words for the approvers (inert text).
    """

    verdict: NeedsApproval
    agent: Agent
    task: Task
    target: Target
    kind: str
    actions: tuple[str, ...]
    requested_ttl: dt.timedelta | None
    approval_id: str | None
    justification: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Redemption:
    """
    An approved approval this request may redeem.

    Attributes:
        approval: the approval (approved, with a use left).
        window: the end of its redemption window; the credential dies by then.
    """

    approval: Approval
    window: dt.datetime


class ApprovalGate:
    """
    Ask for, poll and redeem approvals.

    Args:
        context: the broker's collaborators.
    """

    def __init__(self, context: BrokerContext) -> None:
        """Keep the context."""
        self._context = context
        self._events = ApprovalEvents(context.notifier)

    async def redeemable(
        self, request: ApprovalRequest, attempt: Attempt
    ) -> Redemption:
        """
        Return the approval this exact request may redeem, or say why not.

        Raises:
            ApprovalPendingError: a new approval was requested, or the named one
                still waits (``authorization_pending``, with the id and interval).
            ApprovalDeniedError: an approver denied it.
            ApprovalExpiredError: it expired unapproved, or unredeemed.
            InvalidGrantError: the id names another task's or another request's
                approval, or one already redeemed or cancelled.
            RateLimitedError: the agent or the task has too many pending approvals.
        """
        context = self._context
        canonical = CanonicalRequest(
            agent_id=request.agent.id,
            task_id=request.task.id,
            target=request.target.name,
            kind=request.kind,
            actions=request.actions,
            requested_ttl_seconds=None
            if request.requested_ttl is None
            else int(request.requested_ttl.total_seconds()),
            policy_digest=context.authority.policy_digest,
        )
        digest = request_hash(canonical)
        attempt.data["request_hash"] = digest
        if request.approval_id is not None:
            approval_id = request.approval_id
            approval = await context.database.read(
                lambda c: approval_rows.get_approval(c, approval_id)
            )
            if approval is None or approval.task_id != request.task.id:
                raise InvalidGrantError("no such approval for this task")
            if approval.request_hash != digest:
                # A changed scope, TTL, target or policy set is another request.
                raise InvalidGrantError(
                    "the approval is for a different request (or an older policy "
                    "set); repeat the request without approval_id to ask again"
                )
        else:
            approval = await context.database.read(
                lambda c: approval_rows.find_open_approval(c, request.task.id, digest)
            )
            if approval is None:
                approval = await self._ask(request, canonical, digest)
        attempt.data["approval_id"] = approval.id
        return await self._redeemable(approval)

    async def _ask(
        self, request: ApprovalRequest, canonical: CanonicalRequest, digest: str
    ) -> Approval:
        context = self._context
        settings = context.settings.approvals
        profile = request.verdict.profile
        now = context.clock.now()
        wait = profile.approval_ttl or dt.timedelta(
            seconds=settings.pending_ttl_seconds
        )
        approval = Approval(
            id=new_approval_id(),
            state=ApprovalState.PENDING,
            request_hash=digest,
            request=canonical.to_json(),
            agent_id=request.agent.id,
            task_id=request.task.id,
            tenant=request.task.tenant,
            environment=request.task.environment,
            target=request.target.name,
            kind=request.kind,
            actions=tuple(sorted(set(request.actions))),
            groups=tuple(sorted(profile.approval_groups)),
            quorum=profile.quorum,
            exclude_owners=profile.exclude_owners,
            max_uses=profile.max_uses,
            ttl=profile.ttl,
            policy_ids=request.verdict.policy_ids,
            justification=request.justification,
            created_at=now,
            expires_at=min(now + wait, request.task.expires_at),
        )

        def create(conn: Connection, audit: AuditRecorder) -> Approval | GatepassError:
            approval_rows.serialize_requests_of(conn, request.agent.id)
            # Asked again while one is open (a lost answer, a retry): the same one.
            existing = approval_rows.find_open_approval(conn, request.task.id, digest)
            if existing is not None:
                return existing
            if (
                approval_rows.count_pending(conn, agent_id=request.agent.id)
                >= settings.max_pending_per_agent
            ):
                return RateLimitedError(
                    "the agent has too many requests waiting for approval"
                )
            if (
                approval_rows.count_pending(conn, task_id=request.task.id)
                >= settings.max_pending_per_task
            ):
                return RateLimitedError(
                    "the task has too many requests waiting for approval"
                )
            approval_rows.insert_approval(conn, approval)
            self._events.record(
                conn,
                audit,
                approval,
                "approval.requested",
                actor=request.agent.id,
                now=now,
                notify="approval.requested",
                expires_at=approval.expires_at.isoformat(),
                profile=profile.to_json(),
            )
            return approval

        created = await context.trail.write(create)
        if isinstance(created, GatepassError):
            raise created
        return created

    async def _redeemable(self, approval: Approval) -> Redemption:
        context = self._context
        now = context.clock.now()
        state = approval.state
        if state is ApprovalState.PENDING and approval.expires_at > now:
            raise ApprovalPendingError(
                "waiting for approval",
                approval_id=approval.id,
                interval=context.settings.approvals.poll_interval_seconds,
                expires_in=max(
                    1, math.ceil((approval.expires_at - now).total_seconds())
                ),
            )
        if (
            state is ApprovalState.APPROVED
            and approval.redeem_by is not None
            and approval.redeem_by > now
            and approval.uses < approval.max_uses
        ):
            return Redemption(approval=approval, window=approval.redeem_by)
        if state in {ApprovalState.PENDING, ApprovalState.APPROVED}:
            await self._expire(approval, now)
            state = ApprovalState.EXPIRED
        if state is ApprovalState.DENIED:
            raise ApprovalDeniedError("an approver denied this request")
        if state is ApprovalState.EXPIRED:
            raise ApprovalExpiredError(
                "the approval expired; repeat the request without approval_id to "
                "ask again"
            )
        if state is ApprovalState.REDEEMED:
            raise InvalidGrantError("the approval was already redeemed")
        raise InvalidGrantError(f"the approval was cancelled ({approval.end_reason})")

    async def _expire(self, approval: Approval, now: dt.datetime) -> None:
        def expire(conn: Connection, audit: AuditRecorder) -> None:
            reason = (
                "not approved in time"
                if approval.state is ApprovalState.PENDING
                else "not redeemed in time"
            )
            if approval_rows.end_approval(
                conn, approval.id, ApprovalState.EXPIRED, now=now, reason=reason
            ):
                self._events.end_all(
                    conn, audit, [approval.id], actor="system", now=now
                )

        await self._context.trail.write(expire)

    def consume(
        self,
        redemption: Redemption,
        *,
        lease_id: str,
        actor: str,
        now: dt.datetime,
    ) -> RedeemStep:
        """
        Return the step that spends the approval in the lease's transaction.

        The step raises ``InvalidGrantError`` (rolling the lease back) when another
        request spent the last use first, or the approval ended meanwhile.
        """
        return RedeemStep(self._events, redemption, lease_id, actor, now)


class RedeemStep:
    """Spend one use of an approval, inside the transaction that records the lease."""

    def __init__(
        self,
        events: ApprovalEvents,
        redemption: Redemption,
        lease_id: str,
        actor: str,
        now: dt.datetime,
    ) -> None:
        """Keep what the step needs."""
        self._events = events
        self._redemption = redemption
        self._lease_id = lease_id
        self._actor = actor
        self._now = now

    def __call__(self, conn: Connection, audit: AuditRecorder) -> None:
        """
        Spend the use and audit the redemption.

        Raises:
            InvalidGrantError: no use was left (a concurrent redemption won).
        """
        approval = self._redemption.approval
        if not approval_rows.consume_approval(
            conn, approval.id, lease_id=self._lease_id, now=self._now
        ):
            raise InvalidGrantError("the approval was already redeemed")
        spent = approval_rows.get_approval(conn, approval.id) or approval
        self._events.record(
            conn,
            audit,
            spent,
            "approval.redeemed",
            actor=self._actor,
            now=self._now,
            lease_id=self._lease_id,
            uses=spent.uses,
        )
