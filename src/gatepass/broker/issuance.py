"""
Recording a lease before its credential leaves (intent first), once for every kind.

An access token and an engine credential are both recorded the same way: in one
transaction, the request's DPoP proof is spent, the lease is inserted only if its
task is still open and unexpired (a share lock makes a concurrent close wait or
win), anything else the request claims is claimed, and the audit record appended.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from gatepass.audit import Outcome
from gatepass.broker.context import BrokerContext
from gatepass.broker.single_use import replay_error
from gatepass.broker.trail import Attempt, AuditRecorder
from gatepass.errors import GatepassError
from gatepass.models import Lease
from gatepass.single_use import SingleUse
from gatepass.store import Connection
from gatepass.store import leases as lease_rows
from gatepass.store import replay as replay_rows

__all__ = ["record_lease"]


async def record_lease(
    context: BrokerContext,
    lease: Lease,
    *,
    spent: SingleUse,
    now: dt.datetime,
    attempt: Attempt,
    closed: GatepassError,
    also: Callable[[Connection, AuditRecorder], None] | None = None,
) -> None:
    """
    Commit a lease, its spent proof and its audit record, or refuse.

    Args:
        context: the broker's collaborators.
        lease: the lease to record.
        spent: the request's DPoP proof id.
        now: the request's time (the task must be open and unexpired at it).
        attempt: what the audit record says (outcome ``allow``).
        closed: the refusal when the task ended meanwhile.
        also: more to do in the same transaction after the lease is inserted (it
            may record more audit entries); it raises to roll everything back (an
            idempotency key already claimed, an approval already redeemed).

    Raises:
        DPoPProofError: the proof was already spent (a replay).
        GatepassError: ``closed``, when the task is no longer open.
    """

    def record(conn: Connection, audit: AuditRecorder) -> SingleUse | bool:
        replayed = replay_rows.claim_single_use(conn, [spent], now)
        if replayed is not None:
            return replayed
        if not lease_rows.insert_lease_if_task_open(conn, lease, now):
            return False
        if also is not None:
            also(conn, audit)
        audit.record(conn, attempt, Outcome.ALLOW)
        return True

    recorded = await context.trail.write(record)
    if isinstance(recorded, SingleUse):
        raise replay_error(recorded)
    if not recorded:
        context.directory.forget_task(lease.task_id)
        raise closed
