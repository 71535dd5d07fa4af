"""
The JSON-lines export: an audit log that verifies with nothing but the file.

Layout, one JSON object per line, in this order::

    {"audit_public_key": {"kty": "OKP", "crv": "Ed25519", "x": "...", "kid": "..."}}
    {"start_after": {"seq": 1000, "hash": "..."}}      only when the export is a slice
    {"checkpoint": {"seq": ..., "hash": ..., "at": ..., "kid": ..., "signature": ...}}
    ...
    {"event": {"seq": 1, "at": ..., "kind": ..., ..., "prev_hash": ..., "hash": ...}}
    ...

Checkpoints come before events so that a reader can verify the events as it
streams them. ``gatepass audit export`` asks the broker for a checkpoint at the head
first and exports the events up to it, so the last event of an export is always
covered by a checkpoint and nothing in the file is unanchored.

Reading is defensive: the file is untrusted input, so invalid UTF-8, binary bytes,
a truncated line and values of the wrong type all end in one
:class:`~gatepass.errors.AuditIntegrityError` naming the line, never in another
exception. The public key in the file proves only that the file is
self-consistent: anyone who rewrites the log can also replace the key. Check it
against the broker's published audit key (``/.well-known/...`` or ``gatepass
audit key``), or pass that key to :func:`verify_export`, which then refuses a
file signed by any other key.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gatepass.audit.chain import AuditRecord
from gatepass.audit.checkpoint import Checkpoint, load_public_keys
from gatepass.audit.verify import VerifyReport, verify_log
from gatepass.errors import AuditIntegrityError

__all__ = ["AuditExport", "Line", "export_lines", "read_export", "verify_export"]


def _line(obj: Mapping[str, Any]) -> str:
    return (
        json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        + "\n"
    )


def export_lines(
    records: Iterable[AuditRecord],
    checkpoints: Sequence[Checkpoint],
    *,
    public_jwk: Mapping[str, Any],
    start_after: tuple[int, str] | None = None,
) -> Iterator[str]:
    """
    Yield the export of a log or a slice of it, one newline-terminated line at a time.

    Args:
        records: the records in seq order; streamed, never held.
        checkpoints: the checkpoints in seq order.
        public_jwk: the broker's audit public key (or key set).
        start_after: ``(seq, hash)`` of the record before ``records`` when
            exporting a slice.

    Yields:
        Lines ready for ``file.writelines``.
    """
    yield _line({"audit_public_key": dict(public_jwk)})
    if start_after is not None:
        seq, hash_ = start_after
        yield _line({"start_after": {"seq": seq, "hash": hash_}})
    for checkpoint in checkpoints:
        yield _line({"checkpoint": checkpoint.to_json()})
    for record in records:
        yield _line({"event": record.to_json()})


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditExport:
    """
    An export being read: its header eagerly, its events lazily.

    Args:
        public_jwk: the key the file claims signed it; check it before trusting.
        start_after: the slice's trusted start, or ``None`` for a whole log.
        checkpoints: every checkpoint in the file.
        records: the events, parsed as they are iterated (once).
    """

    public_jwk: Mapping[str, Any]
    start_after: tuple[int, str] | None
    checkpoints: tuple[Checkpoint, ...]
    records: Iterator[AuditRecord]


Line = str | bytes


def _text(number: int, line: Line) -> str:
    if isinstance(line, str):
        return line
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AuditIntegrityError(f"export line {number} is not valid utf-8") from exc


def _blank(line: Line) -> bool:
    return not line.strip()


def _parse(number: int, raw: Line) -> tuple[str, Any]:
    line = _text(number, raw)
    try:
        obj = json.loads(line)
    except (ValueError, RecursionError) as exc:
        # ValueError covers JSONDecodeError and integers too long to convert.
        if not line.endswith("\n"):
            raise AuditIntegrityError(
                f"export line {number} is truncated: not json and no newline at its end"
            ) from exc
        raise AuditIntegrityError(f"export line {number} is not json") from exc
    if not isinstance(obj, dict) or len(obj) != 1:
        raise AuditIntegrityError(f"export line {number} is not a one-key object")
    ((key, value),) = obj.items()
    if not isinstance(value, dict):
        raise AuditIntegrityError(f"export line {number} {key} is not an object")
    return key, value


def _start_after(number: int, value: Mapping[str, Any]) -> tuple[int, str]:
    seq, hash_ = value.get("seq"), value.get("hash")
    if not isinstance(seq, int) or isinstance(seq, bool) or not isinstance(hash_, str):
        raise AuditIntegrityError(f"export line {number} start_after is malformed")
    return seq, hash_


def _events(
    first: Mapping[str, Any] | None, numbered: Iterator[tuple[int, Line]]
) -> Iterator[AuditRecord]:
    if first is not None:
        yield AuditRecord.from_json(first)
    for number, line in numbered:
        if _blank(line):
            continue
        key, value = _parse(number, line)
        if key != "event":
            raise AuditIntegrityError(
                f"export line {number} is a {key[:32]!r} after the events: "
                "export malformed"
            )
        yield AuditRecord.from_json(value)


def read_export(lines: Iterable[Line]) -> AuditExport:
    """
    Read an export written by :func:`export_lines`.

    The header (key, slice start, checkpoints) is read at once; events are parsed
    only as :attr:`AuditExport.records` is iterated, so a file of any size is read
    in constant memory. Blank lines are ignored.

    Args:
        lines: the file's lines, as text or as bytes (a file opened ``"rb"``, which
            lets invalid UTF-8 be reported with its line number).

    Raises:
        AuditIntegrityError: the header is missing or malformed, or (while
            iterating the records) a line is malformed or out of place.
    """
    numbered = iter(enumerate(lines, start=1))
    public_jwk: Mapping[str, Any] | None = None
    start_after: tuple[int, str] | None = None
    checkpoints: list[Checkpoint] = []
    first_event: Mapping[str, Any] | None = None
    for number, line in numbered:
        if _blank(line):
            continue
        key, value = _parse(number, line)
        if public_jwk is None:
            if key != "audit_public_key":
                raise AuditIntegrityError(
                    "export does not start with its audit_public_key line"
                )
            public_jwk = value
        elif key == "start_after" and start_after is None and not checkpoints:
            start_after = _start_after(number, value)
        elif key == "checkpoint":
            checkpoints.append(Checkpoint.from_json(value))
        elif key == "event":
            first_event = value
            break
        else:
            raise AuditIntegrityError(
                f"export line {number} is an unexpected {key[:32]!r}: export malformed"
            )
    if public_jwk is None:
        raise AuditIntegrityError("export is empty")
    return AuditExport(
        public_jwk=public_jwk,
        start_after=start_after,
        checkpoints=tuple(checkpoints),
        records=_events(first_event, numbered),
    )


def verify_export(
    lines: Iterable[Line], *, public_jwk: Mapping[str, Any] | None = None
) -> VerifyReport:
    """
    Verify an export file with nothing else, optionally pinning the expected key.

    Without ``public_jwk`` the file's own key is used, which proves only internal
    consistency; pass the broker's published key to prove the log is the broker's.

    Args:
        lines: the export's lines, as text or bytes.
        public_jwk: the broker's published audit key (or key set); when given, the
            file's key must be one of its keys.

    Returns:
        The verification report.

    Raises:
        AuditIntegrityError: the file is malformed, signed by another key, or the
            log it holds fails :func:`verify_log`.
    """
    export = read_export(lines)
    trusted = export.public_jwk
    if public_jwk is not None:
        expected = load_public_keys(public_jwk)
        claimed = load_public_keys(export.public_jwk)
        if not set(claimed) <= set(expected):
            raise AuditIntegrityError(
                "export's audit_public_key is not the expected audit key"
            )
        trusted = public_jwk
    return verify_log(
        export.records, export.checkpoints, trusted, start_after=export.start_after
    )
