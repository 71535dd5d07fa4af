"""
The hash chain: each record commits to its own content and to the record before it.

``hash = sha256(canonical_bytes({seq, at, kind, outcome, actor, subject, data,
prev_hash}))`` in lower-case hex, where ``at`` is :func:`format_timestamp` text and
the first record's ``prev_hash`` is :data:`GENESIS_HASH`. Editing, deleting or
reordering any record therefore breaks every hash after it. The hash alone cannot
stop someone who writes the database from appending or rewriting records and
recomputing every hash: the broker's MAC on each record (``mac``, see
:mod:`gatepass.audit.mac`) and the signed
:class:`~gatepass.audit.checkpoint.Checkpoint` do. The MAC is kept beside the hash,
outside the hashed fields, so adding it changed no hash of an existing log.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Self

from gatepass.audit.canonical import canonical_bytes, format_timestamp, parse_timestamp
from gatepass.audit.entry import AuditEntry
from gatepass.audit.mac import AuditMac
from gatepass.errors import AuditIntegrityError

__all__ = ["GENESIS_HASH", "AuditRecord", "chain", "chain_after", "record_hash"]

GENESIS_HASH: Final = "0" * 64

_HEX_HASH = re.compile(r"[0-9a-f]{64}")


def record_hash(
    *,
    seq: int,
    at: dt.datetime,
    kind: str,
    outcome: str,
    actor: str,
    subject: str,
    data: Mapping[str, Any],
    prev_hash: str,
) -> str:
    """
    Return the chain hash of a record with these fields.

    Returns:
        64 lower-case hex characters.
    """
    payload = {
        "seq": seq,
        "at": format_timestamp(at),
        "kind": kind,
        "outcome": outcome,
        "actor": actor,
        "subject": subject,
        "data": dict(data),
        "prev_hash": prev_hash,
    }
    return hashlib.sha256(canonical_bytes(payload)).hexdigest()


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditRecord:
    """
    An entry placed in the chain: what the store persists and the verifier reads.

    A record is taken as read: it is not scrubbed or validated again, so that
    verification checks exactly what was stored.

    Args:
        seq: position in the log, 1-based and contiguous.
        at: when it happened, aware UTC.
        kind: dotted event name.
        outcome: ``allow``, ``deny``, ``error`` or ``ok``.
        actor: who acted.
        subject: what was acted on, or ``""``.
        data: scrubbed JSON details.
        prev_hash: the previous record's ``hash``, or :data:`GENESIS_HASH`.
        hash: this record's chain hash (see :func:`record_hash`).
        mac: the broker's HMAC over ``hash`` (see :mod:`gatepass.audit.mac`), or
            ``None`` for a record that was never keyed.
    """

    seq: int
    at: dt.datetime
    kind: str
    outcome: str
    actor: str
    subject: str
    data: Mapping[str, Any]
    prev_hash: str
    hash: str
    mac: str | None = None

    def computed_hash(self) -> str:
        """Return the hash this record's fields produce, to compare with ``hash``."""
        return record_hash(
            seq=self.seq,
            at=self.at,
            kind=self.kind,
            outcome=self.outcome,
            actor=self.actor,
            subject=self.subject,
            data=self.data,
            prev_hash=self.prev_hash,
        )

    def to_json(self) -> dict[str, Any]:
        """
        Return the record as a JSON object, its time as RFC 3339 UTC with ``Z``.

        ``mac`` is present only when the record has one.
        """
        obj = {
            "seq": self.seq,
            "at": format_timestamp(self.at),
            "kind": self.kind,
            "outcome": self.outcome,
            "actor": self.actor,
            "subject": self.subject,
            "data": dict(self.data),
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }
        if self.mac is not None:
            obj["mac"] = self.mac
        return obj

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Self:
        """
        Rebuild a record from :meth:`to_json` output.

        Args:
            obj: a decoded JSON object.

        Raises:
            AuditIntegrityError: a field is missing or has the wrong type or form.
        """
        seq = obj.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool):
            raise AuditIntegrityError("malformed audit record: seq is not an integer")
        where = f"malformed audit record seq {seq}"
        for name in ("at", "kind", "outcome", "actor", "subject"):
            if not isinstance(obj.get(name), str):
                raise AuditIntegrityError(f"{where}: {name} is not a string")
        data = obj.get("data")
        if not isinstance(data, dict):
            raise AuditIntegrityError(f"{where}: data is not an object")
        for name in ("prev_hash", "hash"):
            value = obj.get(name)
            if not isinstance(value, str) or not _HEX_HASH.fullmatch(value):
                raise AuditIntegrityError(
                    f"{where}: {name} is not a sha-256 hex digest"
                )
        mac = obj.get("mac")
        if mac is not None and (
            not isinstance(mac, str) or not _HEX_HASH.fullmatch(mac)
        ):
            raise AuditIntegrityError(f"{where}: mac is not a sha-256 hex digest")
        try:
            at = parse_timestamp(obj["at"])
        except ValueError as exc:
            raise AuditIntegrityError(f"{where}: at is not rfc 3339 utc") from exc
        return cls(
            seq=seq,
            at=at,
            kind=obj["kind"],
            outcome=obj["outcome"],
            actor=obj["actor"],
            subject=obj["subject"],
            data=data,
            prev_hash=obj["prev_hash"],
            hash=obj["hash"],
            mac=mac,
        )


def chain(
    previous: AuditRecord | None, entry: AuditEntry, *, mac: AuditMac | None = None
) -> AuditRecord:
    """
    Place ``entry`` after ``previous`` in the chain.

    Args:
        previous: the current last record, or ``None`` for the first record.
        entry: the scrubbed entry to append.
        mac: the broker's MAC keys; the record then carries its MAC.

    Returns:
        The new record, with ``seq = previous.seq + 1`` (or 1) and its hash.
    """
    if previous is None:
        return chain_after(0, GENESIS_HASH, entry, mac=mac)
    return chain_after(previous.seq, previous.hash, entry, mac=mac)


def chain_after(
    last_seq: int, last_hash: str, entry: AuditEntry, *, mac: AuditMac | None = None
) -> AuditRecord:
    """
    Place ``entry`` after the chain head ``(last_seq, last_hash)``.

    The store appends with this, since it knows the head rather than the record.

    Args:
        last_seq: the head's sequence number (0 for an empty chain).
        last_hash: the head's hash (``GENESIS_HASH`` for an empty chain).
        entry: the scrubbed entry to append.
        mac: the broker's MAC keys; the record then carries its MAC.
    """
    seq, prev_hash = last_seq + 1, last_hash
    digest = record_hash(
        seq=seq,
        at=entry.at,
        kind=entry.kind,
        outcome=entry.outcome,
        actor=entry.actor,
        subject=entry.subject,
        data=entry.data,
        prev_hash=prev_hash,
    )
    return AuditRecord(
        seq=seq,
        at=entry.at,
        kind=entry.kind,
        outcome=entry.outcome,
        actor=entry.actor,
        subject=entry.subject,
        data=entry.data,
        prev_hash=prev_hash,
        hash=digest,
        mac=None if mac is None else mac.record_mac(digest),
    )
