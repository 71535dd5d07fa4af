"""
Quarantine an agent: disable it, close its tasks, tell its owners.

The response of a ``[[reuse.rules]]`` rule with ``response = "quarantine"``: the
agent is disabled through the same use case an operator's ``gatepass agents
disable`` runs (every task closed, every lease revoked, engine credentials cut at
once), then one ``agent.quarantined`` notice per approver group of its owners (and
of the rule's ``notify_groups``) goes to the webhook outbox, signed and retried
like approval notifications, with ``agent.quarantine`` audited beside it.
"""

from __future__ import annotations

from typing import Any

from gatepass.audit import Outcome
from gatepass.broker.agents import Agents
from gatepass.broker.context import BrokerContext
from gatepass.broker.trail import Attempt, AuditRecorder
from gatepass.errors import ConflictError, NotFoundError
from gatepass.store import Connection
from gatepass.store import operators as operator_rows

__all__ = ["QUARANTINE_ACTOR", "Quarantine"]

QUARANTINE_ACTOR = "system:reuse"
"""The audit actor of everything a reuse response does."""


class Quarantine:
    """
    Disable agents caught reusing credentials, and notify their owners.

    Args:
        context: the broker's collaborators.
        agents: the agent registry (its disable use case).
    """

    def __init__(self, context: BrokerContext, agents: Agents) -> None:
        """Keep the collaborators."""
        self._context = context
        self._agents = agents

    async def quarantine(
        self, agent_id: str, *, kind: str, notify_groups: list[str]
    ) -> dict[str, Any] | None:
        """
        Disable the agent and queue its owners' notices.

        Args:
            agent_id: the agent.
            kind: the reuse kind that triggered it.
            notify_groups: more approver groups to tell.

        Returns:
            What was done, or None when the agent is unknown or already disabled.
        """
        context = self._context
        try:
            agent = await self._agents.disable_as(
                QUARANTINE_ACTOR, agent_id, reason=f"quarantined: {kind}"
            )
        except (ConflictError, NotFoundError):
            return None
        now = context.clock.now()
        attempt = Attempt(
            kind="agent.quarantine", actor=QUARANTINE_ACTOR, subject=agent.id
        )
        body: dict[str, object] = {
            "event": "agent.quarantined",
            "agent_id": agent.id,
            "agent_name": agent.name,
            "tenant": agent.tenant,
            "owners": list(agent.owners),
            "reason": kind,
            "at": now.isoformat(),
        }

        def change(conn: Connection, audit: AuditRecorder) -> list[str]:
            groups: list[str] = []
            for owner in agent.owners:
                operator = operator_rows.get_operator_by_name(conn, owner)
                if operator is not None:
                    groups.extend(sorted(operator.groups))
            groups.extend(notify_groups)
            queued = context.notifier.enqueue_notice(
                conn, "agent.quarantined", groups, body, now
            )
            attempt.data.update(
                reason=kind, owners=list(agent.owners), notified_groups=queued
            )
            audit.record(conn, attempt, Outcome.OK)
            return queued

        queued = await context.trail.write(change)
        return {"agent_id": agent.id, "notified_groups": queued}
