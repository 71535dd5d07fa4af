"""
Renew an engine credential: extend a live PostgreSQL role or Redis user in place.

Policy is asked again (the context may have changed since issuance) and the new
expiry obeys the same caps as a new credential; an SSH certificate cannot be
extended (its validity is signed into it), so the agent asks for a new one.
"""

from __future__ import annotations

from typing import Any

from gatepass.audit import Outcome
from gatepass.broker.context import BrokerContext
from gatepass.broker.facts import task_requests
from gatepass.broker.single_use import replay_error
from gatepass.broker.task_access import PresentedTaskToken
from gatepass.broker.trail import Attempt, AuditRecorder
from gatepass.clock import to_epoch
from gatepass.errors import (
    ConflictError,
    GatepassError,
    InvalidTargetError,
    NotFoundError,
)
from gatepass.models import LeaseState
from gatepass.single_use import SingleUse
from gatepass.store import Connection
from gatepass.store import leases as lease_rows
from gatepass.store import replay as replay_rows

__all__ = ["RenewCredential"]


class RenewCredential:
    """
    Extend live engine credentials.

    Args:
        context: the broker's collaborators.
    """

    def __init__(self, context: BrokerContext) -> None:
        """Keep the context."""
        self._context = context

    async def __call__(
        self, lease_id: str, presented: PresentedTaskToken
    ) -> dict[str, Any]:
        """
        Serve ``POST /v1/credentials/{lease_id}/renew``.

        Returns:
            The lease id, the new expiry and the seconds until it.

        Raises:
            GatepassError: refused or failed (audited); the lease keeps its expiry.
        """
        context = self._context
        attempt = Attempt(kind="credential.renew", subject=lease_id[:64])
        try:
            context.seal.require_unsealed()
            verified = await context.task_access.open_task(presented, attempt)
            attempt.subject = lease_id[:64]
            task = verified.task
            lease = await context.database.read(
                lambda c: lease_rows.get_lease(c, lease_id)
            )
            if lease is None or lease.task_id != task.id:
                raise NotFoundError("no such lease in this task")
            if lease.state is not LeaseState.ACTIVE:
                raise ConflictError(f"lease is {lease.state.value}")
            target = context.catalog.resolve(lease.target)
            agent = await context.directory.active_agent(verified.claims.agent_id)
            now = context.clock.now()
            checks = [(action, target) for action in lease.actions]
            # An approval yields one credential with the approved TTL; a renewal
            # would stretch it without a human.
            verdict = context.authority.grant(
                task_requests(agent, task, checks, now),
                attempt,
                why="a credential that needs approval cannot be renewed; "
                "request a new one",
            )
            wanted = now + context.authority.access_ttl(
                verdict.profile, target, task, now
            )
            engine = context.engines.get(target.name)
            if engine is None:
                raise InvalidTargetError("target has no engine configured")
            expires_at = min(await engine.renew(lease.handle, wanted), wanted)
        except GatepassError as error:
            await context.trail.refuse(attempt, error)
            raise
        attempt.data["expires_at"] = expires_at.isoformat()
        proof = verified.proof

        def extend(conn: Connection, audit: AuditRecorder) -> SingleUse | bool:
            replayed = replay_rows.claim_single_use(conn, [proof.single_use], now)
            if replayed is not None:
                return replayed
            if not lease_rows.extend_lease(conn, lease.id, expires_at):
                return False
            audit.record(conn, attempt, Outcome.ALLOW)
            return True

        extended = await context.trail.write(extend)
        if isinstance(extended, SingleUse):
            refusal = replay_error(extended)
            await context.trail.refuse(attempt, refusal)
            raise refusal
        if not extended:
            raise ConflictError("lease ended during renewal")
        return {
            "lease_id": lease.id,
            "expires_at": expires_at.isoformat().replace("+00:00", "Z"),
            "expires_in": max(0, to_epoch(expires_at) - to_epoch(now)),
        }
