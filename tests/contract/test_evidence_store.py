"""What evidence bundles and the framework report read, on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses

from gatepass.audit import AuditEntry
from gatepass.models import LeaseState
from gatepass.store import Database, agents, audit_log, leases, tasks

from .test_store import T0, make_agent, make_lease, make_task


def _entry(subject: str, **data: object) -> AuditEntry:
    return AuditEntry(
        at=T0, kind="x.y", outcome="ok", actor="agt_a", subject=subject, data=data
    )


class TestConcerning:
    """The records about a task tree: by subject, or by data.task_id."""

    def test_selects_by_subject_or_task_id(self, database: Database) -> None:
        """Subjects and data.task_id match; other tasks and later seqs do not."""
        with database.transaction() as conn:
            audit_log.ensure_audit_head(conn)
            for entry in (
                _entry("tsk_a"),
                _entry("tsk_b"),
                _entry("lse_a", target="t"),
                _entry("apr_x", task_id="tsk_a"),
                _entry("apr_y", task_id="tsk_b"),
                _entry("tsk_a"),
            ):
                audit_log.append_audit(conn, entry)
        with database.reading() as conn:
            found = audit_log.concerning(
                conn, subjects={"tsk_a", "lse_a"}, task_ids={"tsk_a"}, through=5
            )
            nothing = audit_log.concerning(
                conn, subjects=set(), task_ids=set(), through=9
            )
        assert [r.seq for r in found] == [1, 3, 4]
        assert nothing == []


class TestRevoking:
    """Revocations in progress, and those that failed."""

    def test_counts_revoking_and_failed(self, database: Database) -> None:
        """Only revoking leases count; failed ones have attempts."""
        agent = make_agent()
        task = make_task(agent)
        with database.transaction() as conn:
            agents.insert_agent(conn, agent)
            tasks.insert_task(conn, task)
            for state, failed in (
                (LeaseState.REVOKING, False),
                (LeaseState.REVOKING, True),
                (LeaseState.ACTIVE, False),
            ):
                lease = dataclasses.replace(make_lease(task), state=state)
                leases.insert_lease(conn, lease)
                if failed:
                    leases.record_revoke_failure(
                        conn, lease.id, error="target down", retry_at=T0
                    )
        with database.reading() as conn:
            assert leases.count_revoking(conn) == (2, 1)
