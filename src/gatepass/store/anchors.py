"""
The store's half of the anchor journal: what a transaction ended, and the chain view.

A store function that makes an irreversible change (a task closed or expired, a
lease revoked, revoking or expired, an agent disabled, an approval redeemed, denied,
expired or cancelled) calls :func:`note_ended`
with the ids in the same transaction. :class:`~gatepass.store.Database` collects
the notes of a transaction and, once it has committed, hands them with the chain
head to the journal in one line per commit: closing a task with a thousand leases
is one line, and a group commit of many requests is one line too. A future kind of
irreversible fact is one more ``note_ended`` call in the function that makes it.

The notes live in ``Connection.info``, which belongs to the DBAPI connection and
outlives a transaction, so :func:`begin_transaction` clears them at every start:
the notes of a rolled-back transaction never reach the journal.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import Connection, select

from gatepass.audit import GENESIS_HASH, ROLLBACK_KIND, AuditMac
from gatepass.models import AgentStatus, ApprovalState, LeaseState, TaskState
from gatepass.store.tables import (
    agents,
    api_tokens,
    approvals,
    audit_events,
    audit_head,
    leases,
    tasks,
)

__all__ = [
    "PendingAnchor",
    "SqlChainView",
    "begin_transaction",
    "note_ended",
    "note_head",
    "pending_anchor",
    "record_mac",
]

_ENDED: Final = "gatepass_anchor_ended"
_HEAD: Final = "gatepass_anchor_head"
_MAC: Final = "gatepass_audit_mac"
_CHUNK: Final = 500
_LIVE_LEASES = (LeaseState.PENDING.value, LeaseState.ACTIVE.value)
_OPEN_APPROVALS = (ApprovalState.PENDING.value, ApprovalState.APPROVED.value)


@dataclass(frozen=True, slots=True, kw_only=True)
class PendingAnchor:
    """
    What one committed transaction ended, and the chain head it saw.

    Args:
        seq: the chain head's seq.
        hash: the chain head's hash.
        ended: ended ids by kind.
    """

    seq: int
    hash: str
    ended: Mapping[str, list[str]]


def note_ended(conn: Connection, kind: str, ids: Iterable[str]) -> None:
    """
    Note, in the current transaction, that these ids ended irreversibly.

    Args:
        conn: the write transaction that ends them.
        kind: ``tasks``, ``leases``, ``agents`` (or a future kind).
        ids: the ids; nothing is noted when there are none.
    """
    found = list(ids)
    if found:
        conn.info.setdefault(_ENDED, {}).setdefault(kind, []).extend(found)


def note_head(conn: Connection, seq: int, hash_: str) -> None:
    """Remember the chain head this transaction appended (the audit log calls it)."""
    conn.info[_HEAD] = (seq, hash_)


def record_mac(conn: Connection) -> AuditMac | None:
    """Return the MAC keys the Database put on this transaction, if any."""
    mac: AuditMac | None = conn.info.get(_MAC)
    return mac


def begin_transaction(conn: Connection, mac: AuditMac | None) -> None:
    """
    Start a transaction's notes afresh and give it the record MAC keys.

    Args:
        conn: the connection, just after ``BEGIN``.
        mac: the keys that :func:`~gatepass.store.audit_log.append_audit` MACs
            records with, or None (a database used without the broker's keys).
    """
    conn.info.pop(_ENDED, None)
    conn.info.pop(_HEAD, None)
    if mac is None:
        conn.info.pop(_MAC, None)
    else:
        conn.info[_MAC] = mac


def pending_anchor(conn: Connection) -> PendingAnchor | None:
    """
    Take the transaction's notes, just before it commits.

    Returns:
        The anchor to journal after the commit, or None when nothing ended. The
        head is the one this transaction appended, else the one it can read.
    """
    ended: dict[str, list[str]] | None = conn.info.pop(_ENDED, None)
    head: tuple[int, str] | None = conn.info.pop(_HEAD, None)
    if not ended:
        return None
    if head is None:
        # No record in this transaction: the head it can see (none on a store
        # used without the audit log, which anchors the empty chain).
        head = SqlChainView(conn).head()
    return PendingAnchor(seq=head[0], hash=head[1], ended=ended)


class SqlChainView:
    """
    The database as :func:`gatepass.audit.compare` sees it.

    Args:
        conn: a connection, read or write.
    """

    def __init__(self, conn: Connection) -> None:
        """Keep the connection."""
        self._conn = conn

    def head(self) -> tuple[int, str]:
        """Return the chain head's ``(seq, hash)``, the genesis one when none."""
        row = self._conn.execute(
            select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)
        ).first()
        return (0, GENESIS_HASH) if row is None else (int(row.seq), str(row.hash))

    def hashes(self, seqs: Collection[int]) -> Mapping[int, str]:
        """Return the hash of each existing record among ``seqs``."""
        wanted = set(seqs)
        if not wanted:
            return {}
        column = audit_events.c.seq
        query = select(column, audit_events.c.hash)
        low, high = min(wanted), max(wanted)
        if len(wanted) * 4 >= high - low + 1:
            # Anchors dense in the range: one range scan beats many IN lists.
            scans = [query.where(column >= low, column <= high)]
        else:
            ordered = sorted(wanted)
            scans = [
                query.where(column.in_(ordered[start : start + _CHUNK]))
                for start in range(0, len(ordered), _CHUNK)
            ]
        found: dict[int, str] = {}
        for scan in scans:
            for seq, digest in self._conn.execute(scan):
                if int(seq) in wanted:
                    found[int(seq)] = str(digest)
        return found

    def rollbacks(self) -> Sequence[Mapping[str, Any]]:
        """Return the data of every ``audit.rollback`` record, oldest first."""
        rows = self._conn.execute(
            select(audit_events.c.data)
            .where(audit_events.c.kind == ROLLBACK_KIND)
            .order_by(audit_events.c.seq)
        )
        return [row.data for row in rows if isinstance(row.data, dict)]

    def still_live(self, kind: str, ids: Collection[str]) -> Collection[str]:
        """Return the ids of ``kind`` the database shows not ended."""
        table, live = {
            "tasks": (tasks, tasks.c.state == TaskState.OPEN.value),
            "leases": (leases, leases.c.state.in_(_LIVE_LEASES)),
            "agents": (agents, agents.c.status == AgentStatus.ACTIVE.value),
            "approvals": (approvals, approvals.c.state.in_(_OPEN_APPROVALS)),
            # A revoked API token keeps its row with revoked_at set.
            "api_tokens": (api_tokens, api_tokens.c.revoked_at.is_(None)),
        }.get(kind, (None, None))
        if table is None or live is None:
            return set()
        found: set[str] = set()
        ordered = sorted(ids)
        for start in range(0, len(ordered), _CHUNK):
            chunk = ordered[start : start + _CHUNK]
            rows = self._conn.execute(
                select(table.c.id).where(table.c.id.in_(chunk), live)
            )
            found.update(str(row.id) for row in rows)
        return found
