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

from gatepass.ids import AgentId, LeaseId, TaskId

__all__ = [
    "Agent",
    "AgentStatus",
    "ApiRole",
    "ApiToken",
    "Lease",
    "LeaseState",
    "Target",
    "Task",
    "TaskState",
]


class ApiRole(enum.StrEnum):
    """
    What an API token may do.

    ``admin``: everything. ``introspect``: RFC 7662 introspection (resource
    servers). ``proxy``: introspection, the revocation stream and submitting
    proxied-call audit records (the credential-injecting proxy).
    """

    ADMIN = "admin"
    INTROSPECT = "introspect"
    PROXY = "proxy"


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiToken:
    """
    An API token as the broker records it: never the token, only what it is for.

    Attributes:
        id: the token's id (``tok_…``), which audit records name as the actor.
        name: who holds it (a resource server, a proxy, an operator).
        role: what it may do.
        created_at: when it was created.
    """

    id: str
    name: str
    role: ApiRole
    created_at: dt.datetime


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
    """

    id: AgentId
    name: str
    tenant: str
    labels: dict[str, str] = field(default_factory=dict)
    public_jwk: dict[str, Any]
    algorithm: str
    status: AgentStatus = AgentStatus.ACTIVE
    created_at: dt.datetime


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
