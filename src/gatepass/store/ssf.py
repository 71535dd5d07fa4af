"""
The SSF transmitter's rows: receivers, streams, and the SETs of each stream.

A stream's events are made from revoked access-token leases by the broker
(:func:`revoked_for` finds those a stream has no event for yet) and inserted with
``ON CONFLICT DO NOTHING`` on (stream, event, subject), so replicas making the
same event at once store it once. Push streams' events are claimed like the
approval outbox (``store/outbox.py``): ``FOR UPDATE SKIP LOCKED`` on PostgreSQL
and a lease pushed into ``next_attempt_at``; poll streams' events wait for an
acknowledgement (RFC 8936 ``ack``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Connection,
    Row,
    delete,
    exists,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from gatepass.leases import ACCESS_TOKEN_KIND
from gatepass.models import LeaseState
from gatepass.store.tables import (
    api_tokens,
    leases,
    ssf_events,
    ssf_receivers,
    ssf_streams,
    tasks,
)

__all__ = [
    "PendingEvent",
    "Receiver",
    "RevokedToken",
    "StoredStream",
    "ack_events",
    "add_events",
    "claim_push",
    "count_streams",
    "delete_stream",
    "get_receiver",
    "get_stream",
    "insert_receiver",
    "insert_stream",
    "list_receivers",
    "list_streams",
    "mark_delivered",
    "mark_failed",
    "mark_retry",
    "open_counts",
    "pending_events",
    "prune_events",
    "revoked_for",
    "update_stream",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Receiver:
    """
    An SSF receiver: an API token and the audiences its streams may cover.

    Attributes:
        token_id: the API token's id.
        audiences: target names.
        created_at: when it was registered.
        description: the token's description.
        revoked: whether its token was revoked.
    """

    token_id: str
    audiences: tuple[str, ...]
    created_at: dt.datetime
    description: str = ""
    revoked: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredStream:
    """
    One stream as stored.

    Attributes:
        id: the stream id.
        token_id: the receiver token that owns it.
        config: the validated receiver-supplied configuration (no secret).
        sealed_authorization: the push ``Authorization`` value, sealed.
        status: ``enabled``, ``paused`` or ``disabled``.
        reason: why it has that status, if said.
        cursor: revocations up to this time have events.
        created_at: when it was created.
        updated_at: when it last changed.
        active_at: the receiver's last call on it (inactivity is counted from here).
    """

    id: str
    token_id: str
    config: dict[str, Any]
    sealed_authorization: bytes | None
    status: str
    reason: str | None
    cursor: dt.datetime
    created_at: dt.datetime
    updated_at: dt.datetime
    active_at: dt.datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class RevokedToken:
    """
    A revoked access token a stream has no event for yet.

    Attributes:
        jti: the token's id (the lease handle).
        task_id: its task.
        target: its target's name.
        revoked_at: when it was revoked.
        reason: why its task ended, when it did (``task closed``...).
    """

    jti: str
    task_id: str
    target: str
    revoked_at: dt.datetime
    reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PendingEvent:
    """
    A SET not yet delivered.

    Attributes:
        id: the row id.
        stream_id: its stream.
        jti: the SET's ``jti``.
        token: the signed SET.
        attempts: push attempts so far.
    """

    id: int
    stream_id: str
    jti: str
    token: str
    attempts: int


def insert_receiver(
    conn: Connection, token_id: str, audiences: Sequence[str], now: dt.datetime
) -> None:
    """Record the audiences of a receiver token (made in the same transaction)."""
    conn.execute(
        insert(ssf_receivers).values(
            token_id=token_id, audiences=list(audiences), created_at=now
        )
    )


def _receivers() -> Any:  # noqa: ANN401 - a SQLAlchemy Select
    return select(
        ssf_receivers,
        api_tokens.c.description,
        api_tokens.c.revoked_at,
    ).join(api_tokens, api_tokens.c.id == ssf_receivers.c.token_id)


def _to_receiver(row: Row[Any]) -> Receiver:
    return Receiver(
        token_id=row.token_id,
        audiences=tuple(row.audiences),
        created_at=row.created_at,
        description=row.description,
        revoked=row.revoked_at is not None,
    )


def get_receiver(conn: Connection, token_id: str) -> Receiver | None:
    """Return the receiver of a token, or None."""
    row = conn.execute(_receivers().where(ssf_receivers.c.token_id == token_id)).first()
    return None if row is None else _to_receiver(row)


def list_receivers(conn: Connection) -> list[Receiver]:
    """Return every receiver, oldest first."""
    rows = conn.execute(_receivers().order_by(ssf_receivers.c.created_at))
    return [_to_receiver(row) for row in rows]


def _to_stream(row: Row[Any]) -> StoredStream:
    return StoredStream(
        id=row.id,
        token_id=row.token_id,
        config=dict(row.config),
        sealed_authorization=row.sealed_authorization,
        status=row.status,
        reason=row.reason,
        cursor=row.cursor,
        created_at=row.created_at,
        updated_at=row.updated_at,
        active_at=row.active_at,
    )


def insert_stream(conn: Connection, stream: StoredStream) -> None:
    """Insert a new stream."""
    conn.execute(
        insert(ssf_streams).values(
            id=stream.id,
            token_id=stream.token_id,
            config=stream.config,
            sealed_authorization=stream.sealed_authorization,
            status=stream.status,
            reason=stream.reason,
            cursor=stream.cursor,
            created_at=stream.created_at,
            updated_at=stream.updated_at,
            active_at=stream.active_at,
        )
    )


def get_stream(conn: Connection, stream_id: str) -> StoredStream | None:
    """Return a stream, or None."""
    row = conn.execute(select(ssf_streams).where(ssf_streams.c.id == stream_id)).first()
    return None if row is None else _to_stream(row)


def list_streams(
    conn: Connection,
    *,
    token_id: str | None = None,
    statuses: Iterable[str] | None = None,
) -> list[StoredStream]:
    """Return streams (of one receiver token, in some statuses), oldest first."""
    query = select(ssf_streams).order_by(ssf_streams.c.created_at, ssf_streams.c.id)
    if token_id is not None:
        query = query.where(ssf_streams.c.token_id == token_id)
    if statuses is not None:
        query = query.where(ssf_streams.c.status.in_(list(statuses)))
    return [_to_stream(row) for row in conn.execute(query)]


def count_streams(conn: Connection, token_id: str) -> int:
    """Return how many streams a receiver token owns."""
    query = select(func.count()).where(ssf_streams.c.token_id == token_id)
    return int(conn.execute(query).scalar_one())


def update_stream(conn: Connection, stream_id: str, **values: object) -> bool:
    """
    Change some columns of a stream.

    Returns:
        Whether the stream exists.
    """
    result = conn.execute(
        update(ssf_streams).where(ssf_streams.c.id == stream_id).values(**values)
    )
    return bool(result.rowcount)


def delete_stream(conn: Connection, stream_id: str) -> bool:
    """
    Delete a stream and every SET it still holds.

    Returns:
        Whether it existed.
    """
    conn.execute(delete(ssf_events).where(ssf_events.c.stream_id == stream_id))
    result = conn.execute(delete(ssf_streams).where(ssf_streams.c.id == stream_id))
    return bool(result.rowcount)


def revoked_for(
    conn: Connection,
    *,
    stream_id: str,
    event: str,
    targets: Sequence[str],
    since: dt.datetime,
    now: dt.datetime,
    limit: int = 500,
) -> list[RevokedToken]:
    """
    Return access tokens of ``targets`` revoked after ``since`` and still unexpired.

    Tokens the stream already has a ``event`` SET for are left out, so a caller may
    look back further than its cursor (revocations committed late) for free.
    """
    if not targets:
        return []
    known = exists().where(
        ssf_events.c.stream_id == stream_id,
        ssf_events.c.event == event,
        ssf_events.c.subject == leases.c.handle,
    )
    query = (
        select(
            leases.c.handle,
            leases.c.task_id,
            leases.c.target,
            leases.c.revoked_at,
            tasks.c.close_reason,
        )
        .outerjoin(tasks, tasks.c.id == leases.c.task_id)
        .where(
            leases.c.revoked_at > since,
            leases.c.kind == ACCESS_TOKEN_KIND,
            leases.c.state == LeaseState.REVOKED.value,
            leases.c.target.in_(list(targets)),
            leases.c.expires_at > now,
            ~known,
        )
        .order_by(leases.c.revoked_at, leases.c.id)
        .limit(limit)
    )
    return [
        RevokedToken(
            jti=row.handle,
            task_id=row.task_id,
            target=row.target,
            revoked_at=row.revoked_at,
            reason=row.close_reason,
        )
        for row in conn.execute(query)
    ]


def add_events(
    conn: Connection,
    stream_id: str,
    events: Sequence[tuple[str, str, str, str]],
    now: dt.datetime,
) -> int:
    """
    Store signed SETs of a stream; ones it already has (same subject) are skipped.

    Args:
        conn: a write transaction.
        stream_id: the stream.
        events: ``(jti, event type, subject, signed SET)`` each.
        now: when they were made (and first due).

    Returns:
        How many were new.
    """
    if not events:
        return 0
    module = postgresql if conn.dialect.name == "postgresql" else sqlite
    # RETURNING counts what was new on both backends (psycopg reports no
    # rowcount for a conflicting insert).
    statement = (
        module.insert(ssf_events)
        .on_conflict_do_nothing(index_elements=["stream_id", "event", "subject"])
        .returning(ssf_events.c.id)
    )
    added = 0
    for jti, event, subject, token in events:
        result = conn.execute(
            statement,
            {
                "stream_id": stream_id,
                "jti": jti,
                "event": event,
                "subject": subject,
                "token": token,
                "created_at": now,
                "attempts": 0,
                "next_attempt_at": now,
            },
        )
        added += len(result.all())
    return added


_OPEN = (ssf_events.c.delivered_at.is_(None), ssf_events.c.failed_at.is_(None))


def _pending(row: Row[Any]) -> PendingEvent:
    return PendingEvent(
        id=row.id,
        stream_id=row.stream_id,
        jti=row.jti,
        token=row.token,
        attempts=row.attempts,
    )


def pending_events(conn: Connection, stream_id: str, limit: int) -> list[PendingEvent]:
    """Return a stream's undelivered SETs, oldest first (at most ``limit``)."""
    query = (
        select(ssf_events)
        .where(ssf_events.c.stream_id == stream_id, *_OPEN)
        .order_by(ssf_events.c.id)
        .limit(limit)
    )
    return [_pending(row) for row in conn.execute(query)]


def open_counts(conn: Connection) -> dict[str, int]:
    """Return how many undelivered SETs each stream holds (none: left out)."""
    query = (
        select(ssf_events.c.stream_id, func.count())
        .where(*_OPEN)
        .group_by(ssf_events.c.stream_id)
    )
    return {row[0]: int(row[1]) for row in conn.execute(query)}


def ack_events(
    conn: Connection, stream_id: str, jtis: Sequence[str], now: dt.datetime
) -> int:
    """
    Mark SETs of a stream acknowledged by a poll (RFC 8936 §2.4).

    Returns:
        How many open SETs of this stream were acknowledged (others are ignored).
    """
    if not jtis:
        return 0
    result = conn.execute(
        update(ssf_events)
        .where(
            ssf_events.c.stream_id == stream_id,
            ssf_events.c.jti.in_(list(jtis)),
            *_OPEN,
        )
        .values(delivered_at=now)
    )
    return int(result.rowcount)


def claim_push(
    conn: Connection,
    stream_ids: Sequence[str],
    now: dt.datetime,
    *,
    limit: int,
    lease: dt.timedelta,
) -> list[PendingEvent]:
    """
    Claim the due SETs of some push streams for ``lease``, oldest first.

    Call it in a write transaction of its own, as ``store/outbox.py``'s ``due``.
    """
    if not stream_ids:
        return []
    query = (
        select(ssf_events)
        .where(
            ssf_events.c.stream_id.in_(list(stream_ids)),
            *_OPEN,
            ssf_events.c.next_attempt_at <= now,
        )
        .order_by(ssf_events.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    claimed = [_pending(row) for row in conn.execute(query)]
    if claimed:
        conn.execute(
            update(ssf_events)
            .where(ssf_events.c.id.in_([event.id for event in claimed]))
            .values(next_attempt_at=now + lease)
        )
    return claimed


def mark_delivered(
    conn: Connection, event_id: int, *, attempts: int, now: dt.datetime
) -> bool:
    """Mark a SET delivered; False when it was already finished."""
    result = conn.execute(
        update(ssf_events)
        .where(ssf_events.c.id == event_id, *_OPEN)
        .values(delivered_at=now, attempts=attempts, last_error=None)
    )
    return bool(result.rowcount)


def mark_retry(
    conn: Connection,
    event_id: int,
    *,
    attempts: int,
    next_attempt_at: dt.datetime,
    error: str,
) -> bool:
    """Record a failed push attempt and when to try again."""
    result = conn.execute(
        update(ssf_events)
        .where(ssf_events.c.id == event_id, *_OPEN)
        .values(
            attempts=attempts, next_attempt_at=next_attempt_at, last_error=error[:200]
        )
    )
    return bool(result.rowcount)


def mark_failed(
    conn: Connection,
    stream_id: str,
    jtis: Sequence[str],
    *,
    error: str,
    now: dt.datetime,
    attempts: int | None = None,
) -> int:
    """
    Give up SETs of a stream (pushed too often, or refused by the receiver).

    Returns:
        How many open SETs were given up.
    """
    if not jtis:
        return 0
    values: dict[str, object] = {"failed_at": now, "last_error": error[:200]}
    if attempts is not None:
        values["attempts"] = attempts
    result = conn.execute(
        update(ssf_events)
        .where(
            ssf_events.c.stream_id == stream_id,
            ssf_events.c.jti.in_(list(jtis)),
            *_OPEN,
        )
        .values(**values)
    )
    return int(result.rowcount)


def prune_events(conn: Connection, *, before: dt.datetime) -> int:
    """
    Delete SETs made before a time: finished ones, and open ones that are moot.

    Returns:
        How many rows were deleted.
    """
    # Every SET names a token of bounded life (or a verification): past the
    # longest access-token lifetime it tells a receiver nothing, delivered or not.
    result = conn.execute(delete(ssf_events).where(ssf_events.c.created_at < before))
    return int(result.rowcount)
