"""
Persistence of the hash-chained audit log and its signed checkpoints.

Appends run inside the caller's transaction, so an action and its audit record
commit together or not at all (DESIGN ground rule 2: audit or nothing). Each record
is MACed with the keys :class:`~gatepass.store.Database` puts on the transaction
(``gatepass.audit.mac``): about a microsecond, against a statement of ~100 µs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterator
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Row,
    bindparam,
    func,
    insert,
    or_,
    select,
    update,
)

from gatepass.audit import (
    GENESIS_HASH,
    AuditEntry,
    AuditRecord,
    Checkpoint,
    chain_after,
)
from gatepass.store.anchors import note_head, record_mac
from gatepass.store.prepared import DriverStatement
from gatepass.store.tables import (
    UNKEYED_THROUGH,
    audit_checkpoints,
    audit_events,
    audit_head,
    settings_kv,
)

__all__ = [
    "append_audit",
    "audit_page",
    "concerning",
    "ensure_audit_head",
    "first_unkeyed_seq",
    "get_checkpoint",
    "has_checkpoint",
    "insert_checkpoint",
    "iter_audit",
    "last_audit",
    "last_checkpoint",
    "list_checkpoints",
    "read_audit_head",
    "set_macs",
    "unkeyed_through",
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


_SELECT_HEAD_FOR_UPDATE = (
    select(audit_head.c.seq, audit_head.c.hash)
    .where(audit_head.c.id == 1)
    .with_for_update()
)
_ADVANCE_HEAD = (
    update(audit_head)
    .where(audit_head.c.id == 1, audit_head.c.seq == bindparam("old_seq"))
    .values(seq=bindparam("new_seq"), hash=bindparam("new_hash"))
)
_INSERT_EVENT = insert(audit_events)
# The two statements of every append, run on the driver (``store/prepared.py``).
_ADVANCE_HEAD_DRIVER = DriverStatement(_ADVANCE_HEAD)
_INSERT_EVENT_DRIVER = DriverStatement(_INSERT_EVENT)
_HEAD_KEY = "gatepass_audit_head"


def append_audit(conn: Connection, entry: AuditEntry) -> AuditRecord:
    """
    Append one entry to the chain inside the caller's transaction.

    The chain head is remembered on the connection and advanced with a conditional
    ``UPDATE ... WHERE seq = <remembered>``: when another writer (a replica, another
    connection, a rolled-back transaction) moved it, the update matches nothing and
    the head is re-read under ``FOR UPDATE``. Either way the update's row lock
    queues concurrent appends, so the chain stays linear.

    Returns:
        The chained record.
    """
    head: tuple[int, str] | None = conn.info.get(_HEAD_KEY)
    mac = record_mac(conn)
    for attempt in range(2):
        if head is None or attempt:
            row = conn.execute(_SELECT_HEAD_FOR_UPDATE).one()
            head = (int(row.seq), str(row.hash))
        record = chain_after(head[0], head[1], entry, mac=mac)
        moved = _ADVANCE_HEAD_DRIVER.rowcount(
            conn,
            {"old_seq": head[0], "new_seq": record.seq, "new_hash": record.hash},
        )
        if moved == 1:
            break
    else:  # pragma: no cover - the re-read head cannot be stale under the lock
        msg = "audit chain head moved under a lock"
        raise RuntimeError(msg)
    _INSERT_EVENT_DRIVER.rowcount(
        conn,
        {
            "seq": record.seq,
            "at": record.at,
            "kind": record.kind,
            "outcome": record.outcome,
            "actor": record.actor,
            "subject": record.subject,
            "data": dict(record.data),
            "prev_hash": record.prev_hash,
            "hash": record.hash,
            "mac": record.mac,
        },
    )
    conn.info[_HEAD_KEY] = (record.seq, record.hash)
    note_head(conn, record.seq, record.hash)
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
        mac=row.mac,
    )


def iter_audit(
    conn: Connection,
    *,
    after: int = 0,
    limit: int | None = None,
    through: int | None = None,
) -> Iterator[AuditRecord]:
    """Yield records with ``after < seq`` (and ``seq <= through``) in order."""
    query = select(audit_events).where(audit_events.c.seq > after)
    if through is not None:
        query = query.where(audit_events.c.seq <= through)
    query = query.order_by(audit_events.c.seq)
    if limit is not None:
        query = query.limit(limit)
    for row in conn.execute(query):
        yield _to_record(row)


def last_audit(conn: Connection, count: int) -> list[AuditRecord]:
    """Return the newest ``count`` records, oldest of them first."""
    query = select(audit_events).order_by(audit_events.c.seq.desc()).limit(count)
    return [_to_record(row) for row in reversed(conn.execute(query).all())]


def _matching(
    *,
    agent: str | None,
    task: str | None,
    kind: str | None,
    outcome: str | None,
    since: dt.datetime | None,
) -> list[ColumnElement[bool]]:
    """Return the conditions of an audit query's filters (all must hold)."""
    column = audit_events.c
    conditions: list[ColumnElement[bool]] = []
    if agent is not None:
        # An agent acts (actor), is acted on (agent.add, agent.disable: subject),
        # or is named in the details (the proxy's records).
        conditions.append(
            or_(
                column.actor == agent,
                column.subject == agent,
                column.data["agent_id"].as_string() == agent,
            )
        )
    if task is not None:
        # Task records and credential issuances name the task as their subject;
        # lease records name it in their details.
        conditions.append(
            or_(column.subject == task, column.data["task_id"].as_string() == task)
        )
    if kind is not None:
        # "task" matches task.open and task.close; "task.open" only itself.
        conditions.append(
            or_(
                column.kind == kind, column.kind.startswith(f"{kind}.", autoescape=True)
            )
        )
    if outcome is not None:
        conditions.append(column.outcome == outcome)
    if since is not None:
        conditions.append(column.at >= since)
    return conditions


def audit_page(
    conn: Connection,
    *,
    limit: int,
    after: int = 0,
    newest: bool = False,
    agent: str | None = None,
    task: str | None = None,
    kind: str | None = None,
    outcome: str | None = None,
    since: dt.datetime | None = None,
) -> tuple[list[AuditRecord], int]:
    """
    Return a page of records matching every filter given, and where to go on.

    Only records up to the chain head read first are considered: every record at
    or below it has committed (the head moves in the transaction that appends),
    so a reader that continues after the returned seq misses none.

    Args:
        conn: a read connection.
        limit: at most this many records.
        after: only records with a higher seq.
        newest: the newest matching records instead of the oldest after ``after``.
        agent: an agent id that is the actor, the subject or named in the data.
        task: a task id that is the subject or named in the data.
        kind: a kind, or a prefix of dotted kinds (``task`` for ``task.*``).
        outcome: an outcome (``ok``, ``allow``, ``deny``, ``error``).
        since: only records at or after this time.

    Returns:
        The records, oldest first, and the seq to pass as ``after`` next.
    """
    head, _ = read_audit_head(conn)
    query = select(audit_events).where(
        audit_events.c.seq > after,
        audit_events.c.seq <= head,
        *_matching(agent=agent, task=task, kind=kind, outcome=outcome, since=since),
    )
    if newest:
        rows = conn.execute(query.order_by(audit_events.c.seq.desc()).limit(limit))
        records = [_to_record(row) for row in reversed(rows.all())]
        return records, max(after, head)
    rows = conn.execute(query.order_by(audit_events.c.seq).limit(limit))
    records = [_to_record(row) for row in rows]
    if len(records) == limit:
        # A full page: more may match before the head.
        return records, records[-1].seq
    return records, max(after, head)


def concerning(
    conn: Connection,
    *,
    subjects: Collection[str],
    task_ids: Collection[str],
    through: int,
) -> list[AuditRecord]:
    """
    Return the records up to ``through`` about any of these ids, in seq order.

    A record concerns an id when it is the record's subject (tasks, leases,
    approvals) or, for a task, when the record names it as ``data.task_id``
    (approval transitions, engine intents). The log has no index on either, so
    this scans it once: an evidence export is rare and the log is append-only.

    Args:
        conn: a read connection.
        subjects: task, lease and approval ids.
        task_ids: the task ids among them.
        through: the last seq to consider (the export's checkpoint).
    """
    column = audit_events.c
    conditions: list[ColumnElement[bool]] = []
    if subjects:
        conditions.append(column.subject.in_(list(subjects)))
    if task_ids:
        conditions.append(column.data["task_id"].as_string().in_(list(task_ids)))
    if not conditions:
        return []
    query = (
        select(audit_events)
        .where(column.seq <= through, or_(*conditions))
        .order_by(column.seq)
    )
    return [_to_record(row) for row in conn.execute(query)]


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


def _to_checkpoint(row: Row[Any]) -> Checkpoint:
    return Checkpoint(
        seq=int(row.seq),
        hash=row.hash,
        at=row.at,
        kid=row.kid,
        signature=row.signature,
    )


def list_checkpoints(
    conn: Connection, *, through: int | None = None
) -> list[Checkpoint]:
    """Return every checkpoint (with ``seq <= through``) in sequence order."""
    query = select(audit_checkpoints).order_by(audit_checkpoints.c.seq)
    if through is not None:
        query = query.where(audit_checkpoints.c.seq <= through)
    return [_to_checkpoint(row) for row in conn.execute(query)]


def last_checkpoint(conn: Connection) -> Checkpoint | None:
    """Return the checkpoint with the highest seq, or None."""
    row = conn.execute(
        select(audit_checkpoints).order_by(audit_checkpoints.c.seq.desc()).limit(1)
    ).first()
    return None if row is None else _to_checkpoint(row)


def get_checkpoint(conn: Connection, seq: int) -> Checkpoint | None:
    """Return the checkpoint at ``seq``, or None."""
    row = conn.execute(
        select(audit_checkpoints).where(audit_checkpoints.c.seq == seq)
    ).first()
    return None if row is None else _to_checkpoint(row)


def first_unkeyed_seq(conn: Connection) -> int | None:
    """Return the lowest seq of a record without a MAC, or None."""
    found = conn.execute(
        select(func.min(audit_events.c.seq)).where(audit_events.c.mac.is_(None))
    ).scalar_one_or_none()
    return None if found is None else int(found)


def unkeyed_through(conn: Connection) -> int:
    """Return the last seq written before records had MACs (0 for a new log)."""
    raw = conn.execute(
        select(settings_kv.c.value).where(settings_kv.c.name == UNKEYED_THROUGH)
    ).scalar_one_or_none()
    return int(raw) if raw else 0


_SET_MAC = (
    update(audit_events)
    .where(audit_events.c.seq == bindparam("b_seq"), audit_events.c.mac.is_(None))
    .values(mac=bindparam("b_mac"))
)


def set_macs(conn: Connection, macs: list[tuple[int, str]]) -> None:
    """Give MACs to records that have none (the one-time schema 3 migration)."""
    if macs:
        conn.execute(_SET_MAC, [{"b_seq": seq, "b_mac": mac} for seq, mac in macs])
