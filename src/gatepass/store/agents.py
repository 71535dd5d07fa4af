"""Persistence of registered agents."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Connection, Row, select, update
from sqlalchemy.exc import IntegrityError

from gatepass.errors import ConflictError
from gatepass.ids import AgentId
from gatepass.models import Agent, AgentStatus
from gatepass.store.anchors import note_ended
from gatepass.store.tables import agents

__all__ = [
    "get_agent",
    "get_agent_by_name",
    "insert_agent",
    "list_agents",
    "set_agent_status",
]


def _to_agent(row: Row[Any]) -> Agent:
    return Agent(
        id=AgentId(row.id),
        name=row.name,
        tenant=row.tenant,
        labels=dict(row.labels),
        public_jwk=dict(row.public_jwk),
        algorithm=row.algorithm,
        status=AgentStatus(row.status),
        created_at=row.created_at,
        issuer=row.issuer,
        owners=tuple(row.owners or ()),
    )


def insert_agent(conn: Connection, agent: Agent) -> None:
    """
    Record a new agent.

    Raises:
        ConflictError: an agent with that name already exists.
    """
    try:
        with conn.begin_nested():
            conn.execute(
                agents.insert().values(
                    id=agent.id,
                    name=agent.name,
                    tenant=agent.tenant,
                    labels=agent.labels,
                    public_jwk=agent.public_jwk,
                    algorithm=agent.algorithm,
                    status=agent.status.value,
                    created_at=agent.created_at,
                    issuer=agent.issuer,
                    owners=list(agent.owners),
                )
            )
    except IntegrityError as exc:
        raise ConflictError(f"an agent named {agent.name!r} already exists") from exc


def get_agent(conn: Connection, agent_id: str) -> Agent | None:
    """Return the agent with this id, or None."""
    row = conn.execute(select(agents).where(agents.c.id == agent_id)).one_or_none()
    return None if row is None else _to_agent(row)


def get_agent_by_name(conn: Connection, name: str) -> Agent | None:
    """Return the agent with this name, or None."""
    row = conn.execute(select(agents).where(agents.c.name == name)).one_or_none()
    return None if row is None else _to_agent(row)


def list_agents(
    conn: Connection, *, tenant: str | None = None, status: str | None = None
) -> list[Agent]:
    """Return agents, oldest first, optionally filtered."""
    query = select(agents).order_by(agents.c.created_at, agents.c.id)
    if tenant is not None:
        query = query.where(agents.c.tenant == tenant)
    if status is not None:
        query = query.where(agents.c.status == status)
    return [_to_agent(row) for row in conn.execute(query)]


def set_agent_status(
    conn: Connection, agent_id: str, status: AgentStatus, now: dt.datetime
) -> bool:
    """
    Change an agent's status.

    Returns:
        True if the status changed.
    """
    result = conn.execute(
        update(agents)
        .where(agents.c.id == agent_id, agents.c.status != status.value)
        .values(
            status=status.value,
            disabled_at=now if status is AgentStatus.DISABLED else None,
        )
    )
    ended = result.rowcount > 0 and status is AgentStatus.DISABLED
    note_ended(conn, "agents", [agent_id] if ended else [])
    return result.rowcount > 0
