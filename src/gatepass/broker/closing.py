"""
Close a task (everything it was issued dies with it) and revoke single leases.

Closing a task also closes every task delegated from it, at any depth, in the
same transaction: their leases are revoked and their approvals cancelled with it.

Closing a task revokes every lease it holds in the same transaction (ground rule
4); engine leases go to ``revoking`` and are driven through their engines at once,
so a PostgreSQL session or a Redis connection is cut at close, not at expiry.
The agent closes its own task with its task token (DPoP-bound); an operator closes
any task with an admin token; RFC 7009 revocation of a task token closes it too.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from gatepass.audit import Outcome
from gatepass.broker.approval_events import ApprovalEvents
from gatepass.broker.context import BrokerContext
from gatepass.broker.revocations import RevocationWorker
from gatepass.broker.task_access import PresentedTaskToken
from gatepass.broker.trail import Attempt, AuditRecorder
from gatepass.errors import ConflictError, GatepassError, NotFoundError, TokenError
from gatepass.ids import LeaseId, TaskId
from gatepass.models import Lease, Task, TaskState
from gatepass.store import Connection
from gatepass.store import approvals as approval_rows
from gatepass.store import leases as lease_rows
from gatepass.store import tasks as task_rows

__all__ = ["Closing", "EndedTree", "end_descendants"]


@dataclass(frozen=True, slots=True)
class EndedTree:
    """What ending a task's descendants ended: the tasks and their leases."""

    tasks: list[TaskId]
    leases: list[LeaseId]


def end_descendants(
    conn: Connection,
    audit: AuditRecorder,
    events: ApprovalEvents,
    task_id: str,
    *,
    actor: str,
    now: dt.datetime,
) -> EndedTree:
    """
    Close every open task delegated (at any depth) from ``task_id``.

    In the caller's transaction: each descendant is closed, its leases revoked
    (engine leases go to ``revoking``), its approvals cancelled, and one
    ``task.close`` record per descendant names the ancestor that ended it.
    """
    tasks: list[TaskId] = []
    leases: list[LeaseId] = []
    descendants = task_rows.open_descendants(conn, task_id)
    for child in descendants:
        if not task_rows.close_task(
            conn, child, now=now, reason=f"parent task {task_id} ended"
        ):
            continue
        revoked = lease_rows.revoke_task_leases(conn, child, now)
        audit.record(
            conn,
            Attempt(
                kind="task.close",
                actor=actor,
                subject=child,
                data={
                    "reason": "ancestor task ended",
                    "ancestor": task_id,
                    "revoked_leases": list(revoked),
                },
            ),
            Outcome.OK,
        )
        tasks.append(child)
        leases.extend(revoked)
    if tasks:
        cancelled = approval_rows.cancel_approvals(
            conn, now=now, reason="ancestor task ended", task_ids=tasks
        )
        events.end_all(conn, audit, cancelled, actor=actor, now=now)
    return EndedTree(tasks=tasks, leases=leases)


class Closing:
    """
    End tasks and leases.

    Args:
        context: the broker's collaborators.
        revocations: drives engine revocations at once.
    """

    def __init__(self, context: BrokerContext, revocations: RevocationWorker) -> None:
        """Keep the collaborators."""
        self._context = context
        self._revocations = revocations
        self._events = ApprovalEvents(context.notifier)

    async def close_task(
        self,
        task_id: str,
        *,
        actor: str,
        reason: str,
        state: TaskState = TaskState.CLOSED,
    ) -> Task:
        """
        Close a task and revoke every lease it holds, in one transaction.

        Raises:
            NotFoundError: no such task.
            ConflictError: the task had already ended.
        """
        context = self._context
        now = context.clock.now()
        attempt = Attempt(kind="task.close", actor=actor, subject=task_id)
        attempt.data["reason"] = reason[:200]

        def close(
            conn: Connection, audit: AuditRecorder
        ) -> tuple[Task | None, bool, list[LeaseId]]:
            changed = task_rows.close_task(
                conn, task_id, now=now, reason=reason, state=state
            )
            revoked: list[LeaseId] = []
            if changed:
                revoked = lease_rows.revoke_task_leases(conn, task_id, now)
                attempt.data["revoked_leases"] = list(revoked)
                ended = end_descendants(
                    conn, audit, self._events, task_id, actor=actor, now=now
                )
                if ended.tasks:
                    attempt.data["closed_descendants"] = len(ended.tasks)
                revoked += ended.leases
                audit.record(conn, attempt, Outcome.OK)
                closed_tree.extend(ended.tasks)
                # Its pending approvals die with it: nobody votes on a dead task.
                cancelled = approval_rows.cancel_approvals(
                    conn, now=now, reason="task closed", task_ids=[task_id]
                )
                self._events.end_all(conn, audit, cancelled, actor=actor, now=now)
            return task_rows.get_task(conn, task_id), changed, revoked

        closed_tree: list[TaskId] = []
        task, changed, revoked = await context.trail.write(close)
        context.directory.forget_task(task_id)
        context.directory.forget_tasks(list(closed_tree))
        if task is None:
            error: GatepassError = NotFoundError("no such task")
            await context.trail.refuse(attempt, error)
            raise error
        if not changed:
            raise ConflictError(f"task is already {task.state.value}")
        context.metrics.revocations.labels(reason="task_closed").inc(len(revoked))
        context.signals.revoked()
        if revoked:
            # Engine credentials are removed now, so live sessions are cut at close.
            await self._revocations.run()
        return task

    async def close_as_agent(self, task_id: str, presented: PresentedTaskToken) -> Task:
        """
        Close a task on behalf of the agent holding its task token.

        Raises:
            TokenError: the task token is invalid or names another task.
            DPoPProofError: the proof is missing or not by the task's key.
            ConflictError: the task had already ended.
        """
        context = self._context
        attempt = Attempt(kind="task.close", subject=task_id)
        try:
            claims, _ = context.task_access.verify_bound(presented, attempt)
            if claims.task_id != task_id:
                raise TokenError("token is for another task")
        except GatepassError as error:
            await context.trail.refuse(attempt, error)
            raise
        return await self.close_task(
            task_id, actor=attempt.actor, reason="closed by agent"
        )

    async def revoke_lease(self, lease_id: str, *, actor: str, reason: str) -> Lease:
        """
        Revoke one lease.

        Raises:
            NotFoundError: no such lease.
            ConflictError: it is no longer live.
        """
        context = self._context
        now = context.clock.now()
        attempt = Attempt(kind="lease.revoke", actor=actor, subject=lease_id)
        attempt.data["reason"] = reason[:200]

        def revoke(conn: Connection, audit: AuditRecorder) -> tuple[Lease | None, bool]:
            changed = lease_rows.revoke_lease(conn, lease_id, now)
            if changed:
                audit.record(conn, attempt, Outcome.OK)
            return lease_rows.get_lease(conn, lease_id), changed

        lease, changed = await context.trail.write(revoke)
        if lease is None:
            error: GatepassError = NotFoundError("no such lease")
            await context.trail.refuse(attempt, error)
            raise error
        if not changed:
            raise ConflictError(f"lease is already {lease.state.value}")
        context.metrics.revocations.labels(
            reason=reason.split(" ", maxsplit=1)[0][:32]
        ).inc()
        context.signals.revoked()
        return lease
