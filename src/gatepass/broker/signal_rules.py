"""
What a verified SET does: its rules' actions, resolved to agents, tenants, environments.

``ssf/rules.py`` says which rules match an event; this module resolves the names
the event's subject carries (an agent's name or id, an owner's operator name, a
tenant, an environment) and applies each action: ``set_risk``,
``freeze_environment`` and ``declare_incident`` store a signal (in the receipt's
transaction), ``revoke_tasks`` closes the open tasks of what it names through the
closing path. A name that resolves to nothing does nothing (and the receipt's
audit record says which signals were set).
"""

from __future__ import annotations

import datetime as dt

from gatepass.broker.closing import Closing
from gatepass.broker.context import BrokerContext
from gatepass.errors import ConflictError, NotFoundError
from gatepass.ids import is_id
from gatepass.models import Agent, TaskState
from gatepass.ssf.receive import VerifiedSET
from gatepass.ssf.rules import SignalAction, plan
from gatepass.store import Connection
from gatepass.store import agents as agent_rows
from gatepass.store import context_signals as signal_rows
from gatepass.store import tasks as task_rows
from gatepass.store.context_signals import StoredSignal

__all__ = ["SignalEffects"]

_OPEN_LIMIT = 10_000


def _agents_named(conn: Connection, action: SignalAction) -> list[Agent]:
    """Return the agents an action's subject names (by name or id, or by owner)."""
    found: dict[str, Agent] = {}
    if action.match == "agent":
        for name in action.names:
            agent = (
                agent_rows.get_agent(conn, name)
                if is_id(name, "agt")
                else agent_rows.get_agent_by_name(conn, name)
            )
            if agent is not None:
                found[agent.id] = agent
    elif action.match == "owner":
        names = set(action.names)
        for agent in agent_rows.list_agents(conn):
            if names.intersection(agent.owners):
                found[agent.id] = agent
    return list(found.values())


class SignalEffects:
    """
    Apply the rules of ``[[signals.rules]]`` to verified SETs.

    Args:
        context: the broker's collaborators.
        closing: closes the tasks ``revoke_tasks`` names.
    """

    def __init__(self, context: BrokerContext, closing: Closing) -> None:
        """Keep the collaborators."""
        self._context = context
        self._closing = closing

    def plan(self, verified: VerifiedSET, now: dt.datetime) -> list[SignalAction]:
        """Return the actions of every rule matching the SET's event."""
        return plan(
            self._context.settings.signals.rules,
            event_type=verified.event_type,
            issuer=verified.issuer,
            subject=verified.subject,
            now=now,
        )

    def store(
        self,
        conn: Connection,
        actions: list[SignalAction],
        verified: VerifiedSET,
        now: dt.datetime,
    ) -> list[tuple[str, str]]:
        """
        Store the signals the actions set, in the receipt's transaction.

        Returns:
            The ``(kind, scope)`` of every signal set.
        """
        scopes: list[tuple[str, str]] = []
        source = f"ssf:{verified.issuer}"
        reason = verified.event_type.rsplit("/", 1)[-1]
        for action in actions:
            targets: list[tuple[str, str, str]] = []
            if action.effect == "set_risk":
                targets = [
                    ("risk", agent.id, action.risk)
                    for agent in _agents_named(conn, action)
                ]
            elif action.effect == "freeze_environment":
                targets = [("freeze", name, "on") for name in action.names[:1]]
            elif action.effect == "declare_incident":
                targets = [("incident", name, "on") for name in action.names[:1]]
            for kind, scope, value in targets:
                signal_rows.put_signal(
                    conn,
                    StoredSignal(
                        kind=kind,
                        scope=scope[:255],
                        value=value,
                        reason=reason,
                        source=source,
                        set_at=now,
                        until=action.until,
                    ),
                )
                scopes.append((kind, scope))
        return scopes

    async def revoke_tasks(
        self, actions: list[SignalAction], *, actor: str, reason: str
    ) -> list[str]:
        """
        Close the open tasks the ``revoke_tasks`` actions name.

        Returns:
            The closed task ids.
        """
        wanted = [a for a in actions if a.effect == "revoke_tasks"]
        if not wanted:
            return []

        def find(conn: Connection) -> list[str]:
            ids: dict[str, None] = {}
            for action in wanted:
                if action.match in {"agent", "owner"}:
                    for agent in _agents_named(conn, action):
                        ids.update(
                            dict.fromkeys(
                                task_rows.open_task_ids_of_agent(conn, agent.id)
                            )
                        )
                    continue
                names = set(action.names)
                for task in task_rows.list_tasks(
                    conn, state=TaskState.OPEN.value, limit=_OPEN_LIMIT
                ):
                    value = (
                        task.tenant if action.match == "tenant" else task.environment
                    )
                    if value in names:
                        ids[task.id] = None
            return list(ids)

        closed: list[str] = []
        for task_id in await self._context.database.read(find):
            try:
                await self._closing.close_task(task_id, actor=actor, reason=reason)
            except (ConflictError, NotFoundError):
                continue
            closed.append(task_id)
        return closed
