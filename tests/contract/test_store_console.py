"""The console's store functions, the same on SQLite and PostgreSQL (issue 13)."""

from __future__ import annotations

import datetime as dt
import secrets

from gatepass.audit import AuditEntry, Outcome
from gatepass.ids import AgentId, LeaseId, TaskId, new_lease_id, new_task_id
from gatepass.models import Lease, LeaseState, Task, TaskState
from gatepass.store import Database, audit_log, console_sessions, console_views
from gatepass.store import leases as lease_rows
from gatepass.store import tasks as task_rows

T0 = dt.datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=dt.UTC)
AGENT = AgentId("agt_console")


def add_task(db: Database, tenant: str, minute: int) -> Task:
    """Record a task opened ``minute`` minutes after T0."""
    opened = T0 + dt.timedelta(minutes=minute)
    task = Task(
        id=new_task_id(),
        agent_id=AGENT,
        tenant=tenant,
        environment="dev",
        purpose="triage",
        intent="x",
        targets=("tickets",),
        jkt=secrets.token_hex(8),
        token_jti=secrets.token_hex(8),
        state=TaskState.OPEN,
        created_at=opened,
        expires_at=opened + dt.timedelta(hours=1),
    )
    with db.transaction() as conn:
        task_rows.insert_task(conn, task)
    return task


def add_lease(db: Database, task: Task, *, revoked: bool = False) -> LeaseId:
    """Record an access-token lease of ``task``."""
    lease_id = new_lease_id()
    with db.transaction() as conn:
        lease_rows.insert_lease(
            conn,
            Lease(
                id=lease_id,
                task_id=TaskId(task.id),
                agent_id=AGENT,
                target="tickets",
                kind="access_token",
                actions=("read",),
                handle=secrets.token_hex(8),
                state=LeaseState.REVOKED if revoked else LeaseState.ACTIVE,
                issued_at=task.created_at,
                expires_at=task.expires_at,
                revoked_at=task.created_at if revoked else None,
            ),
        )
    return lease_id


def add_records(db: Database, count: int) -> None:
    """Append ``count`` records, one a minute from T0, every third a deny."""
    with db.transaction() as conn:
        audit_log.ensure_audit_head(conn)
        for index in range(count):
            audit_log.append_audit(
                conn,
                AuditEntry(
                    at=T0 + dt.timedelta(minutes=index),
                    kind="credential.issue",
                    outcome=Outcome.DENY if index % 3 == 0 else Outcome.OK,
                    actor=AGENT,
                    subject=f"tsk_{index}",
                    data={},
                ),
            )


class TestSessions:
    """Links are spent once; sessions are found by hash until they end."""

    def test_issue13_link_is_spent_once(self, database: Database) -> None:
        """The first spend returns the operator; a second or unknown one does not."""
        with database.transaction() as conn:
            console_sessions.insert_link(
                conn,
                token_hash="h1",
                operator_id="opr_a",
                now=T0,
                expires_at=T0 + dt.timedelta(minutes=5),
            )
        with database.transaction() as conn:
            assert console_sessions.spend_link(conn, "h1", T0) == "opr_a"
            assert console_sessions.spend_link(conn, "h1", T0) is None
            assert console_sessions.spend_link(conn, "h2", T0) is None

    def test_issue13_session_lives_until_ended_or_expired(
        self, database: Database
    ) -> None:
        """A session is found by its hash until it is ended or past its expiry."""
        end = T0 + dt.timedelta(hours=1)
        with database.transaction() as conn:
            console_sessions.insert_session(
                conn,
                session_id="cs_1",
                token_hash="s1",
                operator_id="opr_a",
                method="link",
                now=T0,
                expires_at=end,
            )
        with database.transaction() as conn:
            found = console_sessions.find_session(conn, "s1", T0)
            assert found is not None
            assert found.operator_id == "opr_a"
            assert console_sessions.find_session(conn, "s1", end) is None
            assert console_sessions.end_operator_sessions(conn, "opr_a", T0) == 1
            assert console_sessions.find_session(conn, "s1", T0) is None
            assert console_sessions.forget_expired(conn, end) == 1


class TestViews:
    """Tenant scope, keyset pages and the chart's counts."""

    def test_issue13_tasks_and_leases_by_tenant_and_keyset(
        self, database: Database
    ) -> None:
        """Pages follow each other without overlap; other tenants never appear."""
        acme = [add_task(database, "acme", minute) for minute in range(5)]
        globex = add_task(database, "globex", 9)
        for task in acme:
            add_lease(database, task)
        add_lease(database, globex)
        with database.transaction() as conn:
            first = console_views.tasks_page(conn, tenants=["acme"], limit=3)
            rest = console_views.tasks_page(
                conn,
                tenants=["acme"],
                before=(first[-1].created_at, first[-1].id),
                limit=3,
            )
            every = console_views.tasks_page(conn, tenants=None, limit=10)
            leases = console_views.leases_page(conn, tenants=["acme"], limit=10)
            counts = console_views.live_lease_counts(conn, tenants=["globex"])
            assert console_views.open_task_count(conn, tenants=["acme"]) == 5
        assert [t.id for t in first + rest] == [t.id for t in reversed(acme)]
        assert every[0].id == globex.id
        assert len(leases) == 5
        assert counts == [("tickets", "access_token", 1)]

    def test_issue13_audit_pages_and_minutes(self, database: Database) -> None:
        """Newest first below a seq; the first seq since a time; denials per minute."""
        add_records(database, 30)
        with database.transaction() as conn:
            records, head = console_views.audit_before(conn, limit=10, before=21)
            assert head == 30
            assert [r.seq for r in records] == list(range(20, 10, -1))
            since = T0 + dt.timedelta(minutes=12)
            assert console_views.first_seq_since(conn, since) == 13
            assert console_views.first_seq_since(conn, T0 + dt.timedelta(days=1)) == 31
            denied = console_views.deny_minutes(conn, tenants=None, since=since)
            assert sum(denied.values()) == len([i for i in range(12, 30) if i % 3 == 0])
            about = console_views.records_about(conn, "tsk_5", since=T0)
            assert [r.seq for r in about] == [6]
