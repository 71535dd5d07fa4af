"""The anchor journal file: durable lines, MACs, segments, and a tolerant reader."""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gatepass.audit import AnchorJournal, AuditMac, AuditSigner, read_journal
from gatepass.clock import FrozenClock
from gatepass.errors import AuditIntegrityError

from .conftest import START

HASH_A = "a" * 64
HASH_B = "b" * 64


class Failures:
    """Collects what the journal reports through its failure hook."""

    def __init__(self) -> None:
        """Start with none."""
        self.reasons: list[str] = []

    def __call__(self, reason: str) -> None:
        """Record one failure."""
        self.reasons.append(reason)


@pytest.fixture
def mac(signer: AuditSigner) -> AuditMac:
    """The MAC keys of the test signer."""
    return signer.mac()


@pytest.fixture
def failures() -> Failures:
    """The journal's failure hook."""
    return Failures()


@pytest.fixture
def journal(tmp_path: Path, mac: AuditMac, failures: Failures) -> AnchorJournal:
    """An opened journal in a temporary state directory."""
    found = AnchorJournal(
        tmp_path / "audit-checkpoints.jsonl",
        mac,
        clock=FrozenClock(START),
        on_failure=failures,
    )
    found.open()
    return found


class TestAppend:
    """Lines are appended durably and read back."""

    def test_new_file_starts_with_a_segment_line(self, journal: AnchorJournal) -> None:
        """A fresh journal's first line opens a segment with no predecessor."""
        first = json.loads(journal.path.read_text().splitlines()[0])
        assert first["segment"]["previous"] is None
        assert journal.path.stat().st_mode & 0o777 == 0o600

    def test_anchor_and_checkpoint_round_trip(
        self, journal: AnchorJournal, signer: AuditSigner, mac: AuditMac
    ) -> None:
        """Anchors and checkpoints read back with their MACs verified."""
        journal.record_commit(7, HASH_A, {"leases": ["lse_1", "lse_1", "lse_2"]})
        checkpoint = signer.sign(9, HASH_B, START)
        journal.append_checkpoint(checkpoint)
        segment = read_journal(journal.path, mac=mac).segments[0]
        assert [(a.seq, a.hash, dict(a.ended)) for a in segment.anchors] == [
            (7, HASH_A, {"leases": ("lse_1", "lse_2")})
        ]
        assert segment.checkpoints == (checkpoint,)
        assert segment.anchored() == [(7, HASH_A), (9, HASH_B)]
        assert segment.head_seq() == 9
        assert segment.ended() == {"leases": {"lse_1", "lse_2"}}

    def test_missing_file_is_an_empty_journal(self, tmp_path: Path) -> None:
        """No file means nothing was anchored yet."""
        assert read_journal(tmp_path / "none.jsonl").segments == ()

    def test_failed_write_calls_the_hook_and_never_raises(
        self, journal: AnchorJournal, failures: Failures
    ) -> None:
        """An unwritable journal reports one line through its hook."""
        journal.path.unlink()
        journal.path.mkdir()
        journal.record_commit(1, HASH_A, {"tasks": ["tsk_1"]})
        assert failures.reasons == [
            "cannot write audit-checkpoints.jsonl: IsADirectoryError"
        ]
        assert journal.failed == failures.reasons[0]


class TestForgery:
    """Lines without the broker's MAC are refused by the broker's reader."""

    def test_forged_anchor_line_is_refused(
        self, journal: AnchorJournal, mac: AuditMac
    ) -> None:
        """An anchor line added by hand has no valid MAC."""
        line = {
            "anchor": {"seq": 3, "hash": HASH_A, "at": "2026-01-01T00:00:00.000000Z"}
        }
        line["anchor"]["ended"] = {"agents": ["agt_victim"]}
        with journal.path.open("a") as handle:
            handle.write(json.dumps(line) + "\n")
        with pytest.raises(AuditIntegrityError, match=r"line 2 .* line forged$"):
            read_journal(journal.path, mac=mac)
        assert read_journal(journal.path).segments[0].anchors[0].seq == 3

    def test_edited_anchor_line_is_refused(
        self, journal: AnchorJournal, mac: AuditMac
    ) -> None:
        """Changing an anchored id breaks its MAC."""
        journal.record_commit(3, HASH_A, {"tasks": ["tsk_1"]})
        text = journal.path.read_text().replace("tsk_1", "tsk_2")
        journal.path.write_text(text)
        with pytest.raises(AuditIntegrityError, match="mac does not verify"):
            read_journal(journal.path, mac=mac)

    def test_another_brokers_key_is_refused(
        self, journal: AnchorJournal, sealer: object
    ) -> None:
        """Lines MACed under another audit key do not verify."""
        journal.record_commit(3, HASH_A, {"tasks": ["tsk_1"]})
        other, _ = AuditSigner.generate(sealer)  # type: ignore[arg-type]
        with pytest.raises(AuditIntegrityError, match="line forged"):
            read_journal(journal.path, mac=other.mac())


class TestReader:
    """The reader is strict about content and tolerant of a torn last line."""

    def test_torn_last_line_is_ignored(self, journal: AnchorJournal) -> None:
        """A crash between write and fsync can leave half a line at the end."""
        journal.record_commit(3, HASH_A, {"tasks": ["tsk_1"]})
        with journal.path.open("a") as handle:
            handle.write('{"anchor": {"seq": 4, "ha')
        assert [a.seq for a in read_journal(journal.path).segments[0].anchors] == [3]

    @pytest.mark.parametrize(
        ("line", "message"),
        [
            ("not json", "line 2 of audit-checkpoints.jsonl is not json"),
            ('{"a": {}, "b": {}}', "is not a one-key object"),
            ('{"anchor": 3}', "'anchor' is not an object"),
            ('{"comment": {}}', "is an unknown 'comment' line"),
            ('{"anchor": {"seq": "1"}}', "seq is not a non-negative integer"),
            ('{"anchor": {"seq": 1, "hash": "x"}}', "hash is not a sha-256"),
            (
                f'{{"anchor": {{"seq": 1, "hash": "{HASH_A}", "ended": []}}}}',
                "ended is not an object of id lists",
            ),
            (
                (
                    f'{{"anchor": {{"seq": 1, "hash": "{HASH_A}", "ended": {{}}, '
                    '"at": "yesterday"}}'
                ),
                "at is not rfc 3339 utc",
            ),
            ('{"segment": {"previous": null}}', "a segment line must come first"),
        ],
    )
    def test_malformed_lines_are_refused(
        self, journal: AnchorJournal, line: str, message: str
    ) -> None:
        """A line that is not a journal line names its number and the problem."""
        with journal.path.open("a") as handle:
            handle.write(line + "\n\n")
        with pytest.raises(AuditIntegrityError, match=message):
            read_journal(journal.path)

    @settings(max_examples=50, deadline=None)
    @given(st.binary(max_size=300))
    def test_any_bytes_fail_cleanly(self, raw: bytes) -> None:
        """Whatever the file holds, reading it raises nothing but an integrity error."""
        with tempfile.TemporaryDirectory() as directory:
            path = Path(directory) / "audit-checkpoints.jsonl"
            path.write_bytes(raw)
            detail = None
            try:
                read_journal(path)
            except AuditIntegrityError as error:
                detail = error.detail
            assert detail is None or "\n" not in detail


class TestSegments:
    """Reconcile closes a segment and the next one names it."""

    def test_start_segment_renames_and_links(
        self, journal: AnchorJournal, mac: AuditMac
    ) -> None:
        """The closed file is kept under a new name; its digest is recorded."""
        journal.record_commit(5, HASH_A, {"tasks": ["tsk_1"]})
        reference = journal.start_segment()
        journal.record_commit(6, HASH_B, {"leases": ["lse_9"]})
        found = read_journal(journal.path, mac=mac)
        assert [s.path.name for s in found.segments] == [
            "audit-checkpoints.jsonl",
            reference.file,
        ]
        assert reference.head_seq == 5
        assert found.segments[0].previous == reference
        assert found.segments[1].digest == reference.sha256
        assert found.seqs() == {5, 6}

    def test_closed_segment_edited_afterwards_is_refused(
        self, journal: AnchorJournal
    ) -> None:
        """A closed segment must keep the bytes its successor hashed."""
        journal.record_commit(5, HASH_A, {"tasks": ["tsk_1"]})
        reference = journal.start_segment()
        closed = journal.path.with_name(reference.file)
        closed.write_text(closed.read_text().replace("tsk_1", "tsk_2"))
        with pytest.raises(AuditIntegrityError, match="changed after it was closed"):
            read_journal(journal.path)

    def test_missing_closed_segment_is_reported(self, journal: AnchorJournal) -> None:
        """A deleted older segment is named, and the current one still reads."""
        reference = journal.start_segment()
        journal.path.with_name(reference.file).unlink()
        found = read_journal(journal.path)
        assert found.missing == reference.file
        assert len(found.segments) == 1

    def test_as_of_ignores_later_lines(self, journal: AnchorJournal) -> None:
        """Lines written after a moment are left out when comparing as of it."""
        clock = FrozenClock(START)
        later = AnchorJournal(journal.path, journal._mac, clock=clock, on_failure=print)
        later.record_commit(5, HASH_A, {"tasks": ["tsk_1"]})
        clock.advance(60)
        later.record_commit(9, HASH_B, {"tasks": ["tsk_2"]})
        segment = read_journal(journal.path).segments[0]
        assert segment.head_seq(as_of=START + dt.timedelta(seconds=1)) == 5
        assert segment.head_seq() == 9
