"""
Persistence of the hash-chained audit log and its signed checkpoints.

Appends run inside the caller's transaction, so an action and its audit record
commit together or not at all (DESIGN ground rule 2: audit or nothing).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import Connection, Row, select, update

from gatepass.audit import (
    GENESIS_HASH,
    AuditEntry,
    AuditRecord,
    Checkpoint,
    record_hash,
)
from gatepass.store.tables import audit_checkpoints, audit_events, audit_head

__all__ = [
    "append_audit",
    "ensure_audit_head",
    "has_checkpoint",
    "insert_checkpoint",
    "iter_audit",
    "list_checkpoints",
    "read_audit_head",
]


def ensure_audit_head(conn: Connection) -> None:
    """Create the chain head row on a new database."""
    exists = conn.execute(
        select(audit_head.c.id).where(audit_head.c.id == 1)
    ).one_or_none()
    if exists is None:
        conn.execute(audit_head.insert().values(id=1, seq=0, hash=GENESIS_HASH))


def read_audit_head(conn: Connection) -> tuple[int, str]:
    """Return the last sequence number and hash of the chain."""
    row = conn.execute(
        select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)
    ).one()
    return int(row.seq), str(row.hash)


def append_audit(conn: Connection, entry: AuditEntry) -> AuditRecord:
    """
    Append one entry to the chain inside the caller's transaction.

    The head row is read with ``FOR UPDATE`` so that concurrent appends from other
    replicas queue behind this one and the chain stays linear.

    Returns:
        The chained record.
    """
    row = conn.execute(
        select(audit_head.c.seq, audit_head.c.hash)
        .where(audit_head.c.id == 1)
        .with_for_update()
    ).one()
    seq, prev_hash = int(row.seq) + 1, str(row.hash)
    data = dict(entry.data)
    digest = record_hash(
        seq=seq,
        at=entry.at,
        kind=entry.kind,
        outcome=entry.outcome,
        actor=entry.actor,
        subject=entry.subject,
        data=data,
        prev_hash=prev_hash,
    )
    record = AuditRecord(
        seq=seq,
        at=entry.at,
        kind=entry.kind,
        outcome=entry.outcome,
        actor=entry.actor,
        subject=entry.subject,
        data=data,
        prev_hash=prev_hash,
        hash=digest,
    )
    conn.execute(
        audit_events.insert().values(
            seq=record.seq,
            at=record.at,
            kind=record.kind,
            outcome=record.outcome,
            actor=record.actor,
            subject=record.subject,
            data=dict(record.data),
            prev_hash=record.prev_hash,
            hash=record.hash,
        )
    )
    conn.execute(
        update(audit_head)
        .where(audit_head.c.id == 1)
        .values(seq=record.seq, hash=record.hash)
    )
    return record


def _to_record(row: Row[Any]) -> AuditRecord:
    return AuditRecord(
        seq=int(row.seq),
        at=row.at,
        kind=row.kind,
        outcome=row.outcome,
        actor=row.actor,
        subject=row.subject,
        data=row.data,
        prev_hash=row.prev_hash,
        hash=row.hash,
    )


def iter_audit(
    conn: Connection, *, after: int = 0, limit: int | None = None
) -> Iterator[AuditRecord]:
    """Yield records with ``seq > after`` in order."""
    query = select(audit_events).where(audit_events.c.seq > after)
    query = query.order_by(audit_events.c.seq)
    if limit is not None:
        query = query.limit(limit)
    for row in conn.execute(query):
        yield _to_record(row)


def insert_checkpoint(conn: Connection, checkpoint: Checkpoint) -> None:
    """Record a signed checkpoint."""
    conn.execute(
        audit_checkpoints.insert().values(
            seq=checkpoint.seq,
            hash=checkpoint.hash,
            at=checkpoint.at,
            kid=checkpoint.kid,
            signature=checkpoint.signature,
        )
    )


def has_checkpoint(conn: Connection, seq: int) -> bool:
    """Tell whether a checkpoint at ``seq`` exists."""
    found = conn.execute(
        select(audit_checkpoints.c.seq).where(audit_checkpoints.c.seq == seq)
    ).first()
    return found is not None


def list_checkpoints(conn: Connection) -> list[Checkpoint]:
    """Return every checkpoint in sequence order."""
    rows = conn.execute(select(audit_checkpoints).order_by(audit_checkpoints.c.seq))
    return [
        Checkpoint(
            seq=int(row.seq),
            hash=row.hash,
            at=row.at,
            kid=row.kid,
            signature=row.signature,
        )
        for row in rows
    ]
