"""
Revocation receipts: per target, what was revoked, when, and how it was confirmed.

A receipt is a claim built from the lease rows and the disclosed audit records,
and every fact in it that matters cites a record by seq: ``ended_by`` is the record
of the transaction that ended the lease (``task.close``, ``lease.revoke``…) and, for
an engine credential, ``confirmed_by`` is the ``lease.revoked`` record the broker
wrote only after the engine confirmed. :func:`check_receipts` holds each receipt
against those records, so a receipt cannot claim a confirmation the log lacks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from gatepass.audit import AuditRecord, format_timestamp

__all__ = ["ENGINE_CONFIRMATIONS", "build_receipts", "check_receipts"]

# What each engine's confirmation means (docs/engines.md); access tokens have no
# engine: the broker itself is where they stop working.
ENGINE_CONFIRMATIONS: Final = {
    "postgres": "role set NOLOGIN, its sessions terminated and the role dropped; "
    "confirmed by the engine",
    "redis": "ACL user's connections killed and the user deleted; confirmed by the "
    "engine",
    "ssh": "certificate added to the target's key revocation list; confirmed by "
    "the engine",
}
BROKER_CONFIRMATION: Final = (
    "lease revoked in the transaction that ended it: introspection answers "
    "active=false and the revocation stream announces it from then on; a verifier "
    "that follows neither accepts the token until it expires"
)


def _names_lease(record: AuditRecord, lease_id: str) -> bool:
    """Tell whether ``record`` is the ending of the lease (not its confirmation)."""
    if record.outcome != "ok":
        return False
    if record.kind == "lease.revoke" and record.subject == lease_id:
        return True
    revoked = record.data.get("revoked_leases")
    return isinstance(revoked, list) and lease_id in revoked


def _lease_entry(
    lease: Mapping[str, Any], records: Sequence[AuditRecord]
) -> dict[str, Any]:
    lease_id = str(lease["id"])
    ended = next((r for r in records if _names_lease(r, lease_id)), None)
    confirmed = next(
        (r for r in records if r.kind == "lease.revoked" and r.subject == lease_id),
        None,
    )
    return {
        "lease_id": lease_id,
        "task_id": lease.get("task_id"),
        "state": lease.get("state"),
        "issued_at": lease.get("issued_at"),
        "expires_at": lease.get("expires_at"),
        "revoked_at": lease.get("revoked_at"),
        "ended_by": None if ended is None else ended.seq,
        "confirmed_by": None if confirmed is None else confirmed.seq,
        "confirmed_at": None if confirmed is None else format_timestamp(confirmed.at),
        "attempts": lease.get("attempts", 0),
        "last_error": lease.get("last_error"),
    }


def _status(kind: str, entries: Sequence[Mapping[str, Any]]) -> str:
    states = {str(entry.get("state")) for entry in entries}
    if states & {"pending", "active"}:
        return "live"
    if "revoking" in states:
        return "pending"
    if kind in ENGINE_CONFIRMATIONS and any(
        entry.get("confirmed_by") is None for entry in entries
    ):
        return "unconfirmed"
    if states == {"expired"}:
        return "expired"
    return "confirmed"


def build_receipts(
    leases: Iterable[Mapping[str, Any]], records: Sequence[AuditRecord]
) -> list[dict[str, Any]]:
    """
    Build one receipt per target from lease summaries and the disclosed records.

    Args:
        leases: lease summaries (``id``, ``task_id``, ``target``, ``kind``,
            ``state``, times, ``attempts``, ``last_error``).
        records: the records the bundle discloses, in seq order.

    Returns:
        Receipts sorted by target, each with ``status``: ``confirmed`` (every
        lease ended and every engine confirmed), ``pending`` (a revocation is
        still being retried), ``unconfirmed``, ``expired`` or ``live``.
    """
    by_target: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for lease in leases:
        key = (str(lease["target"]), str(lease["kind"]))
        by_target.setdefault(key, []).append(_lease_entry(lease, records))
    receipts = []
    for (target, kind), entries in sorted(by_target.items()):
        entries.sort(key=lambda entry: str(entry["lease_id"]))
        receipts.append(
            {
                "target": target,
                "kind": kind,
                "status": _status(kind, entries),
                "how": ENGINE_CONFIRMATIONS.get(kind, BROKER_CONFIRMATION),
                "leases": entries,
            }
        )
    return receipts


def _check_lease(
    target: str,
    entry: Mapping[str, Any],
    leases: Mapping[str, Mapping[str, Any]],
    records: Mapping[int, AuditRecord],
) -> list[str]:
    lease_id = entry.get("lease_id")
    where = f"receipt for target {target[:64]!r} lease {str(lease_id)[:64]!r}"
    lease = leases.get(str(lease_id))
    if lease is None or lease.get("target") != target:
        return [f"{where} names a lease the bundle does not list for that target"]
    problems: list[str] = []
    ended_by = entry.get("ended_by")
    if ended_by is not None:
        record = records.get(ended_by) if isinstance(ended_by, int) else None
        if record is None or not _names_lease(record, str(lease_id)):
            problems.append(
                f"{where} cites seq {str(ended_by)[:20]} as ending it, which is not a "
                "disclosed record of that lease"
            )
    confirmed_by = entry.get("confirmed_by")
    if confirmed_by is not None:
        record = records.get(confirmed_by) if isinstance(confirmed_by, int) else None
        if (
            record is None
            or record.kind != "lease.revoked"
            or record.subject != lease_id
            or record.data.get("target") != target
        ):
            problems.append(
                f"{where} cites seq {str(confirmed_by)[:20]} as its confirmation, "
                "which is not a disclosed lease.revoked record of that lease"
            )
        elif entry.get("confirmed_at") != format_timestamp(record.at):
            problems.append(f"{where} confirmed_at is not the time of seq {record.seq}")
    # A revoked engine lease without a confirmation is not a forgery: the lease row
    # is read just after the bundle's checkpoint, so a confirmation recorded in
    # between is in the next bundle. The receipt must then say "unconfirmed",
    # which check_receipts holds it to.
    return problems


def check_receipts(
    receipts: Sequence[Mapping[str, Any]],
    leases: Sequence[Mapping[str, Any]],
    records: Mapping[int, AuditRecord],
) -> list[str]:
    """
    Hold every receipt against the bundle's leases and disclosed records.

    Args:
        receipts: the bundle's receipts.
        leases: the bundle's lease summaries.
        records: the disclosed records by seq (already verified).

    Returns:
        One message per problem; empty when every receipt is backed.
    """
    by_id = {str(lease.get("id")): lease for lease in leases}
    problems: list[str] = []
    for receipt in receipts:
        target, kind = receipt.get("target"), receipt.get("kind")
        entries = receipt.get("leases")
        if (
            not isinstance(target, str)
            or not isinstance(kind, str)
            or not isinstance(entries, list)
            or not all(isinstance(entry, dict) for entry in entries)
        ):
            problems.append("a receipt is malformed")
            continue
        for entry in entries:
            problems.extend(_check_lease(target, entry, by_id, records))
        claimed = receipt.get("status")
        if not problems and claimed != _status(kind, entries):
            problems.append(
                f"receipt for target {target[:64]!r} says {str(claimed)[:16]!r}, "
                f"but its leases say {_status(kind, entries)!r}"
            )
    return problems
