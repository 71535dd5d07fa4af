"""
What a policy decides about, what it answers, and the engine's contract.

The broker describes each question as a :class:`PolicyRequest` built from plain
facts (no store objects), and a :class:`PolicyEngine` answers with one
:class:`Decision` per request, in order.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from gatepass.policy.profiles import NO_PROFILE, IssuanceProfile

__all__ = [
    "DELEGATE",
    "OPEN_TASK",
    "AgentFacts",
    "Decision",
    "DelegationFacts",
    "DelegationRequest",
    "PolicyEngine",
    "PolicyRequest",
    "TargetFacts",
    "TaskFacts",
]

OPEN_TASK = "OpenTask"
"""The action evaluated once per target when an agent opens a task."""
DELEGATE = "Delegate"
"""The action evaluated when an agent delegates part of its task to another agent."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentFacts:
    """
    The principal: a registered agent, as policies see it.

    Attributes:
        id: the agent id, the Cedar entity id of ``Gatepass::Agent``.
        name: the agent's human label.
        tenant: the tenant the agent belongs to.
        labels: free key/value labels; Cedar sees them as entity tags.
        issuer: for a federated agent, its issuer (``principal.issuer``, an
            optional attribute); None for an agent with a registered key.
        risk: the agent's risk level from context signals (``principal.risk``:
            ``low``, ``medium`` or ``high``; docs/signals.md). Cedar sees it only
            when the schema declares ``risk: String`` on ``Agent``.
    """

    id: str
    name: str
    tenant: str
    labels: Mapping[str, str]
    issuer: str | None = None
    risk: str = "low"


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetFacts:
    """
    The resource: a configured target, as policies see it.

    Attributes:
        name: the target name, the Cedar entity id of ``Gatepass::Target``.
        uri: the resource indicator (RFC 8707).
        kind: the engine kind (``http``, ``postgres``...).
        environment: ``dev``, ``staging``, ``prod``...
        tenant: the tenant that owns the target.
        risk: ``low``, ``medium`` or ``high``.
    """

    name: str
    uri: str
    kind: str
    environment: str
    tenant: str
    risk: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskFacts:
    """
    The task the request belongs to, passed to Cedar as ``context.task``.

    Attributes:
        purpose: a short purpose label (``support-triage``).
        intent: free text describing the work.
        environment: the environment the task works in.
        tenant: the tenant the task works for.
        age_seconds: whole seconds since the task was opened (0 when opening it).
    """

    purpose: str
    intent: str
    environment: str
    tenant: str
    age_seconds: int


@dataclass(frozen=True, slots=True, kw_only=True)
class DelegationFacts:
    """
    Where a task sits in a delegation chain, as the broker verified it.

    Policies see it as ``context.delegation`` (an optional attribute: only tasks
    received by delegation have it; test with ``context has delegation``).

    Attributes:
        depth: 1 for a task delegated from a root task, 2 below that...
        parent_agent: the id of the agent that delegated the task.
        root_agent: the id of the agent whose own task is the root of the tree.
        root_purpose: the purpose of the root task.
        root_tenant: the tenant of the root task (never changes down a chain).
    """

    depth: int
    parent_agent: str
    root_agent: str
    root_purpose: str
    root_tenant: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyRequest:
    """
    One question: may ``agent`` do ``action`` on ``target`` in ``task`` at ``now``?

    Attributes:
        agent: the principal.
        action: ``OpenTask`` or a target action the schema declares (``read``).
        target: the resource.
        task: the task context.
        now: the moment of the request, aware; policies see it in UTC as
            ``context.time``.
        delegation: where the task sits in a delegation tree, for a delegated one.
        environment_frozen: a context signal froze the task's (or the target's)
            environment (``context.environment_frozen``; docs/signals.md).
        tenant_incident: an incident is declared for the task's (or the target's)
            tenant (``context.tenant_incident``). Cedar sees both only when the
            schema's context declares them (``environment_frozen: Bool``).
    """

    agent: AgentFacts
    action: str
    target: TargetFacts
    task: TaskFacts
    now: dt.datetime
    delegation: DelegationFacts | None = None
    environment_frozen: bool = False
    tenant_incident: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class DelegationRequest:
    """
    May ``parent`` hand ``child`` a sub-task of its task?

    Cedar sees principal = the parent ``Gatepass::Agent``, action ``Delegate``,
    resource = the child ``Gatepass::Agent``, and the context
    ``{task, time, delegation, subtask: {targets, actions, ttl_seconds, purpose}}``
    where ``task`` is the parent's task and ``delegation`` where the child would sit.

    Attributes:
        parent: the delegating agent.
        child: the agent the sub-task is for.
        task: the parent's task.
        targets: the sub-task's target names.
        actions: the sub-task's actions.
        purpose: the sub-task's purpose.
        ttl_seconds: the sub-task's longest life.
        delegation: the chain the child would be at (depth = the parent's + 1).
        now: the moment of the request, aware.
    """

    parent: AgentFacts
    child: AgentFacts
    task: TaskFacts
    targets: tuple[str, ...]
    actions: tuple[str, ...]
    purpose: str
    ttl_seconds: int
    delegation: DelegationFacts
    now: dt.datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """
    The answer to one :class:`PolicyRequest`.

    Attributes:
        allowed: True only when some permit applies, no forbid applies, and
            nothing went wrong while evaluating.
        policy_ids: the ``@id`` of each deciding policy (the permits of an allow,
            the forbids of a deny; empty for a default deny), or ``<file>:<index>``
            for a policy without ``@id``; in the order the policies were loaded.
        errors: evaluation errors; any error makes the decision a deny. Errors
            naming a policy come in load order too.
        profile: the strictest issuance profile of the permits that allowed the
            request; its ``ttl`` (``ttl_cap``) is the smallest ``@ttl`` among
            them. The default profile when denied.
    """

    allowed: bool
    policy_ids: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()
    profile: IssuanceProfile = NO_PROFILE

    @property
    def ttl_cap(self) -> dt.timedelta | None:
        """The smallest ``@ttl`` of the allowing permits (the profile's TTL)."""
        return self.profile.ttl


class PolicyEngine(Protocol):
    """
    Decides policy requests; implemented by ``CedarPolicySet``.

    Attributes:
        digest: a stable hash of the policy sources, for audit records.
        policy_count: how many policies the set holds.
    """

    @property
    def digest(self) -> str:
        """A stable hash of the policy sources, for audit records."""
        ...

    @property
    def policy_count(self) -> int:
        """How many policies the set holds."""
        ...

    def decide(self, requests: Sequence[PolicyRequest]) -> list[Decision]:
        """
        Decide each request; never raises for a bad request, it denies it.

        Args:
            requests: the questions, in order.

        Returns:
            One decision per request, in the same order.
        """
        ...

    def decide_delegation(self, request: DelegationRequest) -> Decision:
        """
        Decide a delegation; a schema without the ``Delegate`` action denies it.

        Never raises for a bad request: it denies it.
        """
        ...
