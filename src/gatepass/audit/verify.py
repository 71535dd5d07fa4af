"""
Verify an audit log: the hash chain, the sequence, the MACs and the signed checkpoints.

Verification streams: records are read once, in order, and only the checkpoint
map (a few entries per day) is held, so a log of millions of records verifies in
constant memory. Every failure raises :class:`~gatepass.errors.AuditIntegrityError`
with a lower-case message naming the sequence number where the log stops being
trustworthy; verification never returns a bool.

A record after the last checkpoint is vouched for by nothing a public-key verifier
can check, so such a tail fails verification (naming its first seq) unless the
caller holds the broker's MAC keys and every record's MAC verifies. Exports and
``gatepass audit verify`` therefore ask the broker for a checkpoint first, and the
broker checks the MACs before it signs one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from gatepass.audit.chain import GENESIS_HASH, AuditRecord
from gatepass.audit.checkpoint import Checkpoint, load_public_keys, verify_checkpoint
from gatepass.audit.mac import AuditMac
from gatepass.errors import AuditIntegrityError

__all__ = ["VerifyReport", "verify_log"]


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifyReport:
    """
    What a successful verification covered.

    Args:
        events: records read and verified.
        checkpoints: checkpoints whose signatures verified.
        last_seq: the sequence number of the last record (or of the trusted start
            of an empty slice; 0 for an empty log).
        last_checkpoint_seq: the highest checkpoint seq, 0 when there is none.
        unanchored_tail: records verified after the last checkpoint. Always 0
            unless the caller verified MACs (then the MACs vouch for them) or
            explicitly allowed an unanchored tail.
    """

    events: int
    checkpoints: int
    last_seq: int
    last_checkpoint_seq: int
    unanchored_tail: int


def _check_checkpoints(
    checkpoints: Sequence[Checkpoint], public_jwk: Mapping[str, Any]
) -> dict[int, str]:
    keys = load_public_keys(public_jwk)
    anchors: dict[int, str] = {}
    previous = 0
    for checkpoint in checkpoints:
        if checkpoint.seq < 1:
            raise AuditIntegrityError(
                f"checkpoint at seq {checkpoint.seq} is not a positive seq"
            )
        if checkpoint.seq <= previous:
            raise AuditIntegrityError(
                f"checkpoint at seq {checkpoint.seq} follows checkpoint at seq "
                f"{previous}: checkpoints out of order"
            )
        verify_checkpoint(checkpoint, keys)
        anchors[checkpoint.seq] = checkpoint.hash
        previous = checkpoint.seq
    return anchors


def _sequence_error(
    record: AuditRecord,
    expected: int,
    rest: Iterator[AuditRecord],
) -> NoReturn:
    """Explain a record whose seq is not ``expected``, past the first record."""
    seq = record.seq
    if seq == expected - 1:
        raise AuditIntegrityError(f"record seq {seq} is duplicated")
    if seq < expected:
        raise AuditIntegrityError(
            f"record seq {seq} follows seq {expected - 1}: records out of order"
        )
    # One record of look-ahead tells a swap of neighbours from a deletion.
    following = next(rest, None)
    if following is not None and following.seq == expected:
        raise AuditIntegrityError(
            f"record seq {seq} comes before seq {expected}: records reordered"
        )
    missing = f"seq {expected}" if seq == expected + 1 else f"seqs {expected}-{seq - 1}"
    raise AuditIntegrityError(f"{missing} missing before seq {seq}: records deleted")


def _start_error(record: AuditRecord, start_seq: int, *, sliced: bool) -> NoReturn:
    """Explain a first record whose seq does not continue from the start."""
    if not sliced:
        raise AuditIntegrityError(
            f"log starts at seq {record.seq}, not 1: head of the log deleted"
        )
    raise AuditIntegrityError(
        f"slice starts at seq {record.seq}, not {start_seq + 1}: records missing"
    )


def _check_record(
    record: AuditRecord,
    previous_hash: str,
    anchors: Mapping[int, str],
    *,
    from_genesis: bool,
) -> None:
    """Check a record's link to its predecessor, its own hash and any checkpoint."""
    seq = record.seq
    if record.prev_hash != previous_hash:
        if from_genesis:
            raise AuditIntegrityError(
                f"record seq {seq} does not chain from the genesis hash"
            )
        raise AuditIntegrityError(
            f"record seq {seq} prev_hash does not match the hash of seq "
            f"{seq - 1}: chain broken"
        )
    try:
        computed = record.computed_hash()
    except (TypeError, ValueError, RecursionError) as exc:
        raise AuditIntegrityError(f"record seq {seq} cannot be hashed") from exc
    if computed != record.hash:
        raise AuditIntegrityError(
            f"record seq {seq} hash does not match its contents: record edited"
        )
    anchored = anchors.get(seq)
    if anchored is not None and anchored != record.hash:
        raise AuditIntegrityError(
            f"checkpoint at seq {seq} does not match the record's hash: chain rewritten"
        )


def verify_log(
    records: Iterable[AuditRecord],
    checkpoints: Sequence[Checkpoint],
    public_jwk: Mapping[str, Any],
    *,
    start_after: tuple[int, str] | None = None,
    mac: AuditMac | None = None,
    allow_unanchored: bool = False,
) -> VerifyReport:
    """
    Verify that ``records`` form an unbroken chain vouched for by ``checkpoints``.

    Checks, in one pass: checkpoints are in increasing seq order and each is signed
    by a key of ``public_jwk``; the first record is seq 1 chained from
    :data:`GENESIS_HASH` (or continues ``start_after``); each seq is the previous
    plus one; each ``prev_hash`` is the previous record's hash; each hash
    recomputes from the record's fields; with ``mac``, each record's MAC verifies;
    each checkpoint's hash equals the hash of the record at its seq; no checkpoint
    lies beyond the last record; and no record follows the last checkpoint unless
    ``mac`` or ``allow_unanchored`` is given.

    Args:
        records: the log in seq order; iterated once and never held.
        checkpoints: the signed checkpoints in seq order.
        public_jwk: the broker's published audit key (or a ``{"keys": [...]}`` set
            during key rotation). Take it from the broker, not from the data being
            verified.
        start_after: ``(seq, hash)`` of the record just before ``records`` when
            verifying a slice; that pair is trusted, so confirm it first (a
            checkpoint at that seq is checked against it).
        mac: the broker's MAC keys; only the broker has them. When given, every
            record must carry a valid MAC, and records after the last checkpoint
            are accepted because their MACs vouch for them.
        allow_unanchored: accept records after the last checkpoint without MACs
            (the schema migration's one pass over a log written before MACs).

    Returns:
        A report of what was verified.

    Raises:
        AuditIntegrityError: the log or a checkpoint was edited, reordered,
            deleted, truncated, rewritten or forged, or records follow the last
            checkpoint unvouched; the message names the seq.
    """
    anchors = _check_checkpoints(checkpoints, public_jwk)
    start_seq, previous_hash = start_after or (0, GENESIS_HASH)
    sliced = start_after is not None
    if start_seq in anchors and anchors[start_seq] != previous_hash:
        raise AuditIntegrityError(
            f"checkpoint at seq {start_seq} does not match the trusted start hash"
        )
    expected = start_seq + 1
    events = 0
    rest = iter(records)
    for record in rest:
        if record.seq != expected:
            if events == 0:
                _start_error(record, start_seq, sliced=sliced)
            _sequence_error(record, expected, rest)
        _check_record(
            record, previous_hash, anchors, from_genesis=events == 0 and not sliced
        )
        if mac is not None:
            mac.check_record(record.seq, record.hash, record.mac)
        previous_hash = record.hash
        expected = record.seq + 1
        events += 1
    last_seq = expected - 1
    last_checkpoint_seq = checkpoints[-1].seq if checkpoints else 0
    if last_checkpoint_seq > last_seq:
        beyond = min(seq for seq in anchors if seq > last_seq)
        raise AuditIntegrityError(
            f"checkpoint at seq {beyond} is beyond the last record seq {last_seq}: "
            "log truncated"
        )
    anchored_through = max(last_checkpoint_seq, start_seq)
    tail = last_seq - anchored_through
    if tail and mac is None and not allow_unanchored:
        raise AuditIntegrityError(
            f"records from seq {anchored_through + 1} to {last_seq} follow the last "
            f"checkpoint (seq {last_checkpoint_seq}) and are not anchored: "
            "unanchored tail"
        )
    return VerifyReport(
        events=events,
        checkpoints=len(checkpoints),
        last_seq=last_seq,
        last_checkpoint_seq=last_checkpoint_seq,
        unanchored_tail=tail,
    )
