import dataclasses
import datetime as dt
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gatepass.audit import (
    AuditEntry,
    AuditRecord,
    AuditSigner,
    VerifyReport,
    chain,
    verify_log,
)
from gatepass.errors import AuditIntegrityError

from .conftest import MakeLog


def rehash(record: AuditRecord) -> AuditRecord:
    """Return the record with its hash recomputed from its fields."""
    return dataclasses.replace(record, hash=record.computed_hash())


def rewrite(records: list[AuditRecord], start_seq: int) -> list[AuditRecord]:
    """Forge records from start_seq onward with a new outcome and consistent hashes."""
    forged = list(records[: start_seq - 1])
    previous = forged[-1] if forged else None
    for record in records[start_seq - 1 :]:
        entry = AuditEntry(
            at=record.at,
            kind=record.kind,
            outcome="allow",
            actor=record.actor,
            subject=record.subject,
            data={**record.data, "forged": True},
        )
        previous = chain(previous, entry)
        forged.append(previous)
    return forged


class TestVerifyLog:
    """verify_log() detects every kind of tampering, naming the seq."""

    def test_untampered_log_verifies(self, make_log: MakeLog) -> None:
        """An untouched log ending at a checkpoint verifies and is fully anchored."""
        log = make_log(10, checkpoints=(5, 10))
        report = verify_log(log.records, log.checkpoints, log.jwk)
        assert report == VerifyReport(
            events=10,
            checkpoints=2,
            last_seq=10,
            last_checkpoint_seq=10,
            unanchored_tail=0,
        )

    def test_issue11_records_after_the_last_checkpoint_fail(
        self, make_log: MakeLog
    ) -> None:
        """Records after the last checkpoint fail, naming the first unanchored seq."""
        log = make_log(10, checkpoints=(5, 8))
        with pytest.raises(
            AuditIntegrityError,
            match=r"^records from seq 9 to 10 follow the last checkpoint \(seq 8\) "
            r"and are not anchored: unanchored tail$",
        ):
            verify_log(log.records, log.checkpoints, log.jwk)

    def test_log_without_any_checkpoint_fails(self, make_log: MakeLog) -> None:
        """A log no checkpoint covers is unanchored from seq 1."""
        log = make_log(3, checkpoints=())
        with pytest.raises(AuditIntegrityError, match=r"^records from seq 1 to 3 "):
            verify_log(log.records, [], log.jwk)

    def test_unanchored_tail_allowed_when_asked(self, make_log: MakeLog) -> None:
        """The migration pass may accept the tail explicitly, and counts it."""
        log = make_log(10, checkpoints=(5, 8))
        report = verify_log(
            log.records, log.checkpoints, log.jwk, allow_unanchored=True
        )
        assert report.unanchored_tail == 2

    def test_empty_log_verifies(self, signer: AuditSigner) -> None:
        """An empty log with no checkpoints is valid and empty."""
        report = verify_log([], [], signer.public_jwk)
        assert report == VerifyReport(
            events=0,
            checkpoints=0,
            last_seq=0,
            last_checkpoint_seq=0,
            unanchored_tail=0,
        )

    def test_checkpoint_on_last_record_leaves_no_tail(self, make_log: MakeLog) -> None:
        """A checkpoint at the last seq anchors everything."""
        log = make_log(4, checkpoints=(4,))
        assert verify_log(log.records, log.checkpoints, log.jwk).unanchored_tail == 0

    def test_reads_records_once_from_a_generator(self, make_log: MakeLog) -> None:
        """Records may be a one-shot iterator; they are streamed, not listed."""
        log = make_log(50, checkpoints=(10, 50))
        consumed: list[int] = []

        def stream() -> Iterator[AuditRecord]:
            for record in log.records:
                consumed.append(record.seq)
                yield record

        report = verify_log(stream(), log.checkpoints, log.jwk)
        assert report.events == 50
        assert consumed == list(range(1, 51))

    def test_edited_data_is_detected(self, make_log: MakeLog) -> None:
        """Changing a record's data breaks its hash."""
        log = make_log()
        records = log.records
        records[2] = dataclasses.replace(records[2], data={"target": "prod-db"})
        with pytest.raises(
            AuditIntegrityError,
            match=r"^record seq 3 hash does not match its contents: record edited$",
        ):
            verify_log(records, log.checkpoints, log.jwk)

    def test_edited_time_is_detected(self, make_log: MakeLog) -> None:
        """Moving a record in time by one microsecond breaks its hash."""
        log = make_log()
        records = log.records
        moved = records[6].at + dt.timedelta(microseconds=1)
        records[6] = dataclasses.replace(records[6], at=moved)
        with pytest.raises(AuditIntegrityError, match=r"^record seq 7 hash does not"):
            verify_log(records, log.checkpoints, log.jwk)

    def test_edited_and_rehashed_record_breaks_the_link(
        self, make_log: MakeLog
    ) -> None:
        """Recomputing an edited record's hash breaks the next record's prev_hash."""
        log = make_log()
        records = log.records
        records[2] = rehash(dataclasses.replace(records[2], outcome="error"))
        with pytest.raises(
            AuditIntegrityError,
            match=r"^record seq 4 prev_hash does not match the hash of seq 3: "
            r"chain broken$",
        ):
            verify_log(records, log.checkpoints, log.jwk)

    def test_deleted_middle_record_is_detected(self, make_log: MakeLog) -> None:
        """A missing record is reported with its seq."""
        log = make_log()
        del log.records[2]
        with pytest.raises(
            AuditIntegrityError,
            match=r"^seq 3 missing before seq 4: records deleted$",
        ):
            verify_log(log.records, log.checkpoints, log.jwk)

    def test_deleted_run_is_detected(self, make_log: MakeLog) -> None:
        """Several missing records are reported as a range."""
        log = make_log()
        del log.records[2:5]
        with pytest.raises(
            AuditIntegrityError,
            match=r"^seqs 3-5 missing before seq 6: records deleted$",
        ):
            verify_log(log.records, log.checkpoints, log.jwk)

    def test_deleted_head_is_detected(self, make_log: MakeLog) -> None:
        """A log that does not start at seq 1 lost its head."""
        log = make_log()
        del log.records[0:2]
        with pytest.raises(
            AuditIntegrityError,
            match=r"^log starts at seq 3, not 1: head of the log deleted$",
        ):
            verify_log(log.records, log.checkpoints, log.jwk)

    def test_first_record_must_chain_from_genesis(self, make_log: MakeLog) -> None:
        """Seq 1 with any other prev_hash is not the start of the log."""
        log = make_log()
        records = log.records
        records[0] = rehash(dataclasses.replace(records[0], prev_hash="1" * 64))
        with pytest.raises(
            AuditIntegrityError,
            match=r"^record seq 1 does not chain from the genesis hash$",
        ):
            verify_log(records, log.checkpoints, log.jwk)

    def test_reordered_records_are_detected(self, make_log: MakeLog) -> None:
        """Swapping two neighbours is reported as a reordering."""
        log = make_log()
        records = log.records
        records[2], records[3] = records[3], records[2]
        with pytest.raises(
            AuditIntegrityError,
            match=r"^record seq 4 comes before seq 3: records reordered$",
        ):
            verify_log(records, log.checkpoints, log.jwk)

    def test_duplicated_record_is_detected(self, make_log: MakeLog) -> None:
        """A record written twice is reported as duplicated."""
        log = make_log()
        records = log.records
        records.insert(3, records[2])
        with pytest.raises(AuditIntegrityError, match=r"^record seq 3 is duplicated$"):
            verify_log(records, log.checkpoints, log.jwk)

    def test_record_moved_back_is_detected(self, make_log: MakeLog) -> None:
        """A record reappearing later in the stream is out of order."""
        log = make_log()
        records = log.records
        records.insert(6, records[1])
        with pytest.raises(
            AuditIntegrityError,
            match=r"^record seq 2 follows seq 6: records out of order$",
        ):
            verify_log(records, log.checkpoints, log.jwk)

    def test_truncated_tail_past_a_checkpoint_is_detected(
        self, make_log: MakeLog
    ) -> None:
        """Cutting the log before a checkpoint's seq is a truncation."""
        log = make_log(10, checkpoints=(5, 8))
        with pytest.raises(
            AuditIntegrityError,
            match=r"^checkpoint at seq 8 is beyond the last record seq 6: "
            r"log truncated$",
        ):
            verify_log(log.records[:6], log.checkpoints, log.jwk)

    def test_rewritten_chain_is_caught_by_a_checkpoint(self, make_log: MakeLog) -> None:
        """A consistent rewrite of the chain before a checkpoint contradicts it."""
        log = make_log(10, checkpoints=(5, 8))
        forged = rewrite(log.records, 7)
        with pytest.raises(
            AuditIntegrityError,
            match=r"^checkpoint at seq 8 does not match the record's hash: "
            r"chain rewritten$",
        ):
            verify_log(forged, log.checkpoints, log.jwk)

    def test_issue11_rewrite_after_the_last_checkpoint_fails(
        self, make_log: MakeLog
    ) -> None:
        """A consistent rewrite after the last checkpoint no longer verifies."""
        log = make_log(10, checkpoints=(5, 8))
        with pytest.raises(AuditIntegrityError, match=r"^records from seq 9 to 10 "):
            verify_log(rewrite(log.records, 9), log.checkpoints, log.jwk)

    def test_checkpoint_signed_by_another_key_is_refused(
        self, make_log: MakeLog
    ) -> None:
        """A checkpoint forged with the attacker's own key has an unknown kid."""
        log = make_log(10, checkpoints=(5,))
        forger = AuditSigner(Ed25519PrivateKey.generate())
        forged = rewrite(log.records, 1)
        checkpoints = [forger.sign(5, forged[4].hash, forged[4].at)]
        with pytest.raises(
            AuditIntegrityError, match=r"^checkpoint at seq 5 is signed by unknown kid"
        ):
            verify_log(forged, checkpoints, log.jwk)

    def test_forged_signature_under_the_real_kid_is_refused(
        self, make_log: MakeLog
    ) -> None:
        """A checkpoint moved to a rewritten hash no longer verifies."""
        log = make_log(10, checkpoints=(5,))
        forged = rewrite(log.records, 1)
        checkpoints = [dataclasses.replace(log.checkpoints[0], hash=forged[4].hash)]
        with pytest.raises(
            AuditIntegrityError, match=r"^checkpoint at seq 5 has an invalid signature$"
        ):
            verify_log(forged, checkpoints, log.jwk)

    def test_checkpoints_out_of_order_are_refused(self, make_log: MakeLog) -> None:
        """Checkpoints must come in strictly increasing seq order."""
        log = make_log(10, checkpoints=(8, 5))
        with pytest.raises(
            AuditIntegrityError,
            match=r"^checkpoint at seq 5 follows checkpoint at seq 8: "
            r"checkpoints out of order$",
        ):
            verify_log(log.records, log.checkpoints, log.jwk)

    def test_duplicate_checkpoints_are_refused(self, make_log: MakeLog) -> None:
        """Two checkpoints at one seq are out of order."""
        log = make_log(10, checkpoints=(5, 5))
        with pytest.raises(AuditIntegrityError, match="checkpoints out of order"):
            verify_log(log.records, log.checkpoints, log.jwk)

    def test_checkpoint_at_seq_zero_is_refused(self, make_log: MakeLog) -> None:
        """A checkpoint must name a real record."""
        log = make_log(3, checkpoints=())
        checkpoint = log.signer.sign(0, log.records[0].prev_hash, log.records[0].at)
        with pytest.raises(
            AuditIntegrityError, match=r"^checkpoint at seq 0 is not a positive seq$"
        ):
            verify_log(log.records, [checkpoint], log.jwk)

    def test_record_that_cannot_be_hashed(self, make_log: MakeLog) -> None:
        """A record with a naive time (a store bug) fails as an integrity error."""
        log = make_log()
        records = log.records
        records[1] = dataclasses.replace(
            records[1], at=records[1].at.replace(tzinfo=None)
        )
        with pytest.raises(
            AuditIntegrityError, match=r"^record seq 2 cannot be hashed$"
        ):
            verify_log(records, log.checkpoints, log.jwk)

    def test_key_rotation_with_a_key_set(self, make_log: MakeLog) -> None:
        """Checkpoints by an old and a new key verify against a key set."""
        log = make_log(10, checkpoints=(5,))
        new = AuditSigner(Ed25519PrivateKey.generate())
        checkpoints = [
            *log.checkpoints,
            new.sign(10, log.records[9].hash, log.records[9].at),
        ]
        keys = {"keys": [log.jwk, new.public_jwk]}
        assert verify_log(log.records, checkpoints, keys).last_checkpoint_seq == 10


class TestVerifySlice:
    """verify_log() verifies a slice from a trusted (seq, hash)."""

    def test_slice_verifies_from_a_trusted_start(self, make_log: MakeLog) -> None:
        """A slice continuing a known (seq, hash) verifies on its own."""
        log = make_log(10, checkpoints=(5, 10))
        start = log.records[3]
        report = verify_log(
            log.records[4:],
            log.checkpoints,
            log.jwk,
            start_after=(start.seq, start.hash),
        )
        assert report == VerifyReport(
            events=6,
            checkpoints=2,
            last_seq=10,
            last_checkpoint_seq=10,
            unanchored_tail=0,
        )

    def test_slice_after_the_last_checkpoint_fails(self, make_log: MakeLog) -> None:
        """A slice past every checkpoint is unanchored from its start."""
        log = make_log(10, checkpoints=(2,))
        start = log.records[5]
        with pytest.raises(AuditIntegrityError, match=r"^records from seq 7 to 10 "):
            verify_log(
                log.records[6:],
                log.checkpoints,
                log.jwk,
                start_after=(start.seq, start.hash),
            )

    def test_empty_slice(self, make_log: MakeLog) -> None:
        """An empty slice reports its start as the last seq."""
        log = make_log(10, checkpoints=(5,))
        start = log.records[9]
        report = verify_log([], log.checkpoints, log.jwk, start_after=(10, start.hash))
        assert (report.events, report.last_seq, report.unanchored_tail) == (0, 10, 0)

    def test_slice_with_the_wrong_start_hash(self, make_log: MakeLog) -> None:
        """A slice that does not continue the trusted hash is broken."""
        log = make_log(10, checkpoints=())
        with pytest.raises(
            AuditIntegrityError, match=r"^record seq 5 prev_hash does not match"
        ):
            verify_log(log.records[4:], [], log.jwk, start_after=(4, "f" * 64))

    def test_slice_starting_at_the_wrong_seq(self, make_log: MakeLog) -> None:
        """A slice whose first record does not follow the start is missing records."""
        log = make_log(10, checkpoints=())
        start = log.records[3]
        with pytest.raises(
            AuditIntegrityError,
            match=r"^slice starts at seq 6, not 5: records missing$",
        ):
            verify_log(log.records[5:], [], log.jwk, start_after=(4, start.hash))

    def test_checkpoint_at_the_start_must_match(self, make_log: MakeLog) -> None:
        """A checkpoint at the start seq is checked against the trusted start hash."""
        log = make_log(10, checkpoints=(4,))
        with pytest.raises(
            AuditIntegrityError,
            match=r"^checkpoint at seq 4 does not match the trusted start hash$",
        ):
            verify_log(
                log.records[4:], log.checkpoints, log.jwk, start_after=(4, "f" * 64)
            )
