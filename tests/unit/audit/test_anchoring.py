"""
A broker whose database goes back in time seals itself; a forged record is refused.

See ``brokers.py`` for the harness: real brokers on SQLite, restarted on one state
directory, their databases tampered with as an attacker with write access would.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from sqlalchemy import delete, update

from gatepass.audit import AuditEntry, chain_after, read_journal
from gatepass.errors import AuditIntegrityError, SealedError
from gatepass.models import LeaseState, TaskState
from gatepass.store import audit_log
from gatepass.store import leases as lease_rows
from gatepass.store import tasks as task_rows
from gatepass.store.tables import audit_checkpoints, audit_events, audit_head
from gatepass.store.tables import leases as leases_table
from gatepass.tokens import DPoPKey

from .brokers import Brokers, audit_cli, insert_forged, issue, seal_expected


class TestRollback:
    """A database restored from an older snapshot is detected and reconciled."""

    def test_issue11_restored_snapshot_seals_and_reconciles(
        self, brokers: Brokers, tmp_path: Path
    ) -> None:
        """Revocations lost with a snapshot stay revoked; reconcile re-applies them."""
        broker = brokers.start()
        issued = issue(broker, tasks=7, tokens_per_task=2)
        broker.run(broker.runtime.broker.audit.checkpoint)
        snapshot = tmp_path / "snapshot.db"
        broker.snapshot(snapshot)
        tokens = [token for item in issued for token in item["tokens"]]
        revoked = tokens[:10]
        for token in revoked:
            broker.revoke(token)
        closed = [item["task"] for item in issued[2:7]]
        for task in closed:
            broker.revoke(task["access_token"])
        assert not any(broker.introspect(token) for token in revoked)
        brokers.restore(snapshot)

        broker = brokers.start()
        seal_expected(broker, "behind the anchor journal")
        assert not any(broker.introspect(token) for token in revoked)
        assert not any(broker.introspect(task["access_token"]) for task in closed)
        with pytest.raises(SealedError, match="gatepass audit reconcile"):
            broker.access_token(issued[3]["key"], issued[3]["task"]["access_token"])
        with pytest.raises(SealedError):
            broker.open_task(DPoPKey.generate())

        summary = broker.run(broker.runtime.anchoring.reconcile, "admin:test")
        assert summary["reconciled"] is True
        assert summary["reapplied"]["tasks"] == 5
        # The tokens of the two tasks that stay open; closing the others ended theirs.
        assert summary["reapplied"]["leases"] == 4
        assert not broker.runtime.context.seal.sealed
        assert not any(broker.introspect(token) for token in revoked)
        with broker.runtime.database.reading() as conn:
            for task in closed:
                found = task_rows.get_task(conn, task["task_id"])
                assert found is not None
                assert found.state is TaskState.CLOSED
            states = {
                lease.state
                for item in issued[:5]
                for lease in lease_rows.list_leases(
                    conn, task_id=item["task"]["task_id"]
                )
            }
        assert states == {LeaseState.REVOKED}
        with pytest.raises(Exception, match="task is closed"):
            broker.access_token(issued[3]["key"], issued[3]["task"]["access_token"])
        fresh = broker.access_token(issued[0]["key"], issued[0]["task"]["access_token"])
        assert broker.introspect(fresh["access_token"])
        assert broker.runtime.anchoring.compare().agrees

        journal = read_journal(brokers.state / "audit-checkpoints.jsonl")
        assert len(journal.segments) == 2
        broker = brokers.start()
        assert not broker.runtime.context.seal.sealed

    def test_issue11_deleted_newest_records_and_checkpoints_seal(
        self, brokers: Brokers
    ) -> None:
        """Deleting the newest records and their checkpoints is seen at start."""
        broker = brokers.start()
        issue(broker, tasks=2, tokens_per_task=1)
        broker.run(broker.runtime.broker.audit.checkpoint)
        with broker.runtime.database.reading() as conn:
            keep, keep_hash = audit_log.read_audit_head(conn)
        item = issue(broker, tasks=1, tokens_per_task=1)[0]
        broker.revoke(item["task"]["access_token"])
        broker.run(broker.runtime.broker.audit.checkpoint)
        with broker.runtime.database.transaction() as conn:
            conn.execute(delete(audit_events).where(audit_events.c.seq > keep))
            conn.execute(
                delete(audit_checkpoints).where(audit_checkpoints.c.seq > keep)
            )
            conn.execute(update(audit_head).values(seq=keep, hash=keep_hash))
        broker = brokers.start()
        seal_expected(broker, "behind the anchor journal")
        journal = str(brokers.state / "audit-checkpoints.jsonl")
        result = audit_cli(broker, "verify", "--anchors", journal)
        assert result.exit_code == 65, result.output
        assert "behind the anchor journal" in result.stderr

    def test_issue11_rollback_under_a_running_broker_seals(
        self, brokers: Brokers
    ) -> None:
        """A failover that lost commits is found by the next checkpoint."""
        broker = brokers.start()
        issue(broker, tasks=1, tokens_per_task=1)
        broker.run(broker.runtime.broker.audit.checkpoint)
        with broker.runtime.database.reading() as conn:
            keep, keep_hash = audit_log.read_audit_head(conn)
        item = issue(broker, tasks=1, tokens_per_task=1)[0]
        broker.revoke(item["tokens"][0])
        broker.run(broker.runtime.broker.audit.checkpoint)
        with broker.runtime.database.transaction() as conn:
            conn.execute(delete(audit_events).where(audit_events.c.seq > keep))
            conn.execute(
                delete(audit_checkpoints).where(audit_checkpoints.c.seq > keep)
            )
            conn.execute(update(audit_head).values(seq=keep, hash=keep_hash))
            conn.execute(
                update(leases_table)
                .where(leases_table.c.task_id == item["task"]["task_id"])
                .values(state="active", revoked_at=None)
            )
        broker.run(broker.runtime.broker.audit.checkpoint)
        seal_expected(broker, "(found while running)")
        assert not broker.introspect(item["tokens"][0])

    def test_issue11_rewrite_from_a_point_seals(self, brokers: Brokers) -> None:
        """Rewriting from a seq, rehashing and dropping later checkpoints seals."""
        broker = brokers.start()
        issue(broker, tasks=2, tokens_per_task=1)
        broker.run(broker.runtime.broker.audit.checkpoint)
        with broker.runtime.database.reading() as conn:
            fork = audit_log.read_audit_head(conn)[0]
        item = issue(broker, tasks=1, tokens_per_task=1)[0]
        broker.revoke(item["task"]["access_token"])
        broker.run(broker.runtime.broker.audit.checkpoint)
        with broker.runtime.database.transaction() as conn:
            records = list(audit_log.iter_audit(conn, after=0))
            conn.execute(delete(audit_events).where(audit_events.c.seq > fork))
            conn.execute(
                delete(audit_checkpoints).where(audit_checkpoints.c.seq > fork)
            )
            previous = records[fork - 1]
            for record in records[fork:]:
                entry = AuditEntry(
                    at=record.at,
                    kind=record.kind,
                    outcome=record.outcome,
                    actor=record.actor,
                    subject=record.subject,
                    data={**record.data, "rewritten": True},
                )
                previous = insert_forged(
                    conn, chain_after(previous.seq, previous.hash, entry)
                )
            conn.execute(
                update(audit_head).values(seq=previous.seq, hash=previous.hash)
            )
        broker = brokers.start()
        seal_expected(broker, "chain rewritten")
        journal = str(brokers.state / "audit-checkpoints.jsonl")
        result = audit_cli(broker, "verify", "--anchors", journal)
        assert result.exit_code == 65, result.output
        # The rewritten records carry no MAC: the broker refuses the checkpoint
        # that verify asks for, naming the first of them.
        assert f"record seq {fork + 1} has no mac: record forged" in result.stderr


class TestForgedRecord:
    """A correctly hashed record without the broker's MAC is never checkpointed."""

    def test_issue11_forged_record_after_the_last_checkpoint_is_refused(
        self, brokers: Brokers
    ) -> None:
        """The checkpoint is refused naming the seq, with the alarm raised."""
        broker = brokers.start()
        broker.run(broker.runtime.broker.audit.checkpoint)
        with broker.runtime.database.transaction() as conn:
            seq, head = audit_log.read_audit_head(conn)
            entry = AuditEntry(
                at=broker.clock.now(),
                kind="credential.issue",
                outcome="allow",
                actor="agt_forged",
                data={"target": "tickets"},
            )
            forged = insert_forged(conn, chain_after(seq, head, entry))
            conn.execute(update(audit_head).values(seq=forged.seq, hash=forged.hash))
        with pytest.raises(
            AuditIntegrityError, match=f"^record seq {forged.seq} has no mac"
        ):
            broker.run(broker.runtime.anchoring.checkpoint_now)
        assert broker.runtime.context.seal.unready() == (
            "audit_integrity",
            f"record seq {forged.seq} has no mac: record forged",
        )
        with broker.runtime.database.reading() as conn:
            assert audit_log.get_checkpoint(conn, forged.seq) is None
            kinds = [r.kind for r in audit_log.last_audit(conn, 2)]
        assert kinds == ["credential.issue", "audit.integrity"]

    def test_issue11_forged_record_is_found_at_start(self, brokers: Brokers) -> None:
        """A record forged while the broker was down raises the alarm at start."""
        broker = brokers.start()
        broker.run(broker.runtime.broker.audit.checkpoint)
        brokers.stop()
        with broker.runtime.database.transaction() as conn:
            seq, head = audit_log.read_audit_head(conn)
            entry = AuditEntry(
                at=broker.clock.now(), kind="agent.add", outcome="ok", actor="system"
            )
            forged = chain_after(seq, head, entry)
            insert_forged(conn, dataclasses.replace(forged, mac="0" * 64))
            conn.execute(update(audit_head).values(seq=forged.seq, hash=forged.hash))
        broker.runtime.database.dispose()
        broker = brokers.start()
        assert broker.runtime.context.seal.alarm == (
            f"record seq {forged.seq} mac does not verify: record forged"
        )
