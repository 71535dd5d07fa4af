"""
Persistence of context signals in force, and of credential-reuse events.

A signal is one row per (kind, scope): ``risk`` of an agent id, ``freeze`` of an
environment, ``incident`` of a tenant. Setting one again replaces it; clearing it
deletes the row. Reuse events are kept for the windows of ``[[reuse.rules]]``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import Connection, and_, delete, func, or_, select

from gatepass.store.tables import context_signals, reuse_events

__all__ = [
    "StoredSignal",
    "clear_signal",
    "count_reuse",
    "list_signals",
    "prune_reuse",
    "put_signal",
    "record_reuse",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredSignal:
    """
    One signal in force.

    Attributes:
        kind: ``risk``, ``freeze`` or ``incident``.
        scope: the agent id, environment or tenant.
        value: the risk level, or ``on``.
        reason: why (free text from the operator or the SET's event type).
        source: who set it (``operator:alice``, ``ssf:<issuer>``).
        set_at: when.
        until: when it ends by itself; None means until cleared.
    """

    kind: str
    scope: str
    value: str
    reason: str
    source: str
    set_at: dt.datetime
    until: dt.datetime | None


def put_signal(conn: Connection, signal: StoredSignal) -> None:
    """Set a signal, replacing the one of the same kind and scope."""
    conn.execute(
        delete(context_signals).where(
            and_(
                context_signals.c.kind == signal.kind,
                context_signals.c.scope == signal.scope,
            )
        )
    )
    conn.execute(
        context_signals.insert().values(
            kind=signal.kind,
            scope=signal.scope,
            value=signal.value,
            reason=signal.reason[:200],
            source=signal.source[:255],
            set_at=signal.set_at,
            until=signal.until,
        )
    )


def clear_signal(conn: Connection, kind: str, scope: str) -> bool:
    """Clear a signal; True when one was in force."""
    result = conn.execute(
        delete(context_signals).where(
            and_(context_signals.c.kind == kind, context_signals.c.scope == scope)
        )
    )
    return bool(result.rowcount)


def list_signals(conn: Connection, now: dt.datetime) -> list[StoredSignal]:
    """Return the signals in force at ``now`` (expired ones are left out)."""
    rows = conn.execute(
        select(context_signals)
        .where(or_(context_signals.c.until.is_(None), context_signals.c.until > now))
        .order_by(context_signals.c.kind, context_signals.c.scope)
    )
    return [
        StoredSignal(
            kind=row.kind,
            scope=row.scope,
            value=row.value,
            reason=row.reason,
            source=row.source,
            set_at=row.set_at,
            until=row.until,
        )
        for row in rows
    ]


def record_reuse(
    conn: Connection, *, agent_id: str, task_id: str, kind: str, at: dt.datetime
) -> None:
    """Record one credential-reuse event."""
    conn.execute(
        reuse_events.insert().values(
            agent_id=agent_id[:40], task_id=task_id[:40], kind=kind[:32], at=at
        )
    )


def count_reuse(
    conn: Connection, *, agent_id: str, kinds: list[str], since: dt.datetime
) -> int:
    """Count an agent's reuse events of these kinds (all when empty) since a time."""
    query = select(func.count()).where(
        and_(reuse_events.c.agent_id == agent_id, reuse_events.c.at >= since)
    )
    if kinds:
        query = query.where(reuse_events.c.kind.in_(kinds))
    return int(conn.execute(query).scalar_one())


def prune_reuse(conn: Connection, *, before: dt.datetime) -> int:
    """Forget reuse events older than ``before``; return how many."""
    result = conn.execute(delete(reuse_events).where(reuse_events.c.at < before))
    return int(result.rowcount)
