"""compare(): a database behind, beside or ahead of its anchor journal."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from gatepass.audit import (
    ROLLBACK_KIND,
    AnchorJournal,
    AuditRecord,
    AuditSigner,
    compare,
    read_journal,
)
from gatepass.clock import FrozenClock

from .conftest import START, ChainAll, MakeEntries


class FakeChain:
    """A database seen through the ChainView protocol, from records and rows."""

    def __init__(
        self,
        records: list[AuditRecord],
        live: Mapping[str, set[str]] | None = None,
    ) -> None:
        """Hold the records and the ids whose rows are not ended."""
        self.records = records
        self.live = dict(live or {})

    def head(self) -> tuple[int, str]:
        """Return the last record's seq and hash."""
        if not self.records:
            return 0, ""
        return self.records[-1].seq, self.records[-1].hash

    def hashes(self, seqs: Collection[int]) -> Mapping[int, str]:
        """Return the hashes of the records at these seqs."""
        return {r.seq: r.hash for r in self.records if r.seq in seqs}

    def rollbacks(self) -> Sequence[Mapping[str, Any]]:
        """Return the data of the rollback records."""
        return [dict(r.data) for r in self.records if r.kind == ROLLBACK_KIND]

    def still_live(self, kind: str, ids: Collection[str]) -> Collection[str]:
        """Return the ids among ``ids`` that are live."""
        return set(ids) & self.live.get(kind, set())


@pytest.fixture
def journal(tmp_path: Path, signer: AuditSigner) -> AnchorJournal:
    """An empty journal."""
    found = AnchorJournal(
        tmp_path / "audit-checkpoints.jsonl",
        signer.mac(),
        clock=FrozenClock(START),
        on_failure=print,
    )
    found.open()
    return found


@pytest.fixture
def records(make_entries: MakeEntries, chain_all: ChainAll) -> list[AuditRecord]:
    """Twenty chained records."""
    return chain_all(make_entries(20))


class TestCompare:
    """The rules of docs/audit.md, one by one."""

    def test_database_in_step_with_the_journal_agrees(
        self, journal: AnchorJournal, records: list[AuditRecord]
    ) -> None:
        """Anchors that all match, at or below the head, agree."""
        journal.record_commit(5, records[4].hash, {"tasks": ["tsk_1"]})
        journal.record_commit(20, records[19].hash, {"leases": ["lse_1"]})
        result = compare(read_journal(journal.path), FakeChain(records))
        assert result.agrees
        assert (result.database_head, result.journal_head) == (20, 20)

    def test_database_ahead_of_the_journal_agrees(
        self, journal: AnchorJournal, records: list[AuditRecord]
    ) -> None:
        """A crash after a commit but before its line leaves the journal behind."""
        journal.record_commit(5, records[4].hash, {"tasks": ["tsk_1"]})
        assert compare(read_journal(journal.path), FakeChain(records)).agrees

    def test_empty_journal_agrees(
        self, tmp_path: Path, records: list[AuditRecord]
    ) -> None:
        """With no journal there is nothing to compare with."""
        empty = read_journal(tmp_path / "none.jsonl")
        assert compare(empty, FakeChain(records)).agrees

    def test_issue11_restored_snapshot_is_behind(
        self, journal: AnchorJournal, records: list[AuditRecord]
    ) -> None:
        """A database whose head is behind the newest anchor was rolled back."""
        journal.record_commit(5, records[4].hash, {"tasks": ["tsk_1"]})
        journal.record_commit(18, records[17].hash, {"tasks": ["tsk_2"]})
        result = compare(read_journal(journal.path), FakeChain(records[:12]))
        assert result.problem == (
            "the database (head seq 12) is behind the anchor journal (seq 18): "
            "restored from an older snapshot, or records deleted"
        )
        assert result.current is not None
        assert (result.current.fork_seq, result.current.head_seq) == (5, 18)

    def test_issue11_rewritten_record_disagrees(
        self,
        journal: AnchorJournal,
        records: list[AuditRecord],
        make_entries: MakeEntries,
        chain_all: ChainAll,
    ) -> None:
        """A chain rewritten from a seq, rehashed, no longer holds the anchor."""
        journal.record_commit(8, records[7].hash, {"tasks": ["tsk_1"]})
        other = make_entries(14, start=START.replace(year=2027))
        forged = records[:6] + chain_all(other[6:], records[5])
        result = compare(read_journal(journal.path), FakeChain(forged))
        assert result.problem == (
            "the database's record at seq 8 is not the one the anchor journal "
            "names: chain rewritten"
        )

    def test_issue11_deleted_anchored_record_is_missing(
        self, journal: AnchorJournal, records: list[AuditRecord]
    ) -> None:
        """A record the journal names that the database lacks was deleted."""
        journal.record_commit(8, records[7].hash, {"tasks": ["tsk_1"]})
        holed = records[:7] + records[8:]
        result = compare(read_journal(journal.path), FakeChain(holed))
        assert result.problem == (
            "seq 8, which the anchor journal names, is missing from the database: "
            "records deleted"
        )

    def test_ended_but_live_rows_disagree(
        self, journal: AnchorJournal, records: list[AuditRecord]
    ) -> None:
        """Rows put back to live after the journal saw them end are found."""
        journal.record_commit(
            5, records[4].hash, {"tasks": ["tsk_1"], "leases": ["lse_1", "lse_2"]}
        )
        chain_view = FakeChain(records, live={"leases": {"lse_2"}, "tasks": set()})
        result = compare(read_journal(journal.path), chain_view)
        assert result.problem == (
            "the anchor journal says 1 leases ended that the database shows live"
        )
        assert result.ended_live == {"leases": frozenset({"lse_2"})}
        assert result.current is None

    def test_as_of_compares_with_what_the_journal_knew_then(
        self, journal: AnchorJournal, records: list[AuditRecord]
    ) -> None:
        """An export is compared with the lines written before its checkpoint."""
        journal.record_commit(18, records[17].hash, {"tasks": ["tsk_2"]})
        earlier = START.replace(year=2025)
        result = compare(
            read_journal(journal.path), FakeChain(records[:12]), as_of=earlier
        )
        assert result.agrees


class TestForks:
    """After reconcile, the old segment is acknowledged by an audit.rollback."""

    def _fork(
        self,
        journal: AnchorJournal,
        records: list[AuditRecord],
        make_entries: MakeEntries,
        chain_all: ChainAll,
        *,
        acknowledge: bool,
    ) -> list[AuditRecord]:
        journal.record_commit(5, records[4].hash, {"tasks": ["tsk_1"]})
        journal.record_commit(18, records[17].hash, {"tasks": ["tsk_2"]})
        reference = journal.start_segment()
        restored = records[:12]
        data: dict[str, Any] = {}
        if acknowledge:
            data = {
                "segments": [
                    {"file": reference.file, "sha256": reference.sha256, "fork_seq": 5}
                ]
            }
        entry = make_entries(13)[12]
        rollback = chain_all(
            [
                type(entry)(
                    at=entry.at, kind=ROLLBACK_KIND, outcome="ok", actor="a", data=data
                )
            ],
            restored[-1],
        )
        new_history = restored + rollback
        journal.record_commit(13, new_history[-1].hash, {"tasks": ["tsk_3"]})
        return new_history

    def test_acknowledged_fork_agrees(
        self,
        journal: AnchorJournal,
        records: list[AuditRecord],
        make_entries: MakeEntries,
        chain_all: ChainAll,
    ) -> None:
        """The lost history past the fork seq is covered by the rollback record."""
        history = self._fork(
            journal, records, make_entries, chain_all, acknowledge=True
        )
        result = compare(
            read_journal(journal.path), FakeChain(history), require_segments=True
        )
        assert result.agrees, result.problem

    def test_unacknowledged_fork_disagrees(
        self,
        journal: AnchorJournal,
        records: list[AuditRecord],
        make_entries: MakeEntries,
        chain_all: ChainAll,
    ) -> None:
        """A closed segment that no rollback record names is a problem."""
        history = self._fork(
            journal, records, make_entries, chain_all, acknowledge=False
        )
        result = compare(read_journal(journal.path), FakeChain(history))
        assert result.problem is not None
        assert "no audit.rollback record acknowledges it" in result.problem
        assert [s.fork_seq for s in result.unacknowledged] == [5]

    def test_missing_segment_disagrees_only_when_required(
        self,
        journal: AnchorJournal,
        records: list[AuditRecord],
        make_entries: MakeEntries,
        chain_all: ChainAll,
    ) -> None:
        """The offline verifier follows every fork; the broker needs the newest."""
        history = self._fork(
            journal, records, make_entries, chain_all, acknowledge=True
        )
        found = read_journal(journal.path)
        journal.path.with_name(found.segments[1].path.name).unlink()
        missing = read_journal(journal.path)
        assert compare(missing, FakeChain(history)).agrees
        strict = compare(missing, FakeChain(history), require_segments=True)
        assert strict.problem is not None
        assert strict.problem.endswith("is missing")
