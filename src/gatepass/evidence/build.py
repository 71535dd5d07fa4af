"""
Building a bundle from the broker's records: which entries, which segments.

Pure functions over records and checkpoints the broker read; the broker signs the
result (``broker/evidence.py``). Each disclosed record is tied to the *first*
checkpoint at or after it, so a segment spans at most one checkpoint interval of
the log, and records of the same interval share a segment.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from gatepass.audit import AuditRecord, Checkpoint, format_timestamp
from gatepass.evidence.bundle import FORMAT, VERSION, Entry, Segment, segments_json
from gatepass.evidence.links import link_of
from gatepass.evidence.receipts import build_receipts

__all__ = ["RecordReader", "assemble", "plan_segments"]

# Reads the records with after < seq <= through, in order.
RecordReader = Callable[[int, int], Iterable[AuditRecord]]


def plan_segments(
    disclosed: Sequence[int], checkpoints: Sequence[int]
) -> list[tuple[int, int]]:
    """
    Return ``(first seq, checkpoint seq)`` of every segment the bundle needs.

    Args:
        disclosed: the seqs to disclose, ascending.
        checkpoints: the checkpoint seqs, ascending; the last must be at or after
            the last disclosed seq.

    Raises:
        ValueError: a disclosed seq follows the last checkpoint.
    """
    plan: list[tuple[int, int]] = []
    for seq in disclosed:
        if plan and seq <= plan[-1][1]:
            continue
        index = bisect.bisect_left(checkpoints, seq)
        if index == len(checkpoints):
            msg = f"record seq {seq} follows the last checkpoint"
            raise ValueError(msg)
        plan.append((seq, checkpoints[index]))
    return plan


def _segment(start: int, end: int, disclosed: set[int], read: RecordReader) -> Segment:
    entries: list[Entry] = [
        record if record.seq in disclosed else link_of(record)
        for record in read(start - 1, end)
    ]
    return Segment(checkpoint=end, entries=tuple(entries))


def assemble(
    *,
    issuer: str,
    task: str,
    tenant: str,
    tasks: Sequence[Mapping[str, Any]],
    leases: Sequence[Mapping[str, Any]],
    disclosed: Sequence[AuditRecord],
    checkpoints: Sequence[Checkpoint],
    read: RecordReader,
    audit_keys: Mapping[str, Any],
    exported_at: dt.datetime,
    receipts: bool,
) -> dict[str, Any]:
    """
    Return the ``evidence`` object of a bundle, ready to sign.

    Args:
        issuer: the broker's issuer URL.
        task: the root task id.
        tenant: its tenant.
        tasks: summaries of the task and its descendants.
        leases: summaries of their leases.
        disclosed: the records to disclose, ascending by seq.
        checkpoints: every checkpoint up to the one the export asked for.
        read: reads ranges of the log, for the links between disclosed records.
        audit_keys: the audit key set (``{"keys": [...]}``).
        exported_at: now.
        receipts: whether to include revocation receipts (the task has ended).
    """
    seqs = [record.seq for record in disclosed]
    plan = plan_segments(seqs, [checkpoint.seq for checkpoint in checkpoints])
    wanted = {end for _, end in plan}
    disclosed_set = set(seqs)
    segments = [_segment(start, end, disclosed_set, read) for start, end in plan]
    return {
        "format": FORMAT,
        "version": VERSION,
        "exported_at": format_timestamp(exported_at),
        "issuer": issuer,
        "task": task,
        "tenant": tenant,
        "tasks": [dict(summary) for summary in tasks],
        "leases": [dict(summary) for summary in leases],
        "disclosed": seqs,
        "checkpoints": [c.to_json() for c in checkpoints if c.seq in wanted],
        "segments": segments_json(segments),
        "receipts": build_receipts(leases, disclosed) if receipts else [],
        "audit_keys": dict(audit_keys),
    }
