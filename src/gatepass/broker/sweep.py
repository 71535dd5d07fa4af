"""
The sweep: end what time ended (background job, every two seconds).

Overdue tasks are expired with their leases revoked, overdue leases expired
(access tokens) or sent to ``revoking`` (engine credentials, which must still be
removed from their targets), and spent single-use values and idempotency keys that
can no longer matter are forgotten. Time is the broker's step-proof clock, so a
wall clock set back cannot keep anything alive past its true expiry.
"""

from __future__ import annotations

import datetime as dt

from gatepass.audit import AuditEntry, Outcome
from gatepass.broker.approval_events import ApprovalEvents
from gatepass.broker.context import BrokerContext
from gatepass.broker.revocations import RevocationWorker
from gatepass.broker.trail import AuditRecorder
from gatepass.clock import SystemClock
from gatepass.ids import TaskId
from gatepass.store import Connection
from gatepass.store import approvals as approval_rows
from gatepass.store import idempotency as idempotency_rows
from gatepass.store import leases as lease_rows
from gatepass.store import replay as replay_rows
from gatepass.store import tasks as task_rows

__all__ = ["Sweeper"]

# How often the live-lease gauge is recounted.
_COUNT_EVERY = dt.timedelta(seconds=30)


class Sweeper:
    """
    Expire overdue tasks and leases.

    Args:
        context: the broker's collaborators.
        revocations: drives engine revocations at once.
    """

    def __init__(self, context: BrokerContext, revocations: RevocationWorker) -> None:
        """Keep the collaborators."""
        self._context = context
        self._revocations = revocations
        self._events = ApprovalEvents(context.notifier)
        self._counted_at: dt.datetime | None = None

    async def _count_live_leases(self, now: dt.datetime) -> None:
        # Counting a million live leases takes hundreds of milliseconds: on the
        # read side (never inside the write transaction, where it held every
        # issuance of the process back), and at most every _COUNT_EVERY.
        if self._counted_at is not None and now - self._counted_at < _COUNT_EVERY:
            return
        self._counted_at = now
        live = await self._context.database.read(lease_rows.count_live_leases)
        self._context.metrics.live_leases.set(live)

    async def sweep(self) -> tuple[list[TaskId], int]:
        """
        Expire overdue tasks (revoking their leases) and overdue leases.

        Returns:
            The expired task ids and how many leases expired on their own.
        """
        context = self._context
        now = context.clock.now()
        if isinstance(context.clock, SystemClock):
            context.metrics.clock_offset.set(round(context.clock.wall_offset(), 3))

        def sweep(conn: Connection, audit: AuditRecorder) -> tuple[list[TaskId], int]:
            expired = task_rows.expire_tasks(conn, now)
            for task_id in expired:
                revoked = lease_rows.revoke_task_leases(conn, task_id, now)
                audit.append(
                    conn,
                    AuditEntry(
                        at=now,
                        kind="task.expire",
                        outcome=Outcome.OK,
                        actor="system",
                        subject=task_id,
                        data={"revoked_leases": list(revoked)},
                    ),
                )
            count = lease_rows.expire_leases(conn, now)
            # Approvals of ended tasks are cancelled; overdue ones expire (a
            # request not approved in time is denied).
            ended = approval_rows.cancel_approvals(
                conn, now=now, reason="task expired", task_ids=expired
            )
            ended += approval_rows.expire_approvals(conn, now)
            self._events.end_all(conn, audit, ended, actor="system", now=now)
            replay_rows.forget_expired_values(conn, now)
            idempotency_rows.forget_expired_keys(conn, now)
            return expired, count

        expired, lease_count = await context.trail.write(sweep)
        await self._count_live_leases(now)
        context.directory.forget_tasks(list(expired))
        if expired or lease_count:
            context.signals.revoked()
            await self._revocations.run()
        return expired, lease_count
