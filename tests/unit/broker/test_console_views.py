"""The console's reads and actions, scoped to the operator's tenants (issue 13)."""

from __future__ import annotations

import dataclasses

import pytest

from gatepass.broker import AuditFilter, Caller, LeaseFilter, TaskFilter
from gatepass.errors import AccessDeniedError, NotFoundError
from gatepass.ids import OperatorId, new_task_id
from gatepass.models import ApiRole, LeaseState, Operator, OperatorRole, TaskState
from gatepass.store import tasks as task_rows
from gatepass.tokens import DPoPKey

from .conftest import START, Harness


def operator(
    name: str, *tenants: str, role: OperatorRole = OperatorRole.ADMIN
) -> Operator:
    """An operator as the console's session carries one."""
    return Operator(
        id=OperatorId(f"opr_{name}"),
        name=name,
        roles=frozenset({role}),
        tenants=frozenset(tenants),
        created_at=START,
    )


def caller(who: Operator) -> Caller:
    """The console caller of an operator."""
    return Caller.of("console:cs_test", ApiRole.OPERATOR, who)


ROOT = operator("root", "*")
ACME = operator("ann", "acme")
GLOBEX = operator("gina", "globex")


def task_with_lease(harness: Harness) -> str:
    """Open a task of tenant acme with one access token; return its id."""
    key = DPoPKey.generate("ES256")
    task_token = harness.open_task(key)["access_token"]
    harness.access_token(key, task_token)
    tasks = harness.run(harness.broker.reads.tasks)
    return str(tasks[0].id)


class TestScope:
    """Another tenant's records are not found, never forbidden."""

    def test_issue13_lists_hold_only_the_operators_tenants(
        self, harness: Harness
    ) -> None:
        """Acme's task and lease are listed for acme and every-tenant operators only."""
        task_id = task_with_lease(harness)
        views = harness.broker.console_views
        for who, seen in ((ROOT, True), (ACME, True), (GLOBEX, False)):
            tasks = harness.run(views.tasks, who, TaskFilter())
            leases = harness.run(views.leases, who, LeaseFilter())
            agents = harness.run(views.agents, who)
            assert ([t.id for t in tasks] == [task_id]) is seen
            assert (len(leases) == 1) is seen
            assert (len(agents) == 1) is seen

    def test_issue13_other_tenant_cannot_read_or_close(self, harness: Harness) -> None:
        """Globex's admin gets not-found for acme's task, lease and agent."""
        task_id = task_with_lease(harness)
        views = harness.broker.console_views
        page = harness.run(views.task, caller(ACME), task_id)
        lease_id = page.leases[0].id
        with pytest.raises(NotFoundError):
            harness.run(views.task, caller(GLOBEX), task_id)
        with pytest.raises(NotFoundError):
            harness.run(views.close_task, caller(GLOBEX), task_id, "no")
        with pytest.raises(NotFoundError):
            harness.run(views.revoke_lease, caller(GLOBEX), lease_id, "no")
        with pytest.raises(NotFoundError):
            harness.run(views.disable_agent, caller(GLOBEX), page.task.agent_id)
        assert (
            harness.run(views.task, caller(ROOT), task_id).task.state is TaskState.OPEN
        )

    def test_issue13_close_in_console_revokes_and_names_the_operator(
        self, harness: Harness
    ) -> None:
        """Closing revokes the task's leases; the audit names operator:<name>."""
        task_id = task_with_lease(harness)
        views = harness.broker.console_views
        closed = harness.run(views.close_task, caller(ACME), task_id, "incident 9")
        assert closed.state is TaskState.CLOSED
        page = harness.run(views.task, caller(ACME), task_id)
        assert [lease.state for lease in page.leases] == [LeaseState.REVOKED]
        closing = [e for e in page.timeline if e["kind"] == "task.close"]
        assert closing[-1]["actor"] == "operator:ann"
        assert "incident 9" in closing[-1]["data"]["reason"]

    def test_issue13_audit_of_some_tenants_needs_an_agent_or_task(
        self, harness: Harness
    ) -> None:
        """A tenant-scoped operator explores one agent's or task's records only."""
        task_id = task_with_lease(harness)
        views = harness.broker.console_views
        every = AuditFilter()
        with pytest.raises(AccessDeniedError):
            harness.run(views.check_audit_scope, ACME, every)
        harness.run(views.check_audit_scope, ACME, AuditFilter(task=task_id))
        with pytest.raises(NotFoundError):
            harness.run(views.check_audit_scope, GLOBEX, AuditFilter(task=task_id))
        records, head, _ = harness.run(
            views.audit, ROOT, every, before=None, until=None, limit=5
        )
        assert records[0]["seq"] == head
        assert [r["seq"] for r in records] == sorted(
            (r["seq"] for r in records), reverse=True
        )
        older, _, _ = harness.run(
            views.audit, ROOT, every, before=records[-1]["seq"], until=None, limit=5
        )
        assert all(r["seq"] < records[-1]["seq"] for r in older)


class TestTree:
    """A task page shows the delegation tree it belongs to."""

    def test_issue13_delegated_task_shows_its_tree(self, harness: Harness) -> None:
        """Parent and child both show the two-task tree; a lone task shows none."""
        task_id = task_with_lease(harness)
        views = harness.broker.console_views
        assert harness.run(views.task, caller(ACME), task_id).tree == []
        parent = harness.run(views.task, caller(ACME), task_id).task
        child = dataclasses.replace(
            parent,
            id=new_task_id(),
            token_jti="child-jti",
            parent_id=parent.id,
            lineage_id=parent.id,
            depth=1,
        )
        with harness.runtime.database.transaction() as conn:
            task_rows.insert_task(conn, child)
        for shown in (task_id, child.id):
            tree = harness.run(views.task, caller(ACME), shown).tree
            assert [(t.id, t.depth) for t in tree] == [(parent.id, 0), (child.id, 1)]


class TestOverview:
    """The overview's figures and the chain check."""

    def test_issue13_overview_counts_this_minute(self, harness: Harness) -> None:
        """One open task, one live lease, one issuance in the last bucket."""
        task_with_lease(harness)
        views = harness.broker.console_views
        figures = harness.run(views.overview, caller(ACME))
        assert figures.open_tasks == 1
        assert [(t, c) for t, _, c in figures.live_leases] == [("tickets", 1)]
        assert figures.chart.issued[-1] == 1
        assert sum(figures.chart.revoked) == 0
        assert len(figures.chart.minutes) == 60
        assert harness.run(views.overview, caller(GLOBEX)).open_tasks == 0

    def test_issue13_verify_chain_checks_every_record(self, harness: Harness) -> None:
        """Verify-now anchors the head and verifies the whole chain."""
        task_with_lease(harness)
        result = harness.run(harness.broker.console_views.verify_chain)
        assert result["ok"] is True
        assert result["events"] == result["last_seq"] > 0

    def test_issue13_verify_chain_reports_a_rewritten_record(
        self, harness: Harness
    ) -> None:
        """A record edited in the database fails verification, naming the seq."""
        task_with_lease(harness)
        views = harness.broker.console_views
        assert harness.run(views.verify_chain)["ok"] is True
        with harness.runtime.database.transaction() as conn:
            conn.exec_driver_sql(
                "UPDATE gp_audit_events SET actor = 'someone' WHERE seq = 2"
            )
        result = harness.run(views.verify_chain)
        assert result["ok"] is False
        assert result["error"] == "audit_integrity"
        assert "seq 2" in result["detail"]

    def test_issue13_policies_list_ids_and_annotations(self, harness: Harness) -> None:
        """Each loaded policy shows its @id, effect, file and annotations."""
        shown = harness.broker.console_views.policies()
        assert shown
        assert all(p["effect"] in {"permit", "forbid"} for p in shown)
        assert any(p["annotations"].get("ttl") for p in shown)
