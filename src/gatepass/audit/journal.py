"""
The anchor journal: what the database must still contain, kept outside it.

A database can be put back to an older state (a restored snapshot, deleted rows, a
rewritten tail) by whoever can write it, and the hash chain of the restored copy is
still perfect. The journal is the broker's own memory of what it committed, in a
file beside the master key (``<state_dir>/audit-checkpoints.jsonl``), so that the
broker and ``gatepass audit verify`` can tell that the database went back in time.

One JSON object per line, appended with ``flush`` + ``fsync`` after the database
commit it describes (so the journal may lag the database after a crash, never lead
it)::

    {"segment": {"at", "previous": null | {"file", "sha256", "head_seq"}, "mac"}}
    {"checkpoint": {"seq", "hash", "at", "kid", "signature"}}       signed, Ed25519
    {"anchor": {"seq", "hash", "at", "ended": {"leases": [...], ...}, "mac"}}

* a **checkpoint** line repeats each signed checkpoint;
* an **anchor** line follows every commit that made an irreversible change (tasks
  closed or expired, leases revoked, revoking or expired, agents disabled): the
  chain head ``(seq, hash)`` at that commit and the ids that ended;
* a **segment** line starts a file. ``gatepass audit reconcile`` closes the current
  file after a rollback (renamed, never deleted) and starts a new one whose first
  line names the old file and its SHA-256, so verification can follow the fork.
  Files written before segments existed have no such line.

Anchor and segment lines carry an HMAC under the journal key (:mod:`.mac`), so
nobody without the master key can add endings that the broker would re-apply.
A line is compared with the database, never trusted to pass it: a forged or
unverifiable line can only make verification fail, so the offline verifier, which
has no MAC key, uses the lines as claims to check.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from gatepass.audit.canonical import canonical_bytes, format_timestamp
from gatepass.audit.checkpoint import Checkpoint
from gatepass.audit.mac import AuditMac
from gatepass.errors import AuditIntegrityError

__all__ = [
    "JOURNAL_FILE",
    "Anchor",
    "Journal",
    "Segment",
    "SegmentRef",
    "line_payload",
    "read_journal",
    "read_segment",
]

JOURNAL_FILE: Final = "audit-checkpoints.jsonl"
_HEX = frozenset("0123456789abcdef")
_TIMESTAMP = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z"
)


def _is_hex64(value: object) -> bool:
    return isinstance(value, str) and len(value) == 64 and set(value) <= _HEX


@dataclass(frozen=True, slots=True, kw_only=True)
class SegmentRef:
    """
    A closed journal segment, as the next segment's first line names it.

    Args:
        file: its file name, in the same directory.
        sha256: the hex SHA-256 of its bytes when it was closed.
        head_seq: the newest seq it anchored.
    """

    file: str
    sha256: str
    head_seq: int

    def to_json(self) -> dict[str, Any]:
        """Return the reference as a JSON object."""
        return {"file": self.file, "sha256": self.sha256, "head_seq": self.head_seq}


@dataclass(frozen=True, slots=True, kw_only=True)
class Anchor:
    """
    The chain head after one commit that ended something, and what it ended.

    Args:
        seq: the head's seq at that commit.
        hash: the head's chain hash.
        at: when the line was written, as :func:`format_timestamp` text (kept as
            text: that fixed-width form sorts as time does, and a long journal
            is read at every start).
        ended: ended ids by kind (``leases``, ``tasks``, ``agents``, ...).
    """

    seq: int
    hash: str
    at: str
    ended: Mapping[str, tuple[str, ...]]

    def body(self) -> dict[str, Any]:
        """Return the line's object, without its MAC."""
        return {
            "seq": self.seq,
            "hash": self.hash,
            "at": self.at,
            "ended": {kind: list(ids) for kind, ids in self.ended.items()},
        }

    def payload(self) -> bytes:
        """Return the bytes the line's MAC covers."""
        return line_payload("anchor", self.body())


@dataclass(frozen=True, slots=True, kw_only=True)
class Segment:
    """
    One journal file, parsed.

    Args:
        path: where it was read from.
        digest: the hex SHA-256 of its bytes.
        previous: the segment it continues after a fork, from its first line.
        checkpoints: its checkpoint lines.
        anchors: its anchor lines.
    """

    path: Path
    digest: str
    previous: SegmentRef | None
    checkpoints: tuple[Checkpoint, ...]
    anchors: tuple[Anchor, ...]

    def anchored(self, *, as_of: dt.datetime | None = None) -> list[tuple[int, str]]:
        """
        Return every ``(seq, hash)`` the segment anchors, in seq order.

        Args:
            as_of: only lines written at or before this time (an export's final
                checkpoint: what the journal knew when the export was made).
        """
        moment = None if as_of is None else format_timestamp(as_of)
        pairs = [
            (a.seq, a.hash) for a in self.anchors if moment is None or a.at <= moment
        ]
        pairs.extend(
            (c.seq, c.hash) for c in self.checkpoints if as_of is None or c.at <= as_of
        )
        # Seq 0 is the empty chain: it anchors nothing but "head >= 0".
        return sorted({pair for pair in pairs if pair[0] > 0})

    def head_seq(self, *, as_of: dt.datetime | None = None) -> int:
        """Return the newest seq the segment anchors, 0 when it anchors none."""
        pairs = self.anchored(as_of=as_of)
        return pairs[-1][0] if pairs else 0

    def ended(self) -> dict[str, set[str]]:
        """Return every id the segment says ended, by kind."""
        found: dict[str, set[str]] = {}
        for anchor in self.anchors:
            for kind, ids in anchor.ended.items():
                found.setdefault(kind, set()).update(ids)
        return found


@dataclass(frozen=True, slots=True, kw_only=True)
class Journal:
    """
    A journal: its current segment first, then the segments it forked from.

    Args:
        segments: newest first; empty when there is no journal file.
        missing: a previous segment named by a newer one but not found, if any.
    """

    segments: tuple[Segment, ...]
    missing: str | None = None

    def seqs(self) -> set[int]:
        """Return every seq any segment anchors: what a comparison looks up."""
        return {seq for segment in self.segments for seq, _ in segment.anchored()}


def line_payload(kind: str, body: Mapping[str, Any]) -> bytes:
    """Return the canonical bytes a journal line's MAC covers."""
    return canonical_bytes({kind: dict(body)})


def _where(path: Path, number: int) -> str:
    return f"anchor journal line {number} of {path.name}"


def _parse_anchor(obj: Mapping[str, Any], where: str) -> Anchor:
    seq, ended = obj.get("seq"), obj.get("ended")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        raise AuditIntegrityError(f"{where}: seq is not a non-negative integer")
    if not _is_hex64(obj.get("hash")):
        raise AuditIntegrityError(f"{where}: hash is not a sha-256 hex digest")
    if not isinstance(ended, dict) or not all(
        isinstance(ids, list) and all(isinstance(i, str) for i in ids)
        for ids in ended.values()
    ):
        raise AuditIntegrityError(f"{where}: ended is not an object of id lists")
    at = obj.get("at")
    if not isinstance(at, str) or not _TIMESTAMP.fullmatch(at):
        raise AuditIntegrityError(f"{where}: at is not rfc 3339 utc")
    return Anchor(
        seq=seq,
        hash=obj["hash"],
        at=at,
        ended={str(kind): tuple(ids) for kind, ids in ended.items()},
    )


def _parse_previous(obj: object, where: str) -> SegmentRef | None:
    if obj is None:
        return None
    if not isinstance(obj, dict):
        raise AuditIntegrityError(f"{where}: previous is not an object")
    name, digest, head = obj.get("file"), obj.get("sha256"), obj.get("head_seq")
    if not isinstance(name, str) or "/" in name or name in {"", ".", ".."}:
        raise AuditIntegrityError(f"{where}: previous file is not a file name")
    if not _is_hex64(digest) or not isinstance(head, int) or isinstance(head, bool):
        raise AuditIntegrityError(f"{where}: previous segment reference is malformed")
    return SegmentRef(file=name, sha256=str(digest), head_seq=head)


def _line_objects(path: Path, raw: bytes) -> Iterator[tuple[int, str, dict[str, Any]]]:
    lines = raw.split(b"\n")
    last = len(lines)
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line.decode("utf-8"))
        except (ValueError, RecursionError) as exc:
            if number == last:
                # A crash between write and fsync can tear the final line; the
                # commit it described is in the database, so nothing is lost.
                return
            msg = f"{_where(path, number)} is not json"
            raise AuditIntegrityError(msg) from exc
        if not isinstance(obj, dict) or len(obj) != 1:
            msg = f"{_where(path, number)} is not a one-key object"
            raise AuditIntegrityError(msg)
        ((key, value),) = obj.items()
        if not isinstance(value, dict):
            msg = f"{_where(path, number)} {key[:32]!r} is not an object"
            raise AuditIntegrityError(msg)
        yield number, key, value


def read_segment(path: Path, mac: AuditMac | None = None) -> Segment:
    """
    Read one journal file.

    Raises:
        AuditIntegrityError: a line is malformed or (with ``mac``) forged.
        OSError: the file cannot be read.
    """
    raw = path.read_bytes()
    previous: SegmentRef | None = None
    checkpoints: list[Checkpoint] = []
    anchors: list[Anchor] = []
    first = True
    for number, key, value in _line_objects(path, raw):
        where = _where(path, number)
        if key == "segment" and not first:
            msg = f"{where}: a segment line must come first"
            raise AuditIntegrityError(msg)
        first = False
        if key == "checkpoint":
            checkpoints.append(Checkpoint.from_json(value))
        elif key == "anchor":
            anchor = _parse_anchor(value, where)
            if mac is not None:
                # The MAC covers the canonical encoding of the line as parsed.
                body = {k: v for k, v in value.items() if k != "mac"}
                mac.check_line(line_payload("anchor", body), value.get("mac"), where)
            anchors.append(anchor)
        elif key == "segment":
            previous = _parse_previous(value.get("previous"), where)
            if mac is not None:
                body = {k: v for k, v in value.items() if k != "mac"}
                mac.check_line(line_payload("segment", body), value.get("mac"), where)
        else:
            msg = f"{where} is an unknown {key[:32]!r} line"
            raise AuditIntegrityError(msg)
    return Segment(
        path=path,
        digest=hashlib.sha256(raw).hexdigest(),
        previous=previous,
        checkpoints=tuple(checkpoints),
        anchors=tuple(anchors),
    )


def read_journal(path: Path, *, mac: AuditMac | None = None) -> Journal:
    """
    Read a journal and every segment it forked from.

    Args:
        path: the current journal file; a missing file is an empty journal.
        mac: the broker's MAC keys; when given, every anchor and segment line
            must carry a valid MAC.

    Raises:
        AuditIntegrityError: a line is malformed or (with ``mac``) forged, or a
            closed segment's bytes no longer match the digest its successor names.
        OSError: a file exists but cannot be read.
    """
    if not path.exists():
        return Journal(segments=())
    segments: list[Segment] = []
    seen: set[str] = set()
    current: Path | None = path
    while current is not None:
        segment = read_segment(current, mac)
        segments.append(segment)
        seen.add(current.name)
        reference = segment.previous
        if reference is None:
            break
        following = current.with_name(reference.file)
        if reference.file in seen or not following.exists():
            return Journal(segments=tuple(segments), missing=reference.file)
        digest = hashlib.sha256(following.read_bytes()).hexdigest()
        if digest != reference.sha256:
            msg = (
                f"anchor journal segment {reference.file} changed after it was "
                "closed: its sha-256 is not the one its successor names"
            )
            raise AuditIntegrityError(msg)
        current = following
    return Journal(segments=tuple(segments))
