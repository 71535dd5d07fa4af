"""
The outbox: notifications written with the change they announce, sent later.

A notification row is inserted in the transaction that creates or decides an
approval (:func:`enqueue`), so it exists exactly when the change committed: no
notification about an approval that rolled back, none lost to a crash after the
commit (the transactional outbox pattern). A background job then claims due rows
(:func:`due`), sends them, and marks each delivered, to be retried, or failed.

Several broker replicas may share one PostgreSQL database. :func:`due` claims rows
with ``SELECT … FOR UPDATE SKIP LOCKED`` and, in the same short transaction, pushes
their ``next_attempt_at`` forward by a lease: a replica claiming at the same moment
skips the locked rows, and one claiming later finds them not yet due. A replica
that dies while sending lets its lease run out, and another sends the row again
(delivery is at least once; receivers drop duplicates by the row's id). On SQLite
the write lock taken by every write transaction serialises the claims.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import (
    JSON,
    Connection,
    Row,
    bindparam,
    delete,
    func,
    insert,
    select,
    update,
)

from gatepass.store.tables import UTCDateTime, outbox

__all__ = [
    "DEFAULT_LEASE",
    "OutboxMessage",
    "any_due",
    "count_pending",
    "due",
    "enqueue",
    "get",
    "list_messages",
    "mark_delivered",
    "mark_failed",
    "mark_retry",
    "prune",
]

DEFAULT_LEASE: Final = dt.timedelta(seconds=90)
_ERROR_LIMIT: Final = 200


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboxMessage:
    """
    One notification and where its delivery stands.

    Attributes:
        id: the row id; receivers see it as the delivery id.
        kind: what it announces (``approval.requested``...).
        destination: where it goes (an approver group's name, never a URL).
        payload: what the sender needs to send it.
        created_at: when the change it announces committed.
        attempts: delivery attempts made so far.
        next_attempt_at: when it is next due (or when a claim's lease ends).
        delivered_at: when a receiver took it.
        failed_at: when it was given up.
        last_error: the short reason of the last failed attempt.
    """

    id: int
    kind: str
    destination: str
    payload: dict[str, Any]
    created_at: dt.datetime
    attempts: int
    next_attempt_at: dt.datetime
    delivered_at: dt.datetime | None = None
    failed_at: dt.datetime | None = None
    last_error: str | None = None


def _to_message(row: Row[Any]) -> OutboxMessage:
    return OutboxMessage(
        id=row.id,
        kind=row.kind,
        destination=row.destination,
        payload=dict(row.payload),
        created_at=row.created_at,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        delivered_at=row.delivered_at,
        failed_at=row.failed_at,
        last_error=row.last_error,
    )


_OPEN = (outbox.c.delivered_at.is_(None), outbox.c.failed_at.is_(None))
# Built once: the approval use cases run it inside their own transactions, and a
# statement built per call costs more in SQLAlchemy's cache-key walk than the insert.
_INSERT = (
    insert(outbox)
    .values(
        kind=bindparam("kind"),
        destination=bindparam("destination"),
        payload=bindparam("payload", type_=JSON),
        created_at=bindparam("now", type_=UTCDateTime),
        attempts=0,
        next_attempt_at=bindparam("now", type_=UTCDateTime),
    )
    .returning(outbox.c.id)
)


def enqueue(
    conn: Connection,
    kind: str,
    destination: str,
    payload: dict[str, Any],
    now: dt.datetime,
) -> int:
    """
    Add a notification, due now, inside the caller's transaction.

    Args:
        conn: the transaction of the change the notification announces.
        kind: what it announces (at most 32 characters).
        destination: where it goes (at most 64 characters).
        payload: JSON-serialisable data for the sender.
        now: the time of the change.

    Returns:
        The new row's id.
    """
    result = conn.execute(
        _INSERT,
        {"kind": kind, "destination": destination, "payload": payload, "now": now},
    )
    return int(result.scalar_one())


def any_due(conn: Connection, now: dt.datetime) -> bool:
    """
    Tell whether any notification is due, without claiming anything.

    A cheap read that lets the sender skip the write transaction of a claim (the
    write lock, on SQLite) on the many ticks when nothing is due.
    """
    query = select(outbox.c.id).where(*_OPEN, outbox.c.next_attempt_at <= now)
    return conn.execute(query.limit(1)).first() is not None


def due(
    conn: Connection,
    now: dt.datetime,
    limit: int = 50,
    *,
    lease: dt.timedelta = DEFAULT_LEASE,
) -> list[OutboxMessage]:
    """
    Claim the notifications due at ``now``, oldest first, for ``lease``.

    Call it in a write transaction of its own and commit at once: the rows are
    locked (PostgreSQL: ``FOR UPDATE SKIP LOCKED``, so concurrent claims never
    return the same row) and their ``next_attempt_at`` becomes ``now + lease``, so
    no one else claims them while they are being sent. The returned messages show
    ``next_attempt_at`` as it was before the claim.

    Args:
        conn: a write transaction.
        now: the current time.
        limit: the most rows to claim.
        lease: how long the claim holds; longer than one delivery may take.

    Returns:
        The claimed messages, neither delivered nor failed.
    """
    query = (
        select(outbox)
        .where(*_OPEN, outbox.c.next_attempt_at <= now)
        .order_by(outbox.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    messages = [_to_message(row) for row in conn.execute(query)]
    if messages:
        conn.execute(
            update(outbox)
            .where(outbox.c.id.in_([message.id for message in messages]))
            .values(next_attempt_at=now + lease)
        )
    return messages


def mark_delivered(
    conn: Connection, message_id: int, *, attempts: int, now: dt.datetime
) -> bool:
    """
    Record that a receiver took the notification.

    Returns:
        False when it was already delivered or failed (another sender got there).
    """
    result = conn.execute(
        update(outbox)
        .where(outbox.c.id == message_id, *_OPEN)
        .values(delivered_at=now, attempts=attempts, last_error=None)
    )
    return result.rowcount == 1


def mark_retry(
    conn: Connection,
    message_id: int,
    *,
    attempts: int,
    next_attempt_at: dt.datetime,
    error: str,
) -> bool:
    """
    Record a failed attempt and when to try again.

    Args:
        conn: a write transaction.
        message_id: the row.
        attempts: attempts made so far, this one included.
        next_attempt_at: when it is due again.
        error: a short reason (cut to 200 characters), never a body.

    Returns:
        False when it was already delivered or failed.
    """
    result = conn.execute(
        update(outbox)
        .where(outbox.c.id == message_id, *_OPEN)
        .values(
            attempts=attempts,
            next_attempt_at=next_attempt_at,
            last_error=error[:_ERROR_LIMIT],
        )
    )
    return result.rowcount == 1


def mark_failed(
    conn: Connection,
    message_id: int,
    *,
    attempts: int,
    error: str,
    now: dt.datetime,
) -> bool:
    """
    Give the notification up: no more attempts.

    Returns:
        False when it was already delivered or failed.
    """
    result = conn.execute(
        update(outbox)
        .where(outbox.c.id == message_id, *_OPEN)
        .values(failed_at=now, attempts=attempts, last_error=error[:_ERROR_LIMIT])
    )
    return result.rowcount == 1


def get(conn: Connection, message_id: int) -> OutboxMessage | None:
    """Return one notification, or None."""
    row = conn.execute(select(outbox).where(outbox.c.id == message_id)).first()
    return None if row is None else _to_message(row)


def list_messages(
    conn: Connection, *, kinds: Sequence[str] | None = None, limit: int = 1000
) -> list[OutboxMessage]:
    """Return notifications, oldest first, optionally only of some kinds."""
    query = select(outbox).order_by(outbox.c.id).limit(limit)
    if kinds is not None:
        query = query.where(outbox.c.kind.in_(list(kinds)))
    return [_to_message(row) for row in conn.execute(query)]


def count_pending(conn: Connection) -> int:
    """Return how many notifications are neither delivered nor failed."""
    return int(
        conn.execute(
            select(func.count()).select_from(outbox).where(*_OPEN)
        ).scalar_one()
    )


def prune(conn: Connection, *, finished_before: dt.datetime) -> int:
    """
    Delete delivered and failed notifications that finished before a time.

    Returns:
        How many rows were deleted.
    """
    result = conn.execute(
        delete(outbox).where(
            (outbox.c.delivered_at < finished_before)
            | (outbox.c.failed_at < finished_before)
        )
    )
    return int(result.rowcount)
