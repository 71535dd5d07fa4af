"""
Verify an evidence bundle offline: the key, the checkpoints, every link, the receipts.

Nothing here talks to a broker. :func:`inspect_bundle` checks every part it can
and names each problem (which record seq, which link, which checkpoint, which
signature), so one edit reports where it is rather than only that the bundle
signature broke; :func:`verify_bundle` raises if there is any. The order of the
checks and what each proves are in docs/evidence.md.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gatepass.audit import (
    AuditRecord,
    Checkpoint,
    canonical_bytes,
    load_public_keys,
    verify_checkpoint,
)
from gatepass.errors import AuditIntegrityError
from gatepass.evidence.bundle import SIGNING_PREFIX, Bundle, Segment, parse_bundle
from gatepass.evidence.links import Link
from gatepass.evidence.receipts import check_receipts

__all__ = ["BundleReport", "inspect_bundle", "verify_bundle"]

_MAX_PROBLEMS = 200


@dataclass(frozen=True, slots=True, kw_only=True)
class BundleReport:
    """
    What a bundle holds and every problem found in it.

    Args:
        task: the root task id.
        tasks: how many tasks it covers.
        records: disclosed records found in its segments.
        links: hash-only links.
        segments: segments.
        checkpoints: checkpoints whose signatures verified.
        receipts: the receipts as ``(target, status)``.
        kid: the key that signed the bundle.
        pinned: whether the keys were given by the caller rather than the file.
        problems: one message per problem; empty for a bundle that verifies.
    """

    task: str
    tasks: int
    records: int
    links: int
    segments: int
    checkpoints: int
    receipts: tuple[tuple[str, str], ...]
    kid: str
    pinned: bool
    problems: tuple[str, ...]


def _trusted_keys(
    bundle: Bundle, public_jwk: Mapping[str, Any] | None, problems: list[str]
) -> dict[str, Ed25519PublicKey]:
    claimed = load_public_keys(bundle.audit_keys)
    if public_jwk is None:
        return claimed
    pinned = load_public_keys(public_jwk)
    if not set(claimed) <= set(pinned):
        problems.append("the bundle's audit_keys are not the expected audit key")
    return pinned


def _checkpoints(
    bundle: Bundle, keys: Mapping[str, Ed25519PublicKey], problems: list[str]
) -> dict[int, Checkpoint]:
    good: dict[int, Checkpoint] = {}
    previous = 0
    for checkpoint in bundle.checkpoints:
        if checkpoint.seq <= previous:
            problems.append(
                f"checkpoint at seq {checkpoint.seq} follows checkpoint at seq "
                f"{previous}: checkpoints out of order"
            )
        previous = max(previous, checkpoint.seq)
        try:
            verify_checkpoint(checkpoint, keys)
        except AuditIntegrityError as error:
            problems.append(error.detail)
            continue
        good[checkpoint.seq] = checkpoint
    return good


def _entry_problem(
    entry: AuditRecord | Link, previous: AuditRecord | Link
) -> str | None:
    seq, before = entry.seq, previous.seq
    if isinstance(entry, Link):
        try:
            computed = entry.chained_hash(previous.hash)
        except ValueError:
            return f"link at seq {seq} cannot be hashed"
        if computed == entry.hash:
            return None
        named = "record" if isinstance(previous, AuditRecord) else "link"
        return (
            f"link at seq {seq} does not chain from {named} seq {before}: "
            f"{named} seq {before} or the link was changed"
        )
    if entry.prev_hash != previous.hash:
        return (
            f"record seq {seq} prev_hash does not match the hash of seq {before}: "
            "chain broken"
        )
    return None


def _own_hash_problem(record: AuditRecord) -> str | None:
    try:
        computed = record.computed_hash()
    except (TypeError, ValueError, RecursionError):
        return f"record seq {record.seq} cannot be hashed"
    if computed != record.hash:
        return (
            f"record seq {record.seq} hash does not match its contents: record edited"
        )
    return None


def _sequence_problem(segment: Segment, index: int) -> str:
    entries = segment.entries
    expected = entries[index - 1].seq + 1
    seq = entries[index].seq
    if seq == expected - 1:
        return f"record seq {seq} is duplicated"
    if seq < expected:
        return f"seq {seq} follows seq {expected - 1}: entries out of order"
    following = entries[index + 1].seq if index + 1 < len(entries) else None
    if following == expected:
        return f"seq {seq} comes before seq {expected}: entries reordered"
    missing = f"seq {expected}" if seq == expected + 1 else f"seqs {expected}-{seq - 1}"
    return f"{missing} missing before seq {seq}: entries deleted"


def _segment(
    segment: Segment,
    checkpoints: Mapping[int, Checkpoint],
    previous_end: int,
    problems: list[str],
) -> list[AuditRecord]:
    where = f"segment ending at checkpoint seq {segment.checkpoint}"
    records = [e for e in segment.entries if isinstance(e, AuditRecord)]
    problems.extend(
        problem for record in records if (problem := _own_hash_problem(record))
    )
    entries = segment.entries
    if not entries:
        problems.append(f"{where} is empty")
        return records
    if isinstance(entries[0], Link):
        problems.append(f"{where} starts with a link, not a disclosed record")
    if entries[0].seq <= previous_end:
        problems.append(
            f"{where} overlaps the segment before it: segments out of order"
        )
    for index in range(1, len(entries)):
        if entries[index].seq != entries[index - 1].seq + 1:
            problems.append(_sequence_problem(segment, index))
            return records
        problem = _entry_problem(entries[index], entries[index - 1])
        if problem is not None:
            problems.append(problem)
    _end_problem(segment, checkpoints, problems)
    return records


def _end_problem(
    segment: Segment, checkpoints: Mapping[int, Checkpoint], problems: list[str]
) -> None:
    where = f"segment ending at checkpoint seq {segment.checkpoint}"
    last = segment.entries[-1]
    checkpoint = checkpoints.get(segment.checkpoint)
    if last.seq != segment.checkpoint:
        problems.append(
            f"{where} ends at seq {last.seq}, not at its checkpoint: segment truncated"
        )
    elif checkpoint is None:
        problems.append(f"{where} has no verified checkpoint in the bundle")
    elif checkpoint.hash != last.hash:
        problems.append(
            f"checkpoint at seq {checkpoint.seq} does not match the hash of seq "
            f"{last.seq}: chain rewritten"
        )


def _manifest(
    listed: Sequence[int], found: Mapping[int, AuditRecord], problems: list[str]
) -> None:
    if list(listed) != sorted(set(listed)):
        problems.append("the disclosed list is not in ascending seq order")
    wanted = set(listed)
    problems.extend(
        f"record seq {seq} is listed as disclosed but is not in the bundle: "
        "record removed"
        for seq in sorted(wanted - set(found))
    )
    problems.extend(
        f"record seq {seq} is in the bundle but not listed as disclosed: record added"
        for seq in sorted(set(found) - wanted)
    )


def _hidden(bundle: Bundle, problems: list[str]) -> None:
    """A link whose (hashed) subject is one of the bundle's own ids hides a record."""
    own = {str(task.get("id")) for task in bundle.tasks}
    own |= {str(lease.get("id")) for lease in bundle.leases}
    own.add(bundle.task)
    problems.extend(
        f"link at seq {entry.seq} is a record about {entry.subject[:64]!r} of this "
        "bundle: record hidden"
        for segment in bundle.segments
        for entry in segment.entries
        if isinstance(entry, Link) and entry.subject in own
    )


def _signature(
    bundle: Bundle, keys: Mapping[str, Ed25519PublicKey], problems: list[str]
) -> str:
    kid, value = bundle.signature.get("kid"), bundle.signature.get("value")
    if bundle.signature.get("alg") != "EdDSA" or not isinstance(value, str):
        problems.append("bundle signature is malformed")
        return str(kid)[:64]
    key = keys.get(kid) if isinstance(kid, str) else None
    if key is None:
        problems.append(f"bundle is signed by unknown kid {str(kid)[:64]!r}")
        return str(kid)[:64]
    try:
        raw = base64.b64decode(value + "=" * (-len(value) % 4), b"-_", validate=True)
        key.verify(raw, SIGNING_PREFIX + canonical_bytes(bundle.body))
    except (binascii.Error, ValueError, TypeError, InvalidSignature):
        problems.append(
            "bundle signature does not verify: the bundle was changed after export"
        )
    return str(kid)


def inspect_bundle(
    raw: bytes, *, public_jwk: Mapping[str, Any] | None = None
) -> BundleReport:
    """
    Check a bundle and report every problem, without raising for them.

    Args:
        raw: the bundle file's bytes.
        public_jwk: the broker's audit key (or key set) to trust; without it the
            bundle's own keys are used, which proves only self-consistency.

    Returns:
        The report; ``problems`` is empty for a bundle that verifies.

    Raises:
        AuditIntegrityError: the file cannot be read as a bundle at all, or a key
            is malformed.
    """
    bundle = parse_bundle(raw)
    problems: list[str] = []
    keys = _trusted_keys(bundle, public_jwk, problems)
    checkpoints = _checkpoints(bundle, keys, problems)
    found: dict[int, AuditRecord] = {}
    previous_end, links = 0, 0
    for segment in bundle.segments:
        for record in _segment(segment, checkpoints, previous_end, problems):
            found.setdefault(record.seq, record)
        links += sum(isinstance(e, Link) for e in segment.entries)
        previous_end = max(previous_end, segment.checkpoint)
    _manifest(bundle.disclosed, found, problems)
    _hidden(bundle, problems)
    problems.extend(check_receipts(bundle.receipts, bundle.leases, found))
    kid = _signature(bundle, keys, problems)
    unique = tuple(dict.fromkeys(problems))[:_MAX_PROBLEMS]
    return BundleReport(
        task=bundle.task,
        tasks=len(bundle.tasks),
        records=len(found),
        links=links,
        segments=len(bundle.segments),
        checkpoints=len(checkpoints),
        receipts=tuple(
            (str(r.get("target"))[:64], str(r.get("status"))[:16])
            for r in bundle.receipts
        ),
        kid=kid,
        pinned=public_jwk is not None,
        problems=unique,
    )


def verify_bundle(
    raw: bytes, *, public_jwk: Mapping[str, Any] | None = None
) -> BundleReport:
    """
    Verify a bundle with nothing but its bytes (and, better, the broker's key).

    Args:
        raw: the bundle file's bytes.
        public_jwk: the broker's audit key (or key set) to trust.

    Returns:
        The report of a bundle that verified.

    Raises:
        AuditIntegrityError: anything was removed, edited, reordered, truncated
            or forged; the message names every problem found.
    """
    report = inspect_bundle(raw, public_jwk=public_jwk)
    if report.problems:
        raise AuditIntegrityError("; ".join(report.problems))
    return report
