"""
Register, list and disable agents.

Disabling an agent ends everything it holds: it can no longer authenticate, and
every open task it has is closed with its leases revoked, in one transaction; engine
credentials are driven through their engines at once.
"""

from __future__ import annotations

from gatepass.audit import Outcome
from gatepass.broker.approval_events import ApprovalEvents
from gatepass.broker.callers import Caller
from gatepass.broker.closing import end_descendants
from gatepass.broker.context import BrokerContext
from gatepass.broker.requests import AgentRegistration
from gatepass.broker.revocations import RevocationWorker
from gatepass.broker.trail import Attempt, AuditRecorder
from gatepass.errors import (
    ConflictError,
    GatepassError,
    InvalidRequestError,
    NotFoundError,
)
from gatepass.ids import new_agent_id
from gatepass.models import Agent, AgentStatus
from gatepass.store import Connection
from gatepass.store import agents as agent_rows
from gatepass.store import approvals as approval_rows
from gatepass.store import leases as lease_rows
from gatepass.store import operators as operator_rows
from gatepass.store import tasks as task_rows

__all__ = ["Agents"]


def _check_owners(conn: Connection, owners: tuple[str, ...]) -> None:
    # Checked in the registration's transaction: an owner disabled a moment
    # before cannot slip in. Owners matter to approvals (@exclude_owners).
    for name in owners:
        operator = operator_rows.get_operator_by_name(conn, name)
        if operator is None or operator.status is not AgentStatus.ACTIVE:
            shown = name if len(name) <= 64 else f"{name[:64]}…"
            raise InvalidRequestError(f"owner {shown!r} is not an active operator")


class Agents:
    """
    The agent registry.

    Args:
        context: the broker's collaborators.
        revocations: drives engine revocations at once.
    """

    def __init__(self, context: BrokerContext, revocations: RevocationWorker) -> None:
        """Keep the collaborators."""
        self._context = context
        self._revocations = revocations

    async def add(self, caller: Caller, registration: AgentRegistration) -> Agent:
        """
        Register an agent.

        Raises:
            ConflictError: the name is taken (audited).
            InvalidRequestError: an owner is not an active operator (audited).
        """
        context = self._context
        agent = Agent(
            id=new_agent_id(),
            name=registration.name,
            tenant=registration.tenant,
            labels=dict(registration.labels),
            public_jwk=registration.public_jwk,
            algorithm=registration.algorithm,
            created_at=context.clock.now(),
            owners=registration.owners,
        )
        data: dict[str, object] = {"name": agent.name, "tenant": agent.tenant}
        if agent.owners:
            data["owners"] = list(agent.owners)
        attempt = Attempt(
            kind="agent.add", actor=caller.actor, subject=agent.id, data=data
        )

        def insert(conn: Connection, audit: AuditRecorder) -> None:
            _check_owners(conn, agent.owners)
            agent_rows.insert_agent(conn, agent)
            audit.record(conn, attempt, Outcome.OK)

        try:
            await context.trail.write(insert)
        except GatepassError as error:
            await self.reject(caller, error)
            raise
        return agent

    async def reject(self, caller: Caller, error: GatepassError) -> None:
        """
        Audit a registration refused (a malformed body, a taken name).

        Raises:
            StoreError: the refusal could not be audited.
        """
        await self._context.trail.refuse(
            Attempt(kind="agent.add", actor=caller.actor), error
        )

    async def find(
        self, *, tenant: str | None = None, status: AgentStatus | None = None
    ) -> list[Agent]:
        """Return registered agents, optionally of one tenant or status."""
        wanted = None if status is None else status.value
        return await self._context.database.read(
            lambda c: agent_rows.list_agents(c, tenant=tenant, status=wanted)
        )

    async def get(self, agent_id: str) -> Agent:
        """
        Return one agent.

        Raises:
            NotFoundError: no such agent.
        """
        agent = await self._context.database.read(
            lambda c: agent_rows.get_agent(c, agent_id)
        )
        if agent is None:
            raise NotFoundError("no such agent")
        return agent

    async def disable(self, caller: Caller, agent_id: str) -> Agent:
        """
        Disable an agent and end everything it holds.

        Raises:
            NotFoundError: no such agent.
            ConflictError: it is already disabled.
        """
        return await self.disable_as(caller.actor, agent_id)

    async def disable_as(
        self, actor: str, agent_id: str, *, reason: str = "agent disabled"
    ) -> Agent:
        """
        Disable an agent on behalf of ``actor`` (an operator, or the quarantine).

        Args:
            actor: the audit actor.
            agent_id: the agent.
            reason: why its tasks were closed, for their records.

        Raises:
            NotFoundError: no such agent.
            ConflictError: it is already disabled.
        """
        context = self._context
        now = context.clock.now()
        events = ApprovalEvents(context.notifier)

        def disable(
            conn: Connection, audit: AuditRecorder
        ) -> tuple[Agent | None, bool, list[str]]:
            changed = agent_rows.set_agent_status(
                conn, agent_id, AgentStatus.DISABLED, now
            )
            closed: list[str] = []
            if changed:
                for task_id in task_rows.open_task_ids_of_agent(conn, agent_id):
                    task_rows.close_task(conn, task_id, now=now, reason=reason)
                    revoked = lease_rows.revoke_task_leases(conn, task_id, now)
                    closed.append(task_id)
                    # Everything delegated from its tasks ends with them.
                    below = end_descendants(
                        conn, audit, events, task_id, actor=actor, now=now
                    )
                    closed.extend(below.tasks)
                    closing = Attempt(
                        kind="task.close",
                        actor=actor,
                        subject=task_id,
                        data={"reason": reason, "revoked_leases": revoked},
                    )
                    audit.record(conn, closing, Outcome.OK)
                cancelled = approval_rows.cancel_approvals(
                    conn, now=now, reason=reason, agent_id=agent_id
                )
                events.end_all(conn, audit, cancelled, actor=actor, now=now)
                disabling = Attempt(
                    kind="agent.disable",
                    actor=actor,
                    subject=agent_id,
                    data={"tasks": closed},
                )
                audit.record(conn, disabling, Outcome.OK)
            return agent_rows.get_agent(conn, agent_id), changed, closed

        agent, changed, closed = await context.trail.write(disable)
        context.directory.forget_agent(agent_id)
        context.directory.forget_tasks(closed)
        if closed:
            context.signals.revoked()
            await self._revocations.run()
        if agent is None:
            raise NotFoundError("no such agent")
        if not changed:
            raise ConflictError("agent is already disabled")
        return agent
