"""The outbox behaves the same on SQLite and PostgreSQL; claims never overlap."""

from __future__ import annotations

import datetime as dt
import threading

import pytest

from gatepass.store import Database, outbox

T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
LEASE = dt.timedelta(seconds=90)


def fill(database: Database, count: int, *, at: dt.datetime = T0) -> list[int]:
    """Queue ``count`` notifications and return their ids."""
    with database.transaction() as conn:
        return [
            outbox.enqueue(
                conn, "approval.requested", f"group-{n % 3}", {"n": n, "body": {}}, at
            )
            for n in range(count)
        ]


def claim(database: Database, now: dt.datetime, limit: int = 50) -> list[int]:
    """Claim due notifications in a transaction of their own."""
    with database.transaction() as conn:
        return [m.id for m in outbox.due(conn, now, limit, lease=LEASE)]


class TestOutbox:
    """Queue, claim, and the three ends of a delivery attempt."""

    def test_round_trip(self, database: Database) -> None:
        """A queued row reads back with its payload, due at once, not attempted."""
        payload = {"approval_id": "apr_1", "body": {"text": "é <x>", "n": [1, 2]}}
        with database.transaction() as conn:
            message_id = outbox.enqueue(conn, "approval.requested", "ops", payload, T0)
        with database.reading() as conn:
            message = outbox.get(conn, message_id)
        assert message is not None
        assert (message.kind, message.destination, message.payload) == (
            "approval.requested",
            "ops",
            payload,
        )
        assert message.created_at == T0
        assert message.next_attempt_at == T0
        assert message.attempts == 0
        assert message.delivered_at is None
        assert message.failed_at is None

    def test_rolled_back_transaction_queues_nothing(self, database: Database) -> None:
        """A notification exists only if the change it announces committed."""

        def change_that_fails() -> None:
            with database.transaction() as conn:
                outbox.enqueue(conn, "approval.requested", "ops", {}, T0)
                raise RuntimeError

        with pytest.raises(RuntimeError):
            change_that_fails()
        with database.reading() as conn:
            assert outbox.list_messages(conn) == []

    def test_due_oldest_first_within_limit(self, database: Database) -> None:
        """Due rows come oldest first, at most ``limit``; future rows wait."""
        ids = fill(database, 5)
        fill(database, 1, at=T0 + dt.timedelta(minutes=5))
        with database.reading() as conn:
            assert outbox.any_due(conn, T0)
        assert claim(database, T0, limit=3) == ids[:3]
        assert claim(database, T0, limit=10) == ids[3:]

    def test_claim_is_a_lease(self, database: Database) -> None:
        """A claimed row is not due again until its lease ends."""
        (message_id,) = fill(database, 1)
        assert claim(database, T0) == [message_id]
        assert claim(database, T0 + LEASE - dt.timedelta(seconds=1)) == []
        with database.reading() as conn:
            assert not outbox.any_due(conn, T0)
        # A sender that died holding it: the row comes back after the lease.
        assert claim(database, T0 + LEASE) == [message_id]

    def test_delivered_is_final(self, database: Database) -> None:
        """A delivered row is never due again and cannot be marked again."""
        (message_id,) = fill(database, 1)
        later = T0 + dt.timedelta(hours=1)
        with database.transaction() as conn:
            assert outbox.mark_delivered(conn, message_id, attempts=1, now=T0)
            assert not outbox.mark_delivered(conn, message_id, attempts=2, now=T0)
            assert not outbox.mark_failed(
                conn, message_id, attempts=2, error="x", now=T0
            )
            assert not outbox.mark_retry(
                conn, message_id, attempts=2, next_attempt_at=T0, error="x"
            )
        assert claim(database, later) == []
        with database.reading() as conn:
            message = outbox.get(conn, message_id)
            assert outbox.count_pending(conn) == 0
        assert message is not None
        assert message.delivered_at == T0
        assert message.attempts == 1

    def test_retry_then_fail(self, database: Database) -> None:
        """A retry records attempts, reason and due time; failing ends the row."""
        (message_id,) = fill(database, 1)
        retry_at = T0 + dt.timedelta(seconds=7)
        with database.transaction() as conn:
            assert outbox.mark_retry(
                conn, message_id, attempts=1, next_attempt_at=retry_at, error="x" * 500
            )
        assert claim(database, retry_at - dt.timedelta(seconds=1)) == []
        assert claim(database, retry_at) == [message_id]
        with database.transaction() as conn:
            message = outbox.get(conn, message_id)
            assert message is not None
            assert message.attempts == 1
            assert message.last_error == "x" * 200
            assert outbox.mark_failed(
                conn, message_id, attempts=2, error="http 500", now=retry_at
            )
        assert claim(database, retry_at + dt.timedelta(days=1)) == []
        with database.reading() as conn:
            failed = outbox.get(conn, message_id)
        assert failed is not None
        assert failed.failed_at == retry_at
        assert (failed.attempts, failed.last_error) == (2, "http 500")

    def test_prune_keeps_open_and_recent_rows(self, database: Database) -> None:
        """Pruning deletes finished rows older than the cut, and nothing else."""
        old_done, old_failed, recent_done, still_open = fill(database, 4)
        recent = T0 + dt.timedelta(days=10)
        with database.transaction() as conn:
            outbox.mark_delivered(conn, old_done, attempts=1, now=T0)
            outbox.mark_failed(conn, old_failed, attempts=8, error="x", now=T0)
            outbox.mark_delivered(conn, recent_done, attempts=1, now=recent)
            removed = outbox.prune(conn, finished_before=T0 + dt.timedelta(days=7))
        assert removed == 2
        with database.reading() as conn:
            left = [m.id for m in outbox.list_messages(conn)]
            assert outbox.count_pending(conn) == 1
        assert left == [recent_done, still_open]

    def test_list_by_kind(self, database: Database) -> None:
        """Listing can keep only some kinds."""
        with database.transaction() as conn:
            outbox.enqueue(conn, "approval.requested", "a", {}, T0)
            outbox.enqueue(conn, "other.kind", "a", {}, T0)
            kinds = [
                m.kind for m in outbox.list_messages(conn, kinds=["approval.requested"])
            ]
        assert kinds == ["approval.requested"]

    def test_concurrent_claimers_share_the_rows(self, database: Database) -> None:
        """Many threads claiming at once get every row exactly once."""
        ids = fill(database, 40)
        claimed: list[list[int]] = []
        errors: list[BaseException] = []
        lock = threading.Lock()

        def worker() -> None:
            try:
                while batch := claim(database, T0, limit=3):
                    with lock:
                        claimed.append(batch)
            except BaseException as error:  # noqa: BLE001 - reported below
                errors.append(error)

        threads = [threading.Thread(target=worker) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert errors == []
        flat = [message_id for batch in claimed for message_id in batch]
        assert sorted(flat) == ids


@pytest.mark.postgres
class TestSkipLocked:
    """On PostgreSQL, claims in flight at the same moment skip each other's rows."""

    @pytest.fixture
    def postgres(self, database: Database) -> Database:
        """The contract database, PostgreSQL only."""
        if database.dialect != "postgresql":
            pytest.skip("FOR UPDATE SKIP LOCKED is PostgreSQL's")
        return database

    def test_two_open_claims_never_share_a_row(self, postgres: Database) -> None:
        """A claim made while another is uncommitted gets only the other rows."""
        ids = fill(postgres, 10)
        with postgres.transaction() as first:
            mine = [m.id for m in outbox.due(first, T0, 4, lease=LEASE)]
            # The first claim has not committed: its rows are locked, not leased.
            with postgres.transaction() as second:
                theirs = [m.id for m in outbox.due(second, T0, 10, lease=LEASE)]
        assert mine == ids[:4]
        assert theirs == ids[4:]
        assert claim(postgres, T0) == []

    def test_a_rolled_back_claim_frees_its_rows(self, postgres: Database) -> None:
        """A replica that fails before committing its claim leaves the rows due."""
        ids = fill(postgres, 3)
        seen: list[int] = []

        def claim_that_fails() -> None:
            with postgres.transaction() as conn:
                seen.extend(m.id for m in outbox.due(conn, T0, 10, lease=LEASE))
                raise RuntimeError

        with pytest.raises(RuntimeError):
            claim_that_fails()
        assert seen == ids
        assert claim(postgres, T0) == ids
