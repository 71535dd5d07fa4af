"""
The live policy set: its status, reloading it, and re-deciding what is live.

A reload that refuses (a syntax error, a schema violation, an annotation out of
range) leaves the old set live. A reload that changes the set re-runs the policy
over every open task and live lease (a context change, DESIGN.md): a task the new
set no longer allows is closed, a lease it no longer allows revoked.
"""

from __future__ import annotations

from typing import Any

from gatepass.audit import Outcome
from gatepass.broker.closing import Closing
from gatepass.broker.context import BrokerContext
from gatepass.broker.facts import task_requests
from gatepass.broker.trail import Attempt
from gatepass.errors import ConflictError, InvalidRequestError, NotFoundError
from gatepass.models import Lease, TaskState
from gatepass.policy import OPEN_TASK
from gatepass.store import leases as lease_rows
from gatepass.store import tasks as task_rows

__all__ = ["PolicyAdmin"]


class PolicyAdmin:
    """
    Status and reload of the live policy set.

    Args:
        context: the broker's collaborators.
        closing: closes tasks and revokes leases the new set no longer allows.
    """

    def __init__(self, context: BrokerContext, closing: Closing) -> None:
        """Keep the collaborators."""
        self._context = context
        self._closing = closing

    def status(self) -> dict[str, Any]:
        """Return what policy set is live."""
        holder = self._context.policies
        return {
            "loaded_at": holder.loaded_at.isoformat(),
            "policy_count": holder.current.policy_count,
            "digest": holder.current.digest,
            "last_error": holder.last_error,
        }

    async def reload(self, actor: str = "system") -> dict[str, Any]:
        """
        Reload policies from disk and re-evaluate what is live.

        Returns:
            The policy status plus ``revoked_leases`` and ``closed_tasks``.

        Raises:
            InvalidRequestError: the new set is broken (the old one stays live).
        """
        context = self._context
        result = context.policies.reload()
        status = self.status()
        attempt = Attempt(kind="policy.reload", actor=actor)
        if result.error is not None:
            context.metrics.policy_reloads.labels(outcome="error").inc()
            attempt.data["error"] = result.error
            await context.trail.record(attempt, Outcome.ERROR)
            raise InvalidRequestError(f"policy set refused: {result.error}")
        context.metrics.policy_reloads.labels(outcome="ok").inc()
        attempt.data.update(digest=result.digest, changed=result.changed)
        await context.trail.record(attempt, Outcome.OK)
        revoked, closed = await self.reevaluate(actor) if result.changed else ([], [])
        status.update(revoked_leases=revoked, closed_tasks=closed)
        return status

    async def reload_if_changed(self) -> None:
        """Reload when the files changed on disk (the background job's tick)."""
        if self._context.policies.changed_on_disk():
            await self.reload("system")

    async def reevaluate(self, actor: str) -> tuple[list[str], list[str]]:
        """
        Re-run the policy over live leases and open tasks after a context change.

        Returns:
            The revoked lease ids and the closed task ids.
        """
        context = self._context
        directory, authority = context.directory, context.authority
        now = context.clock.now()
        live: list[Lease] = await context.database.read(lease_rows.live_leases)
        open_tasks = await context.database.read(
            lambda c: task_rows.list_tasks(c, state=TaskState.OPEN.value, limit=10_000)
        )
        closed: list[str] = []
        for task in open_tasks:
            agent = await directory.agent(task.agent_id)
            targets = [context.catalog.get(name) for name in task.targets]
            if agent is None or any(t is None for t in targets):
                continue
            checks = [(OPEN_TASK, t) for t in targets if t is not None]
            requests = task_requests(agent, task, checks, now)
            if not all(d.allowed for d in authority.decide(requests)):
                try:
                    await self._closing.close_task(
                        task.id, actor=actor, reason="policy no longer allows the task"
                    )
                    closed.append(task.id)
                except (ConflictError, NotFoundError):
                    continue
        revoked: list[str] = []
        for lease in live:
            if lease.task_id in closed:
                continue
            lease_task = await directory.task(lease.task_id)
            agent = await directory.agent(lease.agent_id)
            target = context.catalog.get(lease.target)
            if lease_task is None or agent is None or target is None:
                continue
            checks = [(action, target) for action in lease.actions]
            decisions = authority.decide(task_requests(agent, lease_task, checks, now))
            if not all(d.allowed for d in decisions):
                try:
                    await self._closing.revoke_lease(
                        lease.id,
                        actor=actor,
                        reason="policy no longer allows the lease",
                    )
                    revoked.append(lease.id)
                except (ConflictError, NotFoundError):
                    continue
        return revoked, closed
