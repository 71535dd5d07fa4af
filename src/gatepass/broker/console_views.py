"""
What the web console reads and does, scoped to the signed-in operator's tenants.

The admin API answers to service tokens that see every tenant; the console answers
to named operators, so every read here is limited to the tenants the operator holds
(``*``: all), and every action first checks that the task, lease or agent is of one
of them. A record of another tenant is "not found", never "forbidden", so an
operator cannot learn that it exists.

The audit log is not tagged by tenant: an operator of every tenant explores all of
it; an operator of some tenants explores the records of one of their agents or
tasks (the explorer asks for that filter). The chart counts leases issued and
revoked per minute (from the leases, by tenant) and denials (audit records whose
actor is an agent of the tenants).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from gatepass.audit import verify_log
from gatepass.broker.agents import Agents
from gatepass.broker.approval_votes import ApprovalVotes, Viewer
from gatepass.broker.audit_log import AuditFilter, AuditLog
from gatepass.broker.callers import Caller, Permission
from gatepass.broker.closing import Closing
from gatepass.broker.context import BrokerContext
from gatepass.errors import AccessDeniedError, GatepassError, NotFoundError
from gatepass.models import Agent, Lease, Operator, Task
from gatepass.store import Connection, audit_log, console_views
from gatepass.store import agents as agent_rows
from gatepass.store import leases as lease_rows
from gatepass.store import tasks as task_rows

__all__ = [
    "ChartSeries",
    "ConsoleViews",
    "LeaseFilter",
    "Overview",
    "TaskFilter",
    "TaskPage",
    "tenants_of",
]

_CHART_MINUTES = 60


def tenants_of(operator: Operator) -> list[str] | None:
    """Return the tenants an operator reads: None for every tenant (``*``)."""
    if "*" in operator.tenants:
        return None
    return sorted(operator.tenants)


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskFilter:
    """The tasks list's filters (every one given must hold)."""

    agent_id: str | None = None
    tenant: str | None = None
    state: str | None = None
    purpose: str | None = None
    before: tuple[dt.datetime, str] | None = None
    limit: int = 50


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaseFilter:
    """The leases list's filters (every one given must hold)."""

    target: str | None = None
    kind: str | None = None
    state: str | None = None
    task_id: str | None = None
    before: tuple[dt.datetime, str] | None = None
    limit: int = 50


@dataclass(frozen=True, slots=True, kw_only=True)
class ChartSeries:
    """Per-minute counts for the last hour, oldest minute first."""

    minutes: list[dt.datetime]
    issued: list[int]
    denied: list[int]
    revoked: list[int]


@dataclass(frozen=True, slots=True, kw_only=True)
class Overview:
    """The overview page's figures."""

    open_tasks: int
    live_leases: list[tuple[str, str, int]]
    pending_approvals: int
    retrying: list[Lease]
    policy: dict[str, Any]
    last_checkpoint: dict[str, Any] | None
    audit_head: int
    chart: ChartSeries


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskPage:
    """One task as its page shows it."""

    task: Task
    agent: Agent | None
    leases: list[Lease]
    tree: list[Task]
    timeline: list[dict[str, Any]]
    approvals: list[dict[str, Any]] = field(default_factory=list)


class ConsoleViews:
    """
    Tenant-scoped reads and actions for the console.

    Args:
        context: the broker's collaborators.
        audit: the audit log's use cases (checkpoints, pages).
        approvals: the approvals' use cases.
        closing: closing tasks and revoking leases.
        agents: the agent registry (disabling).
    """

    def __init__(
        self,
        context: BrokerContext,
        *,
        audit: AuditLog,
        approvals: ApprovalVotes,
        closing: Closing,
        agents: Agents,
    ) -> None:
        """Keep the collaborators."""
        self._context = context
        self._audit = audit
        self._approvals = approvals
        self._closing = closing
        self._agents = agents

    @staticmethod
    def viewer(caller: Caller) -> Viewer:
        """Return how the approvals use case sees this caller."""
        return Viewer(
            actor=caller.actor,
            operator=caller.operator,
            sees_all=caller.may(Permission.AUDIT),
        )

    async def tasks(self, operator: Operator, wanted: TaskFilter) -> list[Task]:
        """Return a page of tasks of the operator's tenants, newest first."""
        tenants = tenants_of(operator)
        return await self._context.database.read(
            lambda c: console_views.tasks_page(
                c,
                tenants=tenants,
                agent_id=wanted.agent_id,
                tenant=wanted.tenant,
                state=wanted.state,
                purpose=wanted.purpose,
                before=wanted.before,
                limit=wanted.limit,
            )
        )

    async def task(self, caller: Caller, task_id: str) -> TaskPage:
        """
        Return a task with its agent, leases, delegation tree and timeline.

        Raises:
            NotFoundError: no such task in the operator's tenants.
        """
        operator = _operator(caller)

        def read(c: Connection) -> TaskPage | None:
            task = task_rows.get_task(c, task_id)
            if task is None or not operator.may_act_on(task.tenant):
                return None
            # The whole delegation tree the task belongs to, from its root; a
            # task that delegated nothing and was not delegated has none.
            tree = task_rows.subtree(c, task.lineage_id or task.id)
            if len(tree) < 2:
                tree = []
            # Nothing about a task predates it: search only the records since.
            after = console_views.first_seq_since(c, task.created_at) - 1
            records, _ = audit_log.audit_page(
                c, limit=200, after=max(after, 0), newest=True, task=task.id
            )
            return TaskPage(
                task=task,
                agent=agent_rows.get_agent(c, task.agent_id),
                leases=lease_rows.list_leases(c, task_id=task.id, limit=500),
                tree=[t for t in tree if operator.may_act_on(t.tenant)],
                timeline=[record.to_json() for record in records],
            )

        page = await self._context.database.read(read)
        if page is None:
            raise NotFoundError("no such task")
        approvals = await self._approvals.list(
            self.viewer(caller), states=None, limit=500
        )
        page.approvals.extend(a for a in approvals if a["task_id"] == task_id)
        return page

    async def leases(self, operator: Operator, wanted: LeaseFilter) -> list[Lease]:
        """Return a page of leases of the operator's tenants, newest first."""
        tenants = tenants_of(operator)
        return await self._context.database.read(
            lambda c: console_views.leases_page(
                c,
                tenants=tenants,
                target=wanted.target,
                kind=wanted.kind,
                state=wanted.state,
                task_id=wanted.task_id,
                before=wanted.before,
                limit=wanted.limit,
            )
        )

    async def lease(self, operator: Operator, lease_id: str) -> tuple[Lease, Task]:
        """
        Return a lease and its task.

        Raises:
            NotFoundError: no such lease in the operator's tenants.
        """
        lease, task, _ = await self.lease_page(operator, lease_id)
        return lease, task

    async def lease_page(
        self, operator: Operator, lease_id: str
    ) -> tuple[Lease, Task, list[dict[str, Any]]]:
        """
        Return a lease, its task and the audit records about the lease.

        Raises:
            NotFoundError: no such lease in the operator's tenants.
        """

        def read(c: Connection) -> tuple[Lease, Task, list[dict[str, Any]]] | None:
            lease = lease_rows.get_lease(c, lease_id)
            task = None if lease is None else task_rows.get_task(c, lease.task_id)
            if lease is None or task is None or not operator.may_act_on(task.tenant):
                return None
            records = console_views.records_about(c, lease.id, since=lease.issued_at)
            return lease, task, [record.to_json() for record in records]

        found = await self._context.database.read(read)
        if found is None:
            raise NotFoundError("no such lease")
        return found

    async def agents(self, operator: Operator) -> list[Agent]:
        """Return the agents of the operator's tenants, by name."""
        tenants = tenants_of(operator)
        return await self._context.database.read(
            lambda c: console_views.agents_in(c, tenants=tenants)
        )

    async def agent(
        self, operator: Operator, agent_id: str
    ) -> tuple[Agent, list[Task]]:
        """
        Return an agent and its 20 most recent tasks.

        Raises:
            NotFoundError: no such agent in the operator's tenants.
        """
        agent = await self._scoped_agent(operator, agent_id)
        recent = await self.tasks(operator, TaskFilter(agent_id=agent.id, limit=20))
        return agent, recent

    async def _scoped_agent(self, operator: Operator, agent_id: str) -> Agent:
        agent = await self._context.database.read(
            lambda c: agent_rows.get_agent(c, agent_id)
        )
        if agent is None or not operator.may_act_on(agent.tenant):
            raise NotFoundError("no such agent")
        return agent

    async def scoped_agent_reference(self, operator: Operator, reference: str) -> Agent:
        """
        Return an agent named by id or name, if it is of the operator's tenants.

        Raises:
            NotFoundError: no such agent in their tenants.
        """
        agent = await self._context.database.read(
            lambda c: (
                agent_rows.get_agent(c, reference)
                or agent_rows.get_agent_by_name(c, reference)
            )
        )
        if agent is None or not operator.may_act_on(agent.tenant):
            raise NotFoundError("no such agent")
        return agent

    def policies(self) -> list[dict[str, Any]]:
        """Return the loaded policies: id, effect, file and line, annotations."""
        current = self._context.policies.current
        shown: list[dict[str, Any]] = []
        for info in getattr(current, "policies", ()):
            profile = info.profile
            annotations: dict[str, str] = {}
            if info.ttl is not None:
                annotations["ttl"] = str(int(info.ttl.total_seconds()))
            if profile.approval_groups:
                annotations["approval"] = ", ".join(sorted(profile.approval_groups))
                annotations["quorum"] = str(profile.quorum)
                if profile.approval_ttl is not None:
                    annotations["approval_ttl"] = str(
                        int(profile.approval_ttl.total_seconds())
                    )
                if profile.exclude_owners:
                    annotations["exclude_owners"] = "true"
                if profile.max_uses != 1:
                    annotations["max_uses"] = str(profile.max_uses)
            shown.append(
                {
                    "id": info.display_id,
                    "effect": info.effect,
                    "file": info.file,
                    "line": info.line,
                    "annotations": annotations,
                }
            )
        return shown

    async def approvals(
        self, caller: Caller, *, states: tuple[str, ...] | None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Return the approvals the operator may see, of their tenants."""
        operator = _operator(caller)
        found = await self._approvals.list(
            self.viewer(caller), states=states, limit=limit
        )
        return [a for a in found if operator.may_act_on(str(a["tenant"]))]

    async def approval(self, caller: Caller, approval_id: str) -> dict[str, Any]:
        """
        Return one approval of the operator's tenants.

        Raises:
            NotFoundError: no such approval that the operator may see.
        """
        shown = await self._approvals.show(self.viewer(caller), approval_id)
        if not _operator(caller).may_act_on(str(shown["tenant"])):
            raise NotFoundError("no such approval")
        return shown

    async def overview(self, caller: Caller) -> Overview:
        """Return the overview's figures for the operator's tenants."""
        operator = _operator(caller)
        tenants = tenants_of(operator)
        now = self._context.clock.now().replace(second=0, microsecond=0)
        since = now - dt.timedelta(minutes=_CHART_MINUTES - 1)

        def read(c: Connection) -> Overview:
            issued, revoked = console_views.lease_minutes(
                c, tenants=tenants, since=since
            )
            denied = console_views.deny_minutes(c, tenants=tenants, since=since)
            minutes = [since + dt.timedelta(minutes=i) for i in range(_CHART_MINUTES)]
            checkpoint = audit_log.last_checkpoint(c)
            head, _ = audit_log.read_audit_head(c)
            return Overview(
                open_tasks=console_views.open_task_count(c, tenants=tenants),
                live_leases=console_views.live_lease_counts(c, tenants=tenants),
                pending_approvals=0,
                retrying=console_views.retrying_revocations(c, tenants=tenants),
                policy={},
                last_checkpoint=None if checkpoint is None else checkpoint.to_json(),
                audit_head=head,
                chart=ChartSeries(
                    minutes=minutes,
                    issued=[issued[m] for m in minutes],
                    denied=[denied[m] for m in minutes],
                    revoked=[revoked[m] for m in minutes],
                ),
            )

        figures = await self._context.database.read(read)
        pending = 0
        if caller.may(Permission.AUDIT) or caller.may(Permission.APPROVE):
            pending = len(await self.approvals(caller, states=("pending",), limit=500))
        holder = self._context.policies
        policy = {
            "digest": holder.current.digest,
            "loaded_at": holder.loaded_at,
            "policy_count": holder.current.policy_count,
            "last_error": holder.last_error,
        }
        return Overview(
            open_tasks=figures.open_tasks,
            live_leases=figures.live_leases,
            pending_approvals=pending,
            retrying=figures.retrying,
            policy=policy,
            last_checkpoint=figures.last_checkpoint,
            audit_head=figures.audit_head,
            chart=figures.chart,
        )

    async def audit(
        self,
        operator: Operator,
        match: AuditFilter,
        *,
        before: int | None,
        until: dt.datetime | None,
        limit: int,
    ) -> tuple[list[dict[str, Any]], int, int]:
        """
        Return audit records newest first, the chain head and the last checkpoint.

        Raises:
            AccessDeniedError: an operator of some tenants gave no agent or task.
            NotFoundError: the agent or task is not of the operator's tenants.
        """
        await self.check_audit_scope(operator, match)
        outcome = None if match.outcome is None else match.outcome.value

        def read(c: Connection) -> tuple[list[dict[str, Any]], int, int]:
            records, head = console_views.audit_before(
                c,
                limit=limit,
                before=before,
                until=until,
                agent=match.agent,
                task=match.task,
                kind=match.kind,
                outcome=outcome,
                since=match.since,
            )
            checkpoint = audit_log.last_checkpoint(c)
            anchored = 0 if checkpoint is None else checkpoint.seq
            return [r.to_json() for r in records], head, anchored

        return await self._context.database.read(read)

    async def check_audit_scope(self, operator: Operator, match: AuditFilter) -> None:
        """
        Check that an operator may read the audit records a filter selects.

        Raises:
            AccessDeniedError: an operator of some tenants gave no agent or task.
            NotFoundError: the agent or task is not of the operator's tenants.
        """
        if tenants_of(operator) is None:
            return
        if match.agent is None and match.task is None:
            raise AccessDeniedError(
                "an operator of some tenants explores the audit of one agent or task"
            )
        if match.agent is not None:
            await self._scoped_agent(operator, match.agent)
        if match.task is not None:
            task = await self._context.database.read(
                lambda c: task_rows.get_task(c, str(match.task))
            )
            if task is None or not operator.may_act_on(task.tenant):
                raise NotFoundError("no such task")

    async def verify_chain(self) -> dict[str, Any]:
        """
        Anchor the head now, then verify the whole chain against the checkpoints.

        Returns:
            ``ok`` true with the figures, or ``ok`` false with the failure's
            message (which names the seq where the log stops being trustworthy).
        """
        started = self._context.clock.now()
        try:
            checkpoint = await self._audit.checkpoint_now()
            through = 0 if checkpoint is None else checkpoint.seq
            public = self._audit.public_key

            def verify(c: Connection) -> dict[str, Any]:
                checkpoints = audit_log.list_checkpoints(c, through=through)
                report = verify_log(
                    audit_log.iter_audit(c, through=through), checkpoints, public
                )
                return {
                    "ok": True,
                    "events": report.events,
                    "checkpoints": report.checkpoints,
                    "last_seq": report.last_seq,
                    "last_checkpoint_seq": report.last_checkpoint_seq,
                }

            result = await self._context.database.read(verify)
        except GatepassError as error:
            result = {"ok": False, "error": error.code, "detail": error.detail}
        result["at"] = started.isoformat()
        return result

    async def close_task(self, caller: Caller, task_id: str, reason: str) -> Task:
        """
        Close a task of the operator's tenants (audited under their name).

        Raises:
            NotFoundError: no such task in their tenants.
            ConflictError: it had ended.
        """
        operator = _operator(caller)
        task = await self._context.database.read(
            lambda c: task_rows.get_task(c, task_id)
        )
        if task is None or not operator.may_act_on(task.tenant):
            raise NotFoundError("no such task")
        return await self._closing.close_task(
            task_id, actor=caller.actor, reason=f"closed in the console: {reason}"
        )

    async def revoke_lease(self, caller: Caller, lease_id: str, reason: str) -> Lease:
        """
        Revoke a lease of the operator's tenants (audited under their name).

        Raises:
            NotFoundError: no such lease in their tenants.
            ConflictError: it is no longer live.
        """
        await self.lease(_operator(caller), lease_id)
        return await self._closing.revoke_lease(
            lease_id, actor=caller.actor, reason=f"revoked in the console: {reason}"
        )

    async def disable_agent(self, caller: Caller, agent_id: str) -> Agent:
        """
        Disable an agent of the operator's tenants, closing its tasks.

        Raises:
            NotFoundError: no such agent in their tenants.
            ConflictError: it is already disabled.
        """
        await self._scoped_agent(_operator(caller), agent_id)
        return await self._agents.disable(caller, agent_id)

    async def export_page(
        self, match: AuditFilter, *, after: int, limit: int = 1000
    ) -> tuple[list[dict[str, Any]], int]:
        """Return matching records after ``after``, oldest first, and the cursor."""
        return await self._audit.page(match, limit=limit, after=after)


def _operator(caller: Caller) -> Operator:
    if caller.operator is None:
        raise AccessDeniedError("the console is for named operators")
    return caller.operator
