"""Translate the broker's records into the facts policies decide on."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping

from gatepass.models import Agent, Target, Task
from gatepass.policy import (
    AgentFacts,
    DelegationFacts,
    PolicyRequest,
    TargetFacts,
    TaskFacts,
)

__all__ = [
    "agent_facts",
    "delegation_facts",
    "policy_requests",
    "target_facts",
    "task_facts",
    "task_facts_of",
    "task_requests",
]


def agent_facts(agent: Agent, labels: Mapping[str, str] | None = None) -> AgentFacts:
    """
    Return what policy knows of an agent.

    Args:
        agent: the agent record.
        labels: the labels its identity proved for this task (a federated agent's
            come from its token); None means the record's.
    """
    return AgentFacts(
        id=agent.id,
        name=agent.name,
        tenant=agent.tenant,
        labels=agent.labels if labels is None else labels,
        issuer=agent.issuer,
    )


def target_facts(target: Target) -> TargetFacts:
    """Return what policy knows of a target."""
    return TargetFacts(
        name=target.name,
        uri=target.uri,
        kind=target.kind,
        environment=target.environment,
        tenant=target.tenant,
        risk=target.risk,
    )


def task_facts(
    *, purpose: str, intent: str, environment: str, tenant: str, age: dt.timedelta
) -> TaskFacts:
    """Return what policy knows of a task of the given age."""
    return TaskFacts(
        purpose=purpose,
        intent=intent,
        environment=environment,
        tenant=tenant,
        age_seconds=max(0, int(age.total_seconds())),
    )


def task_facts_of(task: Task, now: dt.datetime) -> TaskFacts:
    """Return what policy knows of an open task at ``now``."""
    return task_facts(
        purpose=task.purpose,
        intent=task.intent,
        environment=task.environment,
        tenant=task.tenant,
        age=now - task.created_at,
    )


def delegation_facts(task: Task) -> DelegationFacts | None:
    """Return where a delegated task sits in its tree; None for a root task."""
    if task.depth == 0 or len(task.actors) < 2:
        return None
    return DelegationFacts(
        depth=task.depth,
        parent_agent=task.actors[1],
        root_agent=task.actors[-1],
        root_purpose=task.root_purpose or "",
        root_tenant=task.tenant,
    )


def policy_requests(
    agent: Agent,
    task: TaskFacts,
    checks: Iterable[tuple[str, Target]],
    now: dt.datetime,
    *,
    labels: Mapping[str, str] | None = None,
    delegation: DelegationFacts | None = None,
) -> list[PolicyRequest]:
    """
    Return one policy request per (action, target) to check for this agent and task.

    Args:
        agent: who asks.
        task: the task's facts.
        checks: the actions on targets to decide.
        now: the decision time.
        labels: the agent's labels for this task, when not the record's (see
            :func:`agent_facts`).
        delegation: where the task sits in a delegation tree, for a delegated one.
    """
    who = agent_facts(agent, labels)
    return [
        PolicyRequest(
            agent=who,
            action=action,
            target=target_facts(target),
            task=task,
            now=now,
            delegation=delegation,
        )
        for action, target in checks
    ]


def task_requests(
    agent: Agent,
    task: Task,
    checks: Iterable[tuple[str, Target]],
    now: dt.datetime,
) -> list[PolicyRequest]:
    """
    Return the policy requests of an open task: its facts, its agent's labels.

    Args:
        agent: the task's agent.
        task: the task (its labels are the ones its identity proved at open).
        checks: the actions on targets to decide.
        now: the decision time.
    """
    return policy_requests(
        agent,
        task_facts_of(task, now),
        checks,
        now,
        labels=task.agent_labels,
        delegation=delegation_facts(task),
    )
