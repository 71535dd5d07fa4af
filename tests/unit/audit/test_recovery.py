"""
Recovery and bookkeeping around the anchor journal.

Journal failures, one line per ending, checkpoint-now, the schema 2 upgrade, and
endings undone by editing rows.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from gatepass.audit import AuditEntry, chain_after, read_journal
from gatepass.errors import SealedError
from gatepass.models import LeaseState, TaskState
from gatepass.store import audit_log
from gatepass.store import leases as lease_rows
from gatepass.store import tasks as task_rows
from gatepass.store.tables import SCHEMA_VERSION, audit_events, audit_head
from gatepass.store.tables import leases as leases_table
from gatepass.tokens import DPoPKey

from .brokers import Broker, Brokers, insert_forged, issue, seal_expected


class TestJournalFailure:
    """A broker that cannot write its journal stops issuing."""

    def test_unwritable_journal_seals_after_the_commit(self, brokers: Brokers) -> None:
        """The close commits, the journal write fails, and the broker seals."""
        broker = brokers.start()
        item = issue(broker, tasks=1, tokens_per_task=1)[0]
        journal = brokers.state / "audit-checkpoints.jsonl"
        journal.unlink()
        journal.mkdir()
        broker.revoke(item["task"]["access_token"])
        seal_expected(broker, "audit anchor journal failed")
        with broker.runtime.database.reading() as conn:
            task = task_rows.get_task(conn, item["task"]["task_id"])
        assert task is not None
        assert task.state is TaskState.CLOSED
        with pytest.raises(SealedError):
            broker.open_task(DPoPKey.generate())
        journal.rmdir()
        summary = broker.run(broker.runtime.anchoring.reconcile, "admin:test")
        assert summary["reconciled"] is True
        assert not broker.runtime.context.seal.sealed
        broker.open_task(DPoPKey.generate())


class TestJournalLines:
    """The store anchors exactly the commits that end something."""

    def test_one_line_per_commit_that_ends_something(self, brokers: Brokers) -> None:
        """Issuing writes no anchor; closing a task of three leases writes one."""
        broker = brokers.start()
        journal = brokers.state / "audit-checkpoints.jsonl"
        before = read_journal(journal).segments[0].anchors
        key = DPoPKey.generate()
        task = broker.open_task(key)
        leases = [
            broker.access_token(key, task["access_token"])["lease_id"] for _ in range(3)
        ]
        assert read_journal(journal).segments[0].anchors == before
        broker.revoke(task["access_token"])
        anchors = read_journal(journal).segments[0].anchors[len(before) :]
        assert len(anchors) == 1
        assert anchors[0].ended == {
            "tasks": (task["task_id"],),
            "leases": tuple(leases),
        }
        with broker.runtime.database.reading() as conn:
            assert anchors[0].seq == audit_log.read_audit_head(conn)[0]

    def test_rolled_back_transaction_writes_no_anchor(self, brokers: Brokers) -> None:
        """Endings noted in a transaction that rolls back never reach the journal."""
        broker = brokers.start()
        journal = brokers.state / "audit-checkpoints.jsonl"
        key = DPoPKey.generate()
        task = broker.open_task(key)
        before = read_journal(journal).segments[0].anchors
        now = broker.clock.now()

        def close_then_fail() -> None:
            with broker.runtime.database.transaction() as conn:
                task_rows.close_task(conn, task["task_id"], now=now, reason="x")
                msg = "abort"
                raise RuntimeError(msg)

        with pytest.raises(RuntimeError):
            close_then_fail()
        assert read_journal(journal).segments[0].anchors == before
        with broker.runtime.database.reading() as conn:
            found = task_rows.get_task(conn, task["task_id"])
            assert found is not None
            assert found.state is TaskState.OPEN


class TestCheckpointNow:
    """``POST /v1/audit/checkpoints`` returns a checkpoint at the head."""

    def test_checkpoint_now_covers_the_head(self, brokers: Brokers) -> None:
        """It signs the head once and returns the same checkpoint again after."""
        broker = brokers.start()
        first = broker.run(broker.runtime.anchoring.checkpoint_now)
        with broker.runtime.database.reading() as conn:
            assert first.seq == audit_log.read_audit_head(conn)[0]
        assert broker.run(broker.runtime.anchoring.checkpoint_now) == first
        journal = read_journal(brokers.state / "audit-checkpoints.jsonl")
        assert journal.segments[0].checkpoints[-1] == first


class TestMigration:
    """A schema 2 database is upgraded in place and its records MACed once."""

    def _downgrade(self, broker: Broker) -> None:
        with broker.runtime.database.transaction() as conn:
            conn.exec_driver_sql("ALTER TABLE gp_audit_events DROP COLUMN mac")
            conn.exec_driver_sql(
                "UPDATE gp_settings SET value = X'32' WHERE name = 'schema_version'"
            )

    def test_schema_2_database_is_upgraded_and_keyed(self, brokers: Brokers) -> None:
        """Old records get MACs after their chain verified; checkpoints work."""
        broker = brokers.start()
        issue(broker, tasks=1, tokens_per_task=1)
        broker.run(broker.runtime.broker.audit.checkpoint)
        self._downgrade(broker)
        broker = brokers.start()
        with broker.runtime.database.reading() as conn:
            version = conn.exec_driver_sql(
                "SELECT value FROM gp_settings WHERE name = 'schema_version'"
            ).scalar_one()
            assert audit_log.first_unkeyed_seq(conn) is None
            assert audit_log.last_audit(conn, 1)[0].kind == "audit.migrate"
        assert bytes(version) == str(SCHEMA_VERSION).encode()
        assert broker.runtime.context.seal.unready() is None
        assert broker.run(broker.runtime.anchoring.checkpoint_now) is not None

    def test_unkeyed_record_after_the_upgrade_is_not_keyed(
        self, brokers: Brokers
    ) -> None:
        """A record without a MAC written after the upgrade stays unvouched."""
        broker = brokers.start()
        broker.run(broker.runtime.broker.audit.checkpoint)
        self._downgrade(broker)
        broker = brokers.start()
        with broker.runtime.database.transaction() as conn:
            seq, head = audit_log.read_audit_head(conn)
            entry = AuditEntry(
                at=broker.clock.now(), kind="agent.add", outcome="ok", actor="system"
            )
            forged = insert_forged(conn, chain_after(seq, head, entry))
            conn.execute(update(audit_head).values(seq=forged.seq, hash=forged.hash))
        broker = brokers.start()
        assert (
            broker.runtime.context.seal.alarm
            == f"record seq {forged.seq} has no mac: record forged"
        )
        with broker.runtime.database.reading() as conn:
            found = conn.execute(
                select(audit_events.c.mac).where(audit_events.c.seq == forged.seq)
            ).scalar_one()
        assert found is None


class TestEndedLeaseRows:
    """An ending undone by editing a row (no rollback of the chain) is re-applied."""

    def test_reopened_lease_row_seals_and_reconciles(self, brokers: Brokers) -> None:
        """A revoked lease set back to active is found at start and revoked again."""
        broker = brokers.start()
        item = issue(broker, tasks=1, tokens_per_task=1)[0]
        token = item["tokens"][0]
        broker.revoke(token)
        with broker.runtime.database.reading() as conn:
            lease = lease_rows.list_leases(conn, task_id=item["task"]["task_id"])[0]
        brokers.stop()
        with broker.runtime.database.transaction() as conn:
            conn.execute(
                update(leases_table)
                .where(leases_table.c.id == lease.id)
                .values(state="active", revoked_at=None)
            )
        broker.runtime.database.dispose()
        broker = brokers.start()
        seal_expected(broker, "1 leases ended that the database shows live")
        assert not broker.introspect(token)
        summary = broker.run(broker.runtime.anchoring.reconcile, "admin:test")
        assert summary["reapplied"]["leases"] == 1
        assert summary["segments"] == []
        with broker.runtime.database.reading() as conn:
            again = lease_rows.get_lease(conn, lease.id)
            assert again is not None
            assert again.state is LeaseState.REVOKED
            assert audit_log.last_audit(conn, 5)[-1].kind in {
                "audit.reconcile",
                "credential.reap",
            }
