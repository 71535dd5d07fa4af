"""
A broker whose database goes back in time seals itself; reconcile brings it back.

Each test runs a real broker in-process on SQLite with a frozen clock, "restarts"
it by building a new runtime on the same state directory, and tampers with the
database the way an attacker with write access to it would.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import anyio
import pytest
from sqlalchemy import delete, select, update

from gatepass.audit import AuditEntry, AuditRecord, chain_after, read_journal
from gatepass.broker import Runtime, build_runtime
from gatepass.clock import FrozenClock
from gatepass.config import Settings
from gatepass.errors import AuditIntegrityError, SealedError
from gatepass.models import LeaseState, TaskState
from gatepass.store import audit_log
from gatepass.store import leases as lease_rows
from gatepass.store import tasks as task_rows
from gatepass.store.tables import audit_checkpoints, audit_events, audit_head
from gatepass.store.tables import leases as leases_table
from gatepass.tokens import DPoPKey, create_assertion, load_private_key

REPO = Path(__file__).resolve().parents[3]
ISSUER = "http://broker.test"
START = dt.datetime(2026, 6, 1, 10, 0, tzinfo=dt.UTC)  # a Monday, business hours
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"


@dataclasses.dataclass
class Broker:
    """One broker process: a runtime on a state directory, and a clock."""

    runtime: Runtime
    clock: FrozenClock
    state: Path

    def run(self, function: Any, *args: Any, **kwargs: Any) -> Any:
        """Run a broker coroutine to completion."""
        return anyio.run(lambda: function(*args, **kwargs))

    @property
    def identity(self) -> dict[str, Any]:
        """The demo agent's identity file."""
        data: dict[str, Any] = json.loads((self.state / "demo-agent.json").read_text())
        return data

    def _token(self, key: DPoPKey, form: dict[str, str]) -> dict[str, Any]:
        proof = key.proof("POST", f"{ISSUER}/token", now=self.clock.now())
        answer = self.run(
            self.runtime.broker.token, urlencode(form).encode(), dpop_proof=proof
        )
        body: dict[str, Any] = answer.body
        return body

    def open_task(self, key: DPoPKey) -> dict[str, Any]:
        """Open a task as the demo agent."""
        private_key, _, algorithm = load_private_key(self.identity["private_jwk"])
        assertion = create_assertion(
            private_key,
            algorithm=algorithm,
            agent_id=self.identity["agent_id"],
            audience=ISSUER,
            now=self.clock.now(),
        )
        details = {
            "type": "agent_task",
            "intent": "triage",
            "purpose": "support-triage",
            "environment": "dev",
            "targets": ["tickets"],
        }
        return self._token(
            key,
            {
                "grant_type": TOKEN_EXCHANGE,
                "subject_token": assertion,
                "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
                "requested_token_type": "urn:ietf:params:oauth:token-type:txn_token",
                "authorization_details": json.dumps([details]),
            },
        )

    def access_token(self, key: DPoPKey, task_token: str) -> dict[str, Any]:
        """Exchange a task token for a read token on the tickets target."""
        return self._token(
            key,
            {
                "grant_type": TOKEN_EXCHANGE,
                "subject_token": task_token,
                "subject_token_type": "urn:ietf:params:oauth:token-type:txn_token",
                "resource": "tickets",
                "scope": "read",
            },
        )

    def introspect(self, token: str) -> bool:
        """Return the ``active`` answer of RFC 7662 introspection."""
        answer = self.run(
            self.runtime.status.introspect, urlencode({"token": token}).encode()
        )
        return bool(answer.body["active"])

    def revoke(self, token: str) -> None:
        """Revoke a token (RFC 7009)."""
        self.run(self.runtime.status.revoke_token, urlencode({"token": token}).encode())

    @property
    def db_path(self) -> Path:
        """The SQLite file."""
        return self.state / "gatepass.db"

    def snapshot(self, to: Path) -> None:
        """Take a consistent copy of the database (SQLite online backup)."""
        source = sqlite3.connect(self.db_path)
        target = sqlite3.connect(to)
        try:
            source.backup(target)
        finally:
            target.close()
            source.close()


def _settings(state: Path) -> Settings:
    return Settings.model_validate(
        {
            "server": {"issuer": ISSUER, "state_dir": str(state)},
            "policy": {
                "directory": str(REPO / "examples" / "quickstart" / "policies"),
                "reload_interval_seconds": 0,
            },
            "targets": [
                {
                    "name": "tickets",
                    "uri": "https://tickets.test/",
                    "environment": "dev",
                    "tenant": "acme",
                    "actions": ["read", "write"],
                    "max_ttl_seconds": 600,
                }
            ],
            "demo": {"enabled": True, "tenant": "acme", "labels": {"team": "support"}},
        }
    )


class Brokers:
    """Start and restart brokers on one state directory; dispose them all."""

    def __init__(self, state: Path) -> None:
        """Remember the state directory."""
        self.state = state
        self.clock = FrozenClock(START)
        self._started: list[Runtime] = []

    def start(self) -> Broker:
        """Start a broker (a restart when one ran before)."""
        for runtime in self._started:
            runtime.database.dispose()
        self._started.clear()
        runtime = build_runtime(_settings(self.state), clock=self.clock)
        self._started.append(runtime)
        return Broker(runtime=runtime, clock=self.clock, state=self.state)

    def stop(self) -> None:
        """Stop every broker started."""
        for runtime in self._started:
            runtime.database.dispose()
        self._started.clear()

    def restore(self, snapshot: Path) -> None:
        """Put a database snapshot back in place of the live file (broker stopped)."""
        self.stop()
        for suffix in ("-wal", "-shm"):
            (self.state / f"gatepass.db{suffix}").unlink(missing_ok=True)
        shutil.copyfile(snapshot, self.state / "gatepass.db")


@pytest.fixture
def brokers(tmp_path: Path) -> Iterator[Brokers]:
    """A state directory to start brokers on."""
    found = Brokers(tmp_path / "state")
    try:
        yield found
    finally:
        found.stop()


def _issue(broker: Broker, tasks: int, tokens_per_task: int) -> list[dict[str, Any]]:
    issued = []
    for _ in range(tasks):
        key = DPoPKey.generate()
        task = broker.open_task(key)
        tokens = [
            broker.access_token(key, task["access_token"])["access_token"]
            for _ in range(tokens_per_task)
        ]
        issued.append({"key": key, "task": task, "tokens": tokens})
    return issued


def _seal_expected(broker: Broker, match: str) -> None:
    seal = broker.runtime.seal
    assert seal.sealed
    assert seal.reason is not None
    assert match in seal.reason
    assert broker.runtime.seal.unready() is not None


class TestRollback:
    """A database restored from an older snapshot is detected and reconciled."""

    def test_issue11_restored_snapshot_seals_and_reconciles(
        self, brokers: Brokers, tmp_path: Path
    ) -> None:
        """Revocations lost with a snapshot stay revoked; reconcile re-applies them."""
        broker = brokers.start()
        issued = _issue(broker, tasks=7, tokens_per_task=2)
        broker.run(broker.runtime.admin.checkpoint)
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
        _seal_expected(broker, "behind the anchor journal")
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
        assert not broker.runtime.seal.sealed
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
        assert not broker.runtime.seal.sealed

    def test_issue11_deleted_newest_records_and_checkpoints_seal(
        self, brokers: Brokers
    ) -> None:
        """Deleting the newest records and their checkpoints is seen at start."""
        broker = brokers.start()
        _issue(broker, tasks=2, tokens_per_task=1)
        broker.run(broker.runtime.admin.checkpoint)
        with broker.runtime.database.reading() as conn:
            keep, keep_hash = audit_log.read_audit_head(conn)
        item = _issue(broker, tasks=1, tokens_per_task=1)[0]
        broker.revoke(item["task"]["access_token"])
        broker.run(broker.runtime.admin.checkpoint)
        with broker.runtime.database.transaction() as conn:
            conn.execute(delete(audit_events).where(audit_events.c.seq > keep))
            conn.execute(
                delete(audit_checkpoints).where(audit_checkpoints.c.seq > keep)
            )
            conn.execute(update(audit_head).values(seq=keep, hash=keep_hash))
        broker = brokers.start()
        _seal_expected(broker, "behind the anchor journal")

    def test_issue11_rollback_under_a_running_broker_seals(
        self, brokers: Brokers
    ) -> None:
        """A failover that lost commits is found by the next checkpoint."""
        broker = brokers.start()
        _issue(broker, tasks=1, tokens_per_task=1)
        broker.run(broker.runtime.admin.checkpoint)
        with broker.runtime.database.reading() as conn:
            keep, keep_hash = audit_log.read_audit_head(conn)
        item = _issue(broker, tasks=1, tokens_per_task=1)[0]
        broker.revoke(item["tokens"][0])
        broker.run(broker.runtime.admin.checkpoint)
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
        broker.run(broker.runtime.admin.checkpoint)
        _seal_expected(broker, "(found while running)")
        assert not broker.introspect(item["tokens"][0])

    def test_issue11_rewrite_from_a_point_seals(self, brokers: Brokers) -> None:
        """Rewriting from a seq, rehashing and dropping later checkpoints seals."""
        broker = brokers.start()
        _issue(broker, tasks=2, tokens_per_task=1)
        broker.run(broker.runtime.admin.checkpoint)
        with broker.runtime.database.reading() as conn:
            fork = audit_log.read_audit_head(conn)[0]
        item = _issue(broker, tasks=1, tokens_per_task=1)[0]
        broker.revoke(item["task"]["access_token"])
        broker.run(broker.runtime.admin.checkpoint)
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
                previous = _insert_forged(
                    conn, chain_after(previous.seq, previous.hash, entry)
                )
            conn.execute(
                update(audit_head).values(seq=previous.seq, hash=previous.hash)
            )
        broker = brokers.start()
        _seal_expected(broker, "chain rewritten")


def _insert_forged(conn: Any, record: AuditRecord) -> AuditRecord:
    """Write a record as an attacker would: correct hash, no valid MAC."""
    values = record.to_json()
    values.update(at=record.at, data=dict(record.data), mac=record.mac)
    conn.execute(audit_events.insert().values(**values))
    return record


class TestForgedRecord:
    """A correctly hashed record without the broker's MAC is never checkpointed."""

    def test_issue11_forged_record_after_the_last_checkpoint_is_refused(
        self, brokers: Brokers
    ) -> None:
        """The checkpoint is refused naming the seq, with the alarm raised."""
        broker = brokers.start()
        broker.run(broker.runtime.admin.checkpoint)
        with broker.runtime.database.transaction() as conn:
            seq, head = audit_log.read_audit_head(conn)
            entry = AuditEntry(
                at=broker.clock.now(),
                kind="credential.issue",
                outcome="allow",
                actor="agt_forged",
                data={"target": "tickets"},
            )
            forged = _insert_forged(conn, chain_after(seq, head, entry))
            conn.execute(update(audit_head).values(seq=forged.seq, hash=forged.hash))
        with pytest.raises(
            AuditIntegrityError, match=f"^record seq {forged.seq} has no mac"
        ):
            broker.run(broker.runtime.anchoring.checkpoint_now)
        assert broker.runtime.seal.unready() == (
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
        broker.run(broker.runtime.admin.checkpoint)
        brokers.stop()
        with broker.runtime.database.transaction() as conn:
            seq, head = audit_log.read_audit_head(conn)
            entry = AuditEntry(
                at=broker.clock.now(), kind="agent.add", outcome="ok", actor="system"
            )
            forged = chain_after(seq, head, entry)
            _insert_forged(conn, dataclasses.replace(forged, mac="0" * 64))
            conn.execute(update(audit_head).values(seq=forged.seq, hash=forged.hash))
        broker.runtime.database.dispose()
        broker = brokers.start()
        assert broker.runtime.seal.alarm == (
            f"record seq {forged.seq} mac does not verify: record forged"
        )


class TestJournalFailure:
    """A broker that cannot write its journal stops issuing."""

    def test_unwritable_journal_seals_after_the_commit(self, brokers: Brokers) -> None:
        """The close commits, the journal write fails, and the broker seals."""
        broker = brokers.start()
        item = _issue(broker, tasks=1, tokens_per_task=1)[0]
        journal = brokers.state / "audit-checkpoints.jsonl"
        journal.unlink()
        journal.mkdir()
        broker.revoke(item["task"]["access_token"])
        _seal_expected(broker, "audit anchor journal failed")
        with broker.runtime.database.reading() as conn:
            task = task_rows.get_task(conn, item["task"]["task_id"])
        assert task is not None
        assert task.state is TaskState.CLOSED
        with pytest.raises(SealedError):
            broker.open_task(DPoPKey.generate())
        journal.rmdir()
        summary = broker.run(broker.runtime.anchoring.reconcile, "admin:test")
        assert summary["reconciled"] is True
        assert not broker.runtime.seal.sealed
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
        _issue(broker, tasks=1, tokens_per_task=1)
        broker.run(broker.runtime.admin.checkpoint)
        self._downgrade(broker)
        broker = brokers.start()
        with broker.runtime.database.reading() as conn:
            version = conn.exec_driver_sql(
                "SELECT value FROM gp_settings WHERE name = 'schema_version'"
            ).scalar_one()
            assert audit_log.first_unkeyed_seq(conn) is None
            assert audit_log.last_audit(conn, 1)[0].kind == "audit.migrate"
        assert bytes(version) == b"3"
        assert broker.runtime.seal.unready() is None
        assert broker.run(broker.runtime.anchoring.checkpoint_now) is not None

    def test_unkeyed_record_after_the_upgrade_is_not_keyed(
        self, brokers: Brokers
    ) -> None:
        """A record without a MAC written after the upgrade stays unvouched."""
        broker = brokers.start()
        broker.run(broker.runtime.admin.checkpoint)
        self._downgrade(broker)
        broker = brokers.start()
        with broker.runtime.database.transaction() as conn:
            seq, head = audit_log.read_audit_head(conn)
            entry = AuditEntry(
                at=broker.clock.now(), kind="agent.add", outcome="ok", actor="system"
            )
            forged = _insert_forged(conn, chain_after(seq, head, entry))
            conn.execute(update(audit_head).values(seq=forged.seq, hash=forged.hash))
        broker = brokers.start()
        assert (
            broker.runtime.seal.alarm
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
        item = _issue(broker, tasks=1, tokens_per_task=1)[0]
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
        _seal_expected(broker, "1 leases ended that the database shows live")
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
