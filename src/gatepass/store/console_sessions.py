"""
Persistence of console sessions and one-time login links.

Only the SHA-256 of a session cookie or a link token is stored, so a stolen
database opens no session. A link is spent by one conditional update (``used_at``
still NULL, not expired), so two browsers racing for the same link cannot both win.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Connection, delete, select, update

from gatepass.store.tables import console_links, console_sessions

__all__ = [
    "ConsoleSessionRow",
    "end_operator_sessions",
    "end_session",
    "find_session",
    "forget_expired",
    "insert_link",
    "insert_session",
    "spend_link",
]


class ConsoleSessionRow:
    """A live session as stored: its id, operator and expiry."""

    __slots__ = ("expires_at", "id", "method", "operator_id")

    def __init__(
        self, session_id: str, operator_id: str, method: str, expires_at: dt.datetime
    ) -> None:
        """Keep the fields."""
        self.id = session_id
        self.operator_id = operator_id
        self.method = method
        self.expires_at = expires_at


def insert_link(
    conn: Connection,
    *,
    token_hash: str,
    operator_id: str,
    now: dt.datetime,
    expires_at: dt.datetime,
) -> None:
    """Record a one-time login link by the hash of its token."""
    conn.execute(
        console_links.insert().values(
            token_hash=token_hash,
            operator_id=operator_id,
            created_at=now,
            expires_at=expires_at,
        )
    )


def spend_link(conn: Connection, token_hash: str, now: dt.datetime) -> str | None:
    """
    Spend a login link once.

    Returns:
        The operator id of an unused, unexpired link; None for any other (unknown,
        used or expired), and such a link stays as it was.
    """
    row = conn.execute(
        select(console_links.c.operator_id).where(
            console_links.c.token_hash == token_hash,
            console_links.c.used_at.is_(None),
            console_links.c.expires_at > now,
        )
    ).one_or_none()
    if row is None:
        return None
    spent = conn.execute(
        update(console_links)
        .where(
            console_links.c.token_hash == token_hash,
            console_links.c.used_at.is_(None),
        )
        .values(used_at=now)
    )
    return str(row.operator_id) if spent.rowcount == 1 else None


def insert_session(
    conn: Connection,
    *,
    session_id: str,
    token_hash: str,
    operator_id: str,
    method: str,
    now: dt.datetime,
    expires_at: dt.datetime,
) -> None:
    """Record a new session by the hash of its cookie value."""
    conn.execute(
        console_sessions.insert().values(
            id=session_id,
            token_hash=token_hash,
            operator_id=operator_id,
            method=method,
            created_at=now,
            expires_at=expires_at,
        )
    )


def find_session(
    conn: Connection, token_hash: str, now: dt.datetime
) -> ConsoleSessionRow | None:
    """Return the live (not ended, not expired) session of a cookie's hash."""
    row = conn.execute(
        select(console_sessions).where(
            console_sessions.c.token_hash == token_hash,
            console_sessions.c.ended_at.is_(None),
            console_sessions.c.expires_at > now,
        )
    ).one_or_none()
    if row is None:
        return None
    return ConsoleSessionRow(row.id, row.operator_id, row.method, row.expires_at)


def end_session(conn: Connection, session_id: str, now: dt.datetime) -> bool:
    """End one session (sign-out); True if it was live."""
    result = conn.execute(
        update(console_sessions)
        .where(
            console_sessions.c.id == session_id, console_sessions.c.ended_at.is_(None)
        )
        .values(ended_at=now)
    )
    return result.rowcount == 1


def end_operator_sessions(conn: Connection, operator_id: str, now: dt.datetime) -> int:
    """End every live session of an operator; return how many."""
    result = conn.execute(
        update(console_sessions)
        .where(
            console_sessions.c.operator_id == operator_id,
            console_sessions.c.ended_at.is_(None),
        )
        .values(ended_at=now)
    )
    return int(result.rowcount)


def forget_expired(conn: Connection, now: dt.datetime) -> int:
    """Delete links and sessions past their expiry; return how many rows went."""
    links = conn.execute(delete(console_links).where(console_links.c.expires_at <= now))
    sessions = conn.execute(
        delete(console_sessions).where(console_sessions.c.expires_at <= now)
    )
    return int(links.rowcount) + int(sessions.rowcount)
