"""
The live policy set: its status, reloading it, re-deciding what is live, what-ifs.

A reload that refuses (a syntax error, a schema violation, an annotation out of
range) leaves the old set live. A reload that changes the set re-runs the policy
over every open task and live lease (a context change, DESIGN.md): a task the new
set no longer allows is closed, a lease it no longer allows revoked.

:meth:`PolicyAdmin.explain` decides one request without issuing anything (``gatepass
policy explain``): it shows operators the deciding policy ids, which denials sent
to agents never name.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gatepass.audit import Outcome
from gatepass.broker.closing import Closing
from gatepass.broker.context import BrokerContext
from gatepass.broker.facts import (
    policy_requests,
    task_facts,
    task_requests,
)
from gatepass.broker.trail import Attempt
from gatepass.errors import ConflictError, InvalidRequestError, NotFoundError
from gatepass.ids import is_id
from gatepass.models import Agent, AgentStatus, Lease, Target, Task, TaskState
from gatepass.policy import OPEN_TASK
from gatepass.store import agents as agent_rows
from gatepass.store import leases as lease_rows
from gatepass.store import tasks as task_rows

__all__ = ["PolicyAdmin", "PolicyQuestion"]


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyQuestion:
    """
    A what-if: may this agent do this action on this target, in such a task?

    Attributes:
        agent: the agent's id or name.
        target: the target's name or URI.
        action: an action of the target, or ``OpenTask``.
        purpose: the task's purpose label.
        environment: the task's environment [default: the target's].
        tenant: the task's tenant [default: the agent's].
        intent: the task's free-text intent.
        at: the moment to decide at [default: now].
    """

    agent: str
    target: str
    action: str
    purpose: str = ""
    environment: str | None = None
    tenant: str | None = None
    intent: str = ""
    at: dt.datetime | None = None


def _time(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _notes(agent: Agent, target: Target, action: str, environment: str) -> list[str]:
    """Say what would refuse the request before policy is even asked."""
    notes: list[str] = []
    if agent.status is not AgentStatus.ACTIVE:
        notes.append(
            f"agent {agent.name} is {agent.status.value}: it cannot open tasks"
        )
    if action != OPEN_TASK and action not in target.actions:
        offered = ", ".join(target.actions)
        notes.append(f"target {target.name} offers {offered}, not {action}")
    if environment != target.environment:
        notes.append(
            f"target {target.name} is in environment {target.environment}: a task "
            f"in {environment} cannot name it"
        )
    return notes


class PolicyAdmin:
    """
    Status and reload of the live policy set.

    Args:
        context: the broker's collaborators.
        closing: closes tasks and revokes leases the new set no longer allows.
    """

    def __init__(self, context: BrokerContext, closing: Closing) -> None:
        """Keep the collaborators."""
        self._context = context
        self._closing = closing

    def status(self) -> dict[str, Any]:
        """Return what policy set is live."""
        holder = self._context.policies
        return {
            "loaded_at": holder.loaded_at.isoformat(),
            "policy_count": holder.current.policy_count,
            "digest": holder.current.digest,
            "last_error": holder.last_error,
        }

    async def explain(self, question: PolicyQuestion) -> dict[str, Any]:
        """
        Decide one request against the live set without issuing or recording it.

        Returns:
            ``decision`` (``allow`` or ``deny``), the deciding ``policy_ids``, the
            evaluation ``errors``, the ``ttl_seconds`` cap, the ``policy_digest``,
            the ``profile`` (the facts the policy saw) and ``notes`` (checks
            outside policy that would refuse the request anyway).

        Raises:
            NotFoundError: no such agent.
            InvalidTargetError: no such target.
        """
        context = self._context
        agent = await self._find_agent(question.agent)
        target = context.catalog.resolve(question.target)
        environment = question.environment or target.environment
        tenant = question.tenant or agent.tenant
        now = question.at or context.clock.now()
        facts = task_facts(
            purpose=question.purpose,
            intent=question.intent,
            environment=environment,
            tenant=tenant,
            age=dt.timedelta(0),
        )
        requests = policy_requests(agent, facts, [(question.action, target)], now)
        # With the context signals in force, as a real decision would see them.
        requests = context.signal_board.enrich(requests)
        # Straight to the policy set: a what-if is not a decision the broker made,
        # so it is neither counted in the decision metrics nor audited.
        policy_set = context.policies.current
        decision = policy_set.decide(requests)[0]
        return {
            "decision": "allow" if decision.allowed else "deny",
            "policy_ids": list(decision.policy_ids),
            "errors": list(decision.errors),
            "ttl_seconds": (
                None
                if decision.ttl_cap is None
                else int(decision.ttl_cap.total_seconds())
            ),
            "policy_digest": policy_set.digest,
            "profile": {
                "agent": {
                    "id": agent.id,
                    "name": agent.name,
                    "tenant": agent.tenant,
                    "labels": dict(agent.labels),
                    "status": agent.status.value,
                },
                "target": {
                    "name": target.name,
                    "uri": target.uri,
                    "kind": target.kind,
                    "environment": target.environment,
                    "tenant": target.tenant,
                    "risk": target.risk,
                },
                "action": question.action,
                "task": {
                    "purpose": facts.purpose,
                    "intent": facts.intent,
                    "environment": facts.environment,
                    "tenant": facts.tenant,
                },
                "at": _time(now),
            },
            "notes": _notes(agent, target, question.action, environment),
        }

    async def _find_agent(self, reference: str) -> Agent:
        if is_id(reference, "agt"):
            found = await self._context.directory.agent(reference)
        else:
            found = await self._context.database.read(
                lambda c: agent_rows.get_agent_by_name(c, reference)
            )
        if found is None:
            raise NotFoundError(f"no agent {reference[:64]!r}")
        return found

    async def reload(self, actor: str = "system") -> dict[str, Any]:
        """
        Reload policies from disk and re-evaluate what is live.

        Returns:
            The policy status plus ``revoked_leases`` and ``closed_tasks``.

        Raises:
            InvalidRequestError: the new set is broken (the old one stays live).
        """
        context = self._context
        result = context.policies.reload()
        status = self.status()
        attempt = Attempt(kind="policy.reload", actor=actor)
        if result.error is not None:
            context.metrics.policy_reloads.labels(outcome="error").inc()
            attempt.data["error"] = result.error
            await context.trail.record(attempt, Outcome.ERROR)
            raise InvalidRequestError(f"policy set refused: {result.error}")
        context.metrics.policy_reloads.labels(outcome="ok").inc()
        attempt.data.update(digest=result.digest, changed=result.changed)
        await context.trail.record(attempt, Outcome.OK)
        revoked, closed = await self.reevaluate(actor) if result.changed else ([], [])
        status.update(revoked_leases=revoked, closed_tasks=closed)
        return status

    async def reload_if_changed(self) -> None:
        """Reload when the files changed on disk (the background job's tick)."""
        if self._context.policies.changed_on_disk():
            await self.reload("system")

    async def reevaluate(
        self,
        actor: str,
        *,
        touches: Callable[[Task], bool] | None = None,
        because: str = "policy",
    ) -> tuple[list[str], list[str]]:
        """
        Re-run the policy over live leases and open tasks after a context change.

        Args:
            actor: who changed the context (the audit actor).
            touches: only the tasks (and their leases) this accepts; all when
                None (a context signal touches one agent, tenant or environment).
            because: what changed, for the records' reasons (``policy``, or
                ``context signal ...``).

        Returns:
            The revoked lease ids and the closed task ids.
        """
        context = self._context
        now = context.clock.now()
        live: list[Lease] = await context.database.read(lease_rows.live_leases)
        open_tasks = await context.database.read(
            lambda c: task_rows.list_tasks(c, state=TaskState.OPEN.value, limit=10_000)
        )
        if touches is not None:
            open_tasks = [task for task in open_tasks if touches(task)]
        closed = await self._recheck_tasks(open_tasks, actor, because, now)
        revoked = await self._recheck_leases(
            [lease for lease in live if lease.task_id not in closed],
            actor,
            because,
            now,
            touches,
        )
        return revoked, closed

    async def _recheck_tasks(
        self, open_tasks: list[Task], actor: str, because: str, now: dt.datetime
    ) -> list[str]:
        """Close the open tasks whose ``OpenTask`` the policy no longer allows."""
        context = self._context
        closed: list[str] = []
        for task in open_tasks:
            agent = await context.directory.agent(task.agent_id)
            targets = [context.catalog.get(name) for name in task.targets]
            if agent is None or any(t is None for t in targets):
                continue
            checks = [(OPEN_TASK, t) for t in targets if t is not None]
            requests = task_requests(agent, task, checks, now)
            if all(d.allowed for d in context.authority.decide(requests)):
                continue
            try:
                await self._closing.close_task(
                    task.id, actor=actor, reason=f"{because} no longer allows the task"
                )
            except (ConflictError, NotFoundError):
                continue
            closed.append(task.id)
        return closed

    async def _recheck_leases(
        self,
        live: list[Lease],
        actor: str,
        because: str,
        now: dt.datetime,
        touches: Callable[[Task], bool] | None,
    ) -> list[str]:
        """Revoke the live leases whose actions the policy no longer allows."""
        context = self._context
        revoked: list[str] = []
        for lease in live:
            lease_task = await context.directory.task(lease.task_id)
            agent = await context.directory.agent(lease.agent_id)
            target = context.catalog.get(lease.target)
            if lease_task is None or agent is None or target is None:
                continue
            if touches is not None and not touches(lease_task):
                continue
            checks = [(action, target) for action in lease.actions]
            decisions = context.authority.decide(
                task_requests(agent, lease_task, checks, now)
            )
            if all(d.allowed for d in decisions):
                continue
            try:
                await self._closing.revoke_lease(
                    lease.id,
                    actor=actor,
                    reason=f"{because} no longer allows the lease",
                )
            except (ConflictError, NotFoundError):
                continue
            revoked.append(lease.id)
        return revoked
