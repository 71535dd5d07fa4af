"""Translate the broker's records into the facts policies decide on."""

from __future__ import annotations

import datetime as dt

from gatepass.models import Agent, Target
from gatepass.policy import AgentFacts, TargetFacts, TaskFacts

__all__ = ["agent_facts", "target_facts", "task_facts"]


def agent_facts(agent: Agent) -> AgentFacts:
    """Return what policy knows of an agent."""
    return AgentFacts(
        id=agent.id, name=agent.name, tenant=agent.tenant, labels=agent.labels
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
