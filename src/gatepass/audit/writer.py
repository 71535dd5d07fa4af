"""
Writing the anchor journal: one durable line per commit that ended something.

The format and the reader are in :mod:`gatepass.audit.journal`. Each line is
appended with ``O_APPEND`` in one ``write(2)`` and ``fsync``ed before the call
returns; the file is not held open between lines (nothing to close at shutdown,
and a segment renamed by reconcile is never written by mistake).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from gatepass.audit.canonical import format_timestamp
from gatepass.audit.checkpoint import Checkpoint
from gatepass.audit.journal import Anchor, SegmentRef, line_payload, read_segment
from gatepass.audit.mac import AuditMac
from gatepass.clock import Clock

__all__ = ["AnchorJournal"]


def _encode(obj: Mapping[str, Any]) -> bytes:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return text.encode("ascii") + b"\n"


class AnchorJournal:
    """
    Append anchor and checkpoint lines to the journal file, durably.

    Each line is appended with ``O_APPEND``, flushed and ``fsync``ed before the
    call returns, and the file is not held open between lines (nothing to close at
    shutdown; a rotated file is never written by mistake). Appends never raise: the
    database commit they follow has already happened, so a failure is handed to
    ``on_failure`` (which seals the broker) instead.

    Args:
        path: the current journal file (created with mode 0600 when missing).
        mac: MACs the anchor and segment lines.
        clock: the time written on lines.
        on_failure: called with a one-line reason when a line cannot be written.
    """

    def __init__(
        self,
        path: Path,
        mac: AuditMac,
        *,
        clock: Clock,
        on_failure: Callable[[str], None],
    ) -> None:
        """Keep the collaborators; nothing is opened yet."""
        self.path = path
        self._mac = mac
        self._clock = clock
        self._on_failure = on_failure
        self._lock = threading.Lock()
        self._failed: str | None = None

    def _segment_line(self, previous: SegmentRef | None) -> bytes:
        payload: dict[str, Any] = {
            "at": format_timestamp(self._clock.now()),
            "previous": None if previous is None else previous.to_json(),
        }
        payload["mac"] = self._mac.line_mac(line_payload("segment", payload))
        return _encode({"segment": payload})

    def _write(self, line: bytes, *, previous: SegmentRef | None = None) -> None:
        """Append ``line`` durably, starting the file with its segment line if new."""
        fresh = not self.path.exists()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            data = (self._segment_line(previous) if fresh else b"") + line
            # One write(2) of the whole line: O_APPEND keeps lines from several
            # processes (replicas sharing a state directory) from interleaving.
            written = os.write(fd, data)
            if written != len(data):
                msg = "short write"
                raise OSError(msg)
            os.fsync(fd)
        finally:
            os.close(fd)
        if fresh:
            _fsync_directory(self.path.parent)

    def open(self) -> None:
        """
        Create the journal file if it is missing and clear a past failure.

        Raises:
            OSError: the file cannot be created or written.
        """
        with self._lock:
            self._write(b"")
            self._failed = None

    @property
    def failed(self) -> str | None:
        """Why the last append failed, or None while appends succeed."""
        return self._failed

    def _append(self, line: bytes) -> None:
        with self._lock:
            try:
                self._write(line)
            except OSError as error:
                self._failed = f"cannot write {self.path.name}: {type(error).__name__}"
                failed = self._failed
            else:
                return
        self._on_failure(failed)

    def record_commit(
        self, seq: int, hash_: str, ended: Mapping[str, Sequence[str]]
    ) -> None:
        """
        Anchor one committed transaction that ended something (the store's hook).

        Args:
            seq: the chain head's seq at that commit.
            hash_: the head's hash.
            ended: the ids that ended, by kind.
        """
        anchor = Anchor(
            seq=seq,
            hash=hash_,
            at=format_timestamp(self._clock.now()),
            ended={kind: tuple(dict.fromkeys(ids)) for kind, ids in ended.items()},
        )
        body = anchor.body()
        body["mac"] = self._mac.line_mac(anchor.payload())
        self._append(_encode({"anchor": body}))

    def append_checkpoint(self, checkpoint: Checkpoint) -> None:
        """Repeat a signed checkpoint in the journal."""
        self._append(_encode({"checkpoint": checkpoint.to_json()}))

    def start_segment(self) -> SegmentRef:
        """
        Close the current file (renamed beside it) and start a new one naming it.

        Returns:
            The reference to the closed segment, as the new file's first line
            records it.

        Raises:
            OSError: the files cannot be renamed or written.
            AuditIntegrityError: the current file cannot be parsed.
        """
        with self._lock:
            exists = self.path.exists()
            raw = self.path.read_bytes() if exists else b""
            head_seq = read_segment(self.path, None).head_seq() if exists else 0
            stamp = self._clock.now().astimezone(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
            closed = self.path.with_name(f"{self.path.stem}.{stamp}{self.path.suffix}")
            if exists:
                self.path.replace(closed)
            else:
                closed.write_bytes(raw)
            reference = SegmentRef(
                file=closed.name,
                sha256=hashlib.sha256(raw).hexdigest(),
                head_seq=head_seq,
            )
            self._write(b"", previous=reference)
            self._failed = None
            return reference


def _fsync_directory(directory: Path) -> None:
    # A rename is durable only once its directory is (POSIX rename(2) and fsync(2)).
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
