"""StoreContract: the same behaviour on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from typing import Any

import anyio
import pytest
from sqlalchemy import inspect, select

from gatepass.audit import AuditEntry, AuditSigner, verify_log
from gatepass.clock import FrozenClock
from gatepass.errors import ConfigurationError, ConflictError
from gatepass.ids import new_agent_id, new_lease_id, new_task_id, new_token_id
from gatepass.models import Agent, AgentStatus, Lease, LeaseState, Task, TaskState
from gatepass.sealing import Sealer
from gatepass.single_use import SingleUse
from gatepass.store import (
    Database,
    SqlReplayCache,
    agents,
    audit_log,
    leases,
    replay,
    tasks,
)
from gatepass.store.tables import SCHEMA_VERSION, settings_kv

T0 = dt.datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=dt.UTC)


def make_agent(name: str = "agent-a", tenant: str = "acme") -> Agent:
    """Build an agent record."""
    return Agent(
        id=new_agent_id(),
        name=name,
        tenant=tenant,
        labels={"team": "support"},
        public_jwk={"kty": "OKP", "crv": "Ed25519", "x": "abc"},
        algorithm="EdDSA",
        created_at=T0,
    )


def make_task(agent: Agent, *, expires_in: int = 600) -> Task:
    """Build an open task record."""
    return Task(
        id=new_task_id(),
        agent_id=agent.id,
        tenant=agent.tenant,
        environment="dev",
        purpose="triage",
        intent="look at tickets",
        targets=("tickets",),
        jkt="jkt",
        token_jti=new_token_id(),
        created_at=T0,
        expires_at=T0 + dt.timedelta(seconds=expires_in),
    )


def make_lease(task: Task, *, expires_in: int = 300) -> Lease:
    """Build an active lease record."""
    return Lease(
        id=new_lease_id(),
        task_id=task.id,
        agent_id=task.agent_id,
        target="tickets",
        kind="access_token",
        actions=("read",),
        handle=new_token_id(),
        state=LeaseState.ACTIVE,
        issued_at=T0,
        expires_at=T0 + dt.timedelta(seconds=expires_in),
        policy_ids=("p1",),
    )


def entry(kind: str = "task.open", **data: object) -> AuditEntry:
    """Build an audit entry."""
    return AuditEntry(
        at=T0, kind=kind, outcome="ok", actor="system", subject="", data=dict(data)
    )


class TestAgents:
    """Agents persist with their labels and key, and names are unique."""

    def test_round_trip(self, database: Database) -> None:
        """An inserted agent reads back equal, with an aware UTC time."""
        agent = make_agent()
        with database.transaction() as conn:
            agents.insert_agent(conn, agent)
        with database.reading() as conn:
            found = agents.get_agent(conn, agent.id)
        assert found == agent
        assert found is not None
        assert found.created_at.tzinfo is dt.UTC

    def test_duplicate_name_conflicts(self, database: Database) -> None:
        """A second agent with the same name is refused with ConflictError."""
        with database.transaction() as conn:
            agents.insert_agent(conn, make_agent("same"))
        with pytest.raises(ConflictError), database.transaction() as conn:
            agents.insert_agent(conn, make_agent("same"))

    def test_disable_changes_once(self, database: Database) -> None:
        """Disabling reports a change the first time only."""
        agent = make_agent()
        with database.transaction() as conn:
            agents.insert_agent(conn, agent)
            assert agents.set_agent_status(conn, agent.id, AgentStatus.DISABLED, T0)
            assert not agents.set_agent_status(conn, agent.id, AgentStatus.DISABLED, T0)
            assert agents.list_agents(conn, status="disabled")[0].id == agent.id


class TestTasksAndLeases:
    """Tasks gate leases; closing a task revokes its leases."""

    def test_lease_recorded_only_for_open_task(self, database: Database) -> None:
        """A lease is recorded only while its task is open and before its deadline."""
        task = make_task(make_agent())
        with database.transaction() as conn:
            tasks.insert_task(conn, task)
            assert leases.insert_lease_if_task_open(conn, make_lease(task), T0)
            late = task.expires_at
            assert not leases.insert_lease_if_task_open(conn, make_lease(task), late)
            tasks.close_task(conn, task.id, now=T0, reason="done")
            assert not leases.insert_lease_if_task_open(conn, make_lease(task), T0)
            assert len(leases.list_leases(conn, task_id=task.id)) == 1

    def test_close_revokes_live_leases(self, database: Database) -> None:
        """Closing a task revokes each live lease exactly once."""
        task = make_task(make_agent())
        first, second = make_lease(task), make_lease(task)
        with database.transaction() as conn:
            tasks.insert_task(conn, task)
            leases.insert_lease(conn, first)
            leases.insert_lease(conn, second)
        with database.transaction() as conn:
            assert tasks.close_task(conn, task.id, now=T0, reason="done")
            revoked = leases.revoke_task_leases(conn, task.id, T0)
        assert sorted(revoked) == sorted([first.id, second.id])
        with database.transaction() as conn:
            assert not tasks.close_task(conn, task.id, now=T0, reason="again")
            assert leases.revoke_task_leases(conn, task.id, T0) == []
            found = leases.get_lease_by_handle(conn, first.handle)
        assert found is not None
        assert found.state is LeaseState.REVOKED
        assert found.revoked_at == T0

    def test_revoked_since_reads_revoked_access_tokens_in_order(
        self, database: Database
    ) -> None:
        """The revocation feed's read: revoked access tokens after a time, in order."""
        task = make_task(make_agent())
        early, late, live = make_lease(task), make_lease(task), make_lease(task)
        engine = dataclasses.replace(make_lease(task), kind="postgres")
        t1, t2 = T0 + dt.timedelta(seconds=1), T0 + dt.timedelta(seconds=2)
        with database.transaction() as conn:
            tasks.insert_task(conn, task)
            for lease in (early, late, live, engine):
                leases.insert_lease(conn, lease)
            assert leases.revoke_lease(conn, late.id, t2)
            assert leases.revoke_lease(conn, early.id, t1)
            assert leases.revoke_lease(conn, engine.id, t1)
        with database.reading() as conn:
            everything = leases.revoked_since(conn, T0)
            after_first = leases.revoked_since(conn, t1)
            one = leases.revoked_since(conn, T0, limit=1)
        assert [lease.id for lease in everything] == [early.id, late.id]
        assert [lease.id for lease in after_first] == [late.id]
        assert [lease.id for lease in one] == [early.id]

    def test_sweep_expires_overdue_only(self, database: Database) -> None:
        """Only tasks and leases past their time are expired."""
        agent = make_agent()
        overdue, current = make_task(agent, expires_in=10), make_task(agent)
        old_lease = make_lease(current, expires_in=5)
        with database.transaction() as conn:
            tasks.insert_task(conn, overdue)
            tasks.insert_task(conn, current)
            leases.insert_lease(conn, old_lease)
        later = T0 + dt.timedelta(seconds=20)
        with database.transaction() as conn:
            assert tasks.expire_tasks(conn, later) == [overdue.id]
            assert leases.expire_leases(conn, later) == 1
            found = tasks.get_task(conn, current.id)
        assert found is not None
        assert found.state is TaskState.OPEN

    def test_failed_transaction_leaves_nothing(self, database: Database) -> None:
        """A transaction that raises commits none of its writes."""
        task = make_task(make_agent())
        msg = "boom"

        def fail_midway() -> None:
            with database.transaction() as conn:
                tasks.insert_task(conn, task)
                leases.insert_lease(conn, make_lease(task))
                raise RuntimeError(msg)

        with pytest.raises(RuntimeError, match=msg):
            fail_midway()
        with database.reading() as conn:
            assert tasks.get_task(conn, task.id) is None
            assert leases.list_leases(conn, task_id=task.id) == []


class TestAuditLog:
    """The chain is linear, verifiable and survives concurrent appends."""

    def test_appends_verify(self, database: Database) -> None:
        """Records appended and read back verify against a signed checkpoint."""
        sealer = Sealer([b"x" * 43 + b"="])
        signer, _ = AuditSigner.generate(sealer)
        with database.transaction() as conn:
            audit_log.ensure_audit_head(conn)
            for index in range(5):
                audit_log.append_audit(conn, entry(index=index, nested={"a": [1, 2]}))
            seq, head = audit_log.read_audit_head(conn)
            audit_log.insert_checkpoint(conn, signer.sign(seq, head, T0))
        with database.reading() as conn:
            records = list(audit_log.iter_audit(conn))
            checkpoints = audit_log.list_checkpoints(conn)
        report = verify_log(records, checkpoints, signer.public_jwk)
        assert report.events == 5
        assert report.last_checkpoint_seq == 5

    def test_concurrent_appends_stay_linear(self, database: Database) -> None:
        """Appends from many threads produce one contiguous, valid chain."""
        with database.transaction() as conn:
            audit_log.ensure_audit_head(conn)

        def append_many(worker: int) -> None:
            for index in range(10):
                with database.transaction() as conn:
                    audit_log.append_audit(conn, entry(worker=worker, index=index))

        threads = [threading.Thread(target=append_many, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        with database.reading() as conn:
            records = list(audit_log.iter_audit(conn))
        assert [r.seq for r in records] == list(range(1, 41))
        sealer = Sealer([b"y" * 43 + b"="])
        signer, _ = AuditSigner.generate(sealer)
        # Linearity is the point here, not anchoring: no checkpoint was signed.
        report = verify_log(records, [], signer.public_jwk, allow_unanchored=True)
        assert report.events == 40


class TestReplayCache:
    """Single-use values are refused the second time, across connections."""

    def test_second_use_is_replay(self, database: Database) -> None:
        """A value is new once, then a replay until it expires."""
        clock = FrozenClock(T0)
        cache = SqlReplayCache(database, clock=clock)
        expires = T0 + dt.timedelta(seconds=60)
        assert not cache.seen("dpop", "jti-1", expires)
        assert cache.seen("dpop", "jti-1", expires)
        clock.advance(61)
        assert not cache.seen("dpop", "jti-1", clock.now() + dt.timedelta(seconds=60))
        assert cache.sweep() == 0


class TestSingleUse:
    """Values spent inside a transaction: once, across connections and restarts."""

    def test_claimed_once_until_expiry(self, database: Database) -> None:
        """A claimed value is refused while live and claimable again once expired."""
        first = SingleUse("dpop", "jkt:jti-a", T0 + dt.timedelta(seconds=60))
        other = SingleUse("assertion", "agt:jti-b", T0 + dt.timedelta(seconds=60))
        with database.transaction() as conn:
            assert replay.claim_single_use(conn, [first, None], T0) is None
        with database.transaction() as conn:
            assert replay.claim_single_use(conn, [other, first], T0) == first
        with database.transaction() as conn:
            assert replay.claim_single_use(conn, [other], T0) == other
        later = T0 + dt.timedelta(seconds=61)
        renewed = SingleUse("dpop", "jkt:jti-a", later + dt.timedelta(seconds=60))
        with database.transaction() as conn:
            assert replay.claim_single_use(conn, [renewed], later) is None
            assert replay.forget_expired_values(conn, later) == 1

    def test_rolled_back_claim_is_not_spent(self, database: Database) -> None:
        """A claim whose transaction rolls back leaves the value unspent."""
        value = SingleUse("dpop", "jkt:jti-c", T0 + dt.timedelta(seconds=60))

        def claim_then_fail() -> None:
            with database.transaction() as conn:
                assert replay.claim_single_use(conn, [value], T0) is None
                raise ConflictError("roll back")

        with pytest.raises(ConflictError):
            claim_then_fail()
        with database.transaction() as conn:
            assert replay.claim_single_use(conn, [value], T0) is None

    def test_concurrent_claims_admit_one(self, database: Database) -> None:
        """Eight threads claiming one value at once: exactly one succeeds."""
        value = SingleUse("dpop", "jkt:jti-race", T0 + dt.timedelta(seconds=60))
        barrier = threading.Barrier(8)
        results: list[SingleUse | None] = []

        def claim() -> None:
            barrier.wait()
            with database.transaction() as conn:
                results.append(replay.claim_single_use(conn, [value], T0))

        threads = [threading.Thread(target=claim) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert results.count(None) == 1
        assert results.count(value) == 7


class TestSchema:
    """The schema is versioned."""

    def test_other_version_refused(self, database: Database) -> None:
        """A database with another schema version refuses to start."""
        with database.transaction() as conn:
            conn.execute(
                settings_kv.update()
                .where(settings_kv.c.name == "schema_version")
                .values(value=b"999")
            )
        with pytest.raises(ConfigurationError, match="999"):
            database.create_schema()
        with database.transaction() as conn:
            conn.execute(
                settings_kv.update()
                .where(settings_kv.c.name == "schema_version")
                .values(value=b"1")
            )

    def test_schema_3_is_upgraded_in_place(self, database: Database) -> None:
        """A version-3 database gets the agent issuer and the task columns at start."""
        agent = make_agent()
        task = make_task(agent)
        with database.transaction() as conn:
            agents.insert_agent(conn, agent)
            tasks.insert_task(conn, task)
        with database.transaction() as conn:
            _drop_schema_5(conn)
            for index in ("ix_gp_tasks_parent_id", "ix_gp_tasks_lineage_id"):
                conn.exec_driver_sql(f"DROP INDEX {index}")
            for column in (
                "agent_labels",
                "parent_id",
                "lineage_id",
                "depth",
                "actors",
                "x5t",
            ):
                conn.exec_driver_sql(f"ALTER TABLE gp_tasks DROP COLUMN {column}")
            conn.exec_driver_sql("ALTER TABLE gp_agents DROP COLUMN issuer")
            conn.execute(
                settings_kv.update()
                .where(settings_kv.c.name == "schema_version")
                .values(value=b"3")
            )
        database.create_schema()
        with database.reading() as conn:
            version = conn.execute(
                select(settings_kv.c.value).where(
                    settings_kv.c.name == "schema_version"
                )
            ).scalar_one()
            found = tasks.get_task(conn, task.id)
            stored = agents.get_agent(conn, agent.id)
        assert int(version) == SCHEMA_VERSION
        assert found is not None
        assert (found.depth, found.parent_id, found.actors) == (0, None, ())
        assert stored is not None
        assert stored.issuer is None

    def test_schema_4_is_upgraded_in_place(self, database: Database) -> None:
        """A version-4 database gets agents' owners and operator tokens at start."""
        agent = make_agent()
        with database.transaction() as conn:
            agents.insert_agent(conn, agent)
            _drop_schema_5(conn)
            conn.execute(
                settings_kv.update()
                .where(settings_kv.c.name == "schema_version")
                .values(value=b"4")
            )
        database.create_schema()
        with database.reading() as conn:
            version = conn.execute(
                select(settings_kv.c.value).where(
                    settings_kv.c.name == "schema_version"
                )
            ).scalar_one()
            stored = agents.get_agent(conn, agent.id)
            columns = {
                column["name"] for column in inspect(conn).get_columns("gp_api_tokens")
            }
        assert int(version) == SCHEMA_VERSION
        assert stored is not None
        assert stored.owners == ()
        assert {"operator_id", "revoked_at"} <= columns

    def test_schema_5_gets_its_time_indexes(self, database: Database) -> None:
        """A version-5 database gets the indexes on task, lease and audit times."""
        names = (
            "ix_gp_tasks_created_at",
            "ix_gp_leases_issued_at",
            "ix_gp_audit_events_at",
        )
        with database.transaction() as conn:
            for name in names:
                conn.exec_driver_sql(f"DROP INDEX {name}")
            conn.execute(
                settings_kv.update()
                .where(settings_kv.c.name == "schema_version")
                .values(value=b"5")
            )
        database.create_schema()
        with database.reading() as conn:
            found = {
                index["name"]
                for table in ("gp_tasks", "gp_leases", "gp_audit_events")
                for index in inspect(conn).get_indexes(table)
            }
            version = conn.execute(
                select(settings_kv.c.value).where(
                    settings_kv.c.name == "schema_version"
                )
            ).scalar_one()
        assert set(names) <= found
        assert int(version) == SCHEMA_VERSION == 6

    def test_async_write_runs_in_transaction(self, database: Database) -> None:
        """Database.write returns the work's result after committing it."""
        task = make_task(make_agent())

        async def main() -> str:
            def work(conn: object) -> str:
                tasks.insert_task(conn, task)  # type: ignore[arg-type]
                return task.id

            return await database.write(work)

        assert anyio.run(main) == task.id
        with database.reading() as conn:
            assert tasks.get_task(conn, task.id) is not None


def _drop_schema_5(conn: Any) -> None:
    """Make a database look like schema 4: no owners, no operator token columns."""
    conn.exec_driver_sql("DROP INDEX ix_gp_api_tokens_operator_id")
    conn.exec_driver_sql("ALTER TABLE gp_api_tokens DROP COLUMN operator_id")
    conn.exec_driver_sql("ALTER TABLE gp_api_tokens DROP COLUMN revoked_at")
    conn.exec_driver_sql("ALTER TABLE gp_agents DROP COLUMN owners")
    conn.exec_driver_sql("ALTER TABLE gp_tasks DROP COLUMN actions")
    conn.exec_driver_sql("ALTER TABLE gp_tasks DROP COLUMN root_purpose")
