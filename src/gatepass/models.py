"""
The broker's records: agents, targets, tasks, leases and API tokens.

Plain frozen dataclasses shared by the store (which persists them), the parts the
broker composes, and the faces. They hold no secrets: tokens appear only as hashes.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, field
from typing import Any

from gatepass.ids import AgentId, ApprovalId, LeaseId, OperatorId, TaskId

__all__ = [
    "Agent",
    "AgentStatus",
    "ApiRole",
    "ApiToken",
    "Approval",
    "ApprovalState",
    "Lease",
    "LeaseState",
    "Operator",
    "OperatorRole",
    "Target",
    "Task",
    "TaskState",
    "Vote",
    "VoteChoice",
]


class ApiRole(enum.StrEnum):
    """
    What an API token may do.

    ``admin``: administer and read everything (never approve: votes come from
    named operators only). ``introspect``: RFC 7662 introspection (resource
    servers). ``proxy``: introspection, the revocation stream and submitting
    proxied-call audit records (the credential-injecting proxy). ``operator``: a
    named operator's own token, which may do what the operator's roles allow.
    """

    ADMIN = "admin"
    INTROSPECT = "introspect"
    PROXY = "proxy"
    OPERATOR = "operator"
    # An SSF receiver: manages its own streams over the audiences it was given.
    SSF_RECEIVER = "ssf_receiver"


class AgentStatus(enum.StrEnum):
    """Whether an agent may authenticate."""

    ACTIVE = "active"
    DISABLED = "disabled"


@dataclass(frozen=True, slots=True, kw_only=True)
class Agent:
    """
    A registered workload and the public key it proves itself with.

    Attributes:
        id: the agent id, also the ``iss``/``sub`` of its assertions.
        name: a human label, unique.
        tenant: the tenant the agent belongs to.
        labels: free key/value labels that policies may read.
        public_jwk: the agent's public key as a JWK (Ed25519 or P-256), never private.
        algorithm: the JWS algorithm pinned to that key (``ES256`` or ``EdDSA``).
        status: active or disabled.
        created_at: registration time.
        issuer: for a federated agent (no key of its own), the one issuer whose
            tokens prove it; None for an agent with a registered key.
        owners: names of the operators responsible for the agent; a policy can
            forbid them to approve its requests (``@exclude_owners``).
    """

    id: AgentId
    name: str
    tenant: str
    labels: dict[str, str] = field(default_factory=dict)
    public_jwk: dict[str, Any]
    algorithm: str
    status: AgentStatus = AgentStatus.ACTIVE
    created_at: dt.datetime
    issuer: str | None = None
    owners: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """
    A system agents may reach, from configuration.

    Attributes:
        name: short unique name used in policies (``Gatepass::Target::"<name>"``).
        uri: the resource indicator (RFC 8707); an access token's ``aud``.
        kind: the engine kind; ``http`` for DPoP-bound access tokens.
        environment: ``dev``, ``staging``, ``prod``...
        tenant: the tenant that owns the target.
        risk: ``low``, ``medium`` or ``high``; policies read it.
        actions: the actions (OAuth scope values) the target offers.
        max_ttl: the longest credential the target accepts.
    """

    name: str
    uri: str
    kind: str
    environment: str
    tenant: str
    risk: str
    actions: tuple[str, ...]
    max_ttl: dt.timedelta


class TaskState(enum.StrEnum):
    """A task's life: open, then closed (by the agent or an admin) or expired."""

    OPEN = "open"
    CLOSED = "closed"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True, kw_only=True)
class Task:
    """
    One unit of agent work; every credential belongs to exactly one task.

    Attributes:
        id: the task id, the ``txn`` claim of its tokens.
        agent_id: the agent that opened it.
        tenant: the tenant it works for.
        environment: the environment it works in.
        purpose: a short purpose label policies can match.
        intent: free text describing the work, for audit and policy.
        targets: the target names the task may touch.
        jkt: the JWK thumbprint of the task's DPoP key (RFC 9449 ``cnf.jkt``).
        token_jti: the ``jti`` of the task token.
        state: open, closed or expired.
        created_at: when it was opened.
        expires_at: its deadline.
        closed_at: when it was closed or swept, if it was.
        close_reason: why it ended.
        agent_labels: the agent's labels as its identity proved them when the task
            opened (a federated agent's come from its token); None means the agent
            record's labels.
        parent_id: the task this one was delegated from, if any.
        lineage_id: the root task of its delegation tree (None for a root).
        depth: 0 for a task an agent opened itself, +1 per delegation.
        actors: the verified actor chain of a delegated task, the current agent
            first and the root task's agent last (empty for a root task).
        x5t: the RFC 8705 thumbprint of the client certificate the task's tokens
            are bound to, when it was opened over mutual TLS.
        actions: the actions the task may be granted (a delegated task's are a
            subset of its parent's); None: whatever its targets offer.
        root_purpose: for a delegated task, the purpose of the root task of its
            tree (policies see it as ``context.delegation.root_purpose``).
    """

    id: TaskId
    agent_id: AgentId
    tenant: str
    environment: str
    purpose: str
    intent: str
    targets: tuple[str, ...]
    jkt: str
    token_jti: str
    state: TaskState = TaskState.OPEN
    created_at: dt.datetime
    expires_at: dt.datetime
    closed_at: dt.datetime | None = None
    close_reason: str | None = None
    agent_labels: dict[str, str] | None = None
    parent_id: TaskId | None = None
    lineage_id: TaskId | None = None
    depth: int = 0
    actors: tuple[str, ...] = ()
    actions: tuple[str, ...] | None = None
    root_purpose: str | None = None
    x5t: str | None = None


class LeaseState(enum.StrEnum):
    """
    A lease's life.

    ``pending`` is committed before a credential exists; ``active`` once it is handed
    over; ``revoking`` while a revocation is retried; ``revoked`` or ``expired`` at
    the end. A lease is never reported revoked while its revocation is pending.
    """

    PENDING = "pending"
    ACTIVE = "active"
    REVOKING = "revoking"
    REVOKED = "revoked"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True, kw_only=True)
class Lease:
    """
    The broker's record of one credential.

    Attributes:
        id: the lease id.
        task_id: the task it belongs to.
        agent_id: the agent that holds it.
        target: the target name.
        kind: the credential kind (``access_token``).
        actions: the actions it grants.
        handle: engine-owned handle; for access tokens the token's ``jti``.
        state: see :class:`LeaseState`.
        issued_at: when it was recorded.
        expires_at: when it stops working.
        revoked_at: when it was revoked, if it was.
        policy_ids: the policies that allowed it.
        attempts: failed revocation attempts so far (engine leases).
        last_error: why the last revocation attempt failed, if it did.
    """

    id: LeaseId
    task_id: TaskId
    agent_id: AgentId
    target: str
    kind: str
    actions: tuple[str, ...]
    handle: str
    state: LeaseState
    issued_at: dt.datetime
    expires_at: dt.datetime
    revoked_at: dt.datetime | None = None
    policy_ids: tuple[str, ...] = ()
    attempts: int = 0
    last_error: str | None = None


class OperatorRole(enum.StrEnum):
    """
    What a named human may do.

    ``admin``: everything the admin API offers. ``approver``: vote on approvals of
    the groups and tenants they hold. ``auditor``: read tasks, leases, approvals and
    the audit log.
    """

    ADMIN = "admin"
    APPROVER = "approver"
    AUDITOR = "auditor"


@dataclass(frozen=True, slots=True, kw_only=True)
class Operator:
    """
    A named human who administers gatepass or approves requests.

    Attributes:
        id: the operator id (``opr_…``).
        name: a unique login-like name; audit records name operators by it.
        roles: what they may do.
        groups: the approver groups they belong to (``prod-approvers``).
        tenants: the tenants they may act on; ``*`` means every tenant.
        status: active or disabled (a disabled operator's tokens stop working).
        created_at: when the operator was added.
    """

    id: OperatorId
    name: str
    roles: frozenset[OperatorRole]
    groups: frozenset[str] = frozenset()
    tenants: frozenset[str] = frozenset()
    status: AgentStatus = AgentStatus.ACTIVE
    created_at: dt.datetime

    def may_act_on(self, tenant: str) -> bool:
        """Tell whether the operator holds ``tenant`` (or every tenant)."""
        return "*" in self.tenants or tenant in self.tenants


class ApprovalState(enum.StrEnum):
    """
    The life of an approval.

    ``pending`` waits for votes; ``approved`` may be redeemed until ``redeem_by``;
    ``redeemed`` (every use spent), ``denied``, ``expired`` and ``cancelled`` (its
    task closed or its agent was disabled) are final.
    """

    PENDING = "pending"
    APPROVED = "approved"
    REDEEMED = "redeemed"
    DENIED = "denied"
    EXPIRED = "expired"
    CANCELLED = "cancelled"

    @property
    def final(self) -> bool:
        """True for a state nothing leaves."""
        return self not in {ApprovalState.PENDING, ApprovalState.APPROVED}


class VoteChoice(enum.StrEnum):
    """An approver's vote."""

    APPROVE = "approve"
    DENY = "deny"


@dataclass(frozen=True, slots=True, kw_only=True)
class Vote:
    """
    One operator's vote on one approval.

    Attributes:
        operator_id: who voted.
        operator_name: their name, as the audit records it.
        choice: approve or deny.
        reason: what they said (operator-supplied text).
        at: when.
    """

    operator_id: OperatorId
    operator_name: str
    choice: VoteChoice
    reason: str
    at: dt.datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class Approval:
    """
    A request for one credential that waits for (or got) human approval.

    The broker's canonical parameters of the request are copied here, so what an
    approver sees is what the hash binds; only ``justification`` came from the
    agent as free text.

    Attributes:
        id: the approval id (``apr_…``), what the agent polls with.
        state: see :class:`ApprovalState`.
        request_hash: SHA-256 of the canonical request (``gatepass.approvals``).
        request: the canonical request itself (agent, task, target, actions, TTL,
            policy digest, kind).
        agent_id: the requesting agent.
        task_id: the task it belongs to.
        tenant: the task's tenant (approvers must hold it).
        environment: the task's environment.
        target: the target name.
        kind: ``access_token`` or the engine kind.
        actions: the actions asked for.
        groups: approver groups that must each be satisfied.
        quorum: distinct approvals needed from each group.
        exclude_owners: the agent's owners may not approve.
        max_uses: how many credentials the approval may be redeemed for.
        uses: how many it has been redeemed for.
        ttl: the longest life of a credential it yields (the profile's TTL).
        policy_ids: the permits that asked for approval.
        justification: the agent's own words, inert text.
        created_at: when it was requested.
        expires_at: when it expires unless approved.
        approved_at: when the quorum was reached.
        redeem_by: the end of the redemption window (once approved).
        ended_at: when it reached a final state.
        end_reason: why it ended (denied, expired, cancelled), if it did.
        votes: the votes so far.
    """

    id: ApprovalId
    state: ApprovalState
    request_hash: str
    request: dict[str, Any]
    agent_id: AgentId
    task_id: TaskId
    tenant: str
    environment: str
    target: str
    kind: str
    actions: tuple[str, ...]
    groups: tuple[str, ...]
    quorum: int
    exclude_owners: bool
    max_uses: int
    uses: int = 0
    ttl: dt.timedelta | None
    policy_ids: tuple[str, ...] = ()
    justification: str | None = None
    created_at: dt.datetime
    expires_at: dt.datetime
    approved_at: dt.datetime | None = None
    redeem_by: dt.datetime | None = None
    ended_at: dt.datetime | None = None
    end_reason: str | None = None
    votes: tuple[Vote, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiToken:
    """
    An API token as the broker knows it: never the token, never its hash.

    Attributes:
        id: the token id (``tok_…``), what audit records and revocation name.
        role: what it may do (``operator``: what its operator's roles allow).
        description: what it is for, as its creator wrote it.
        created_at: when it was created.
        operator_id: the operator it belongs to (role ``operator``), else None.
        operator_name: that operator's name, for people reading a list.
        revoked_at: when it was revoked; a revoked token authenticates nothing.
    """

    id: str
    role: ApiRole
    description: str
    created_at: dt.datetime
    operator_id: OperatorId | None = None
    operator_name: str | None = None
    revoked_at: dt.datetime | None = None
