"""
The broker's typed requests and answers: what the faces hand to the use cases.

The API turns HTTP bodies into these (``gatepass.api.forms`` for OAuth forms,
``gatepass.api.inputs`` for JSON), so use cases never see bytes, headers or untyped
JSON, and unit tests call them with plain values.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from gatepass.models import ApiRole, OperatorRole

__all__ = [
    "AcceptDelegationRequest",
    "AccessTokenRequest",
    "AgentRegistration",
    "CredentialRequest",
    "DelegationGrantRequest",
    "Introspection",
    "OpenTaskRequest",
    "OperatorRegistration",
    "RevocationRequest",
    "ServiceTokenRequest",
    "TaskDetails",
    "TokenResponse",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskDetails:
    """
    The ``agent_task`` authorization details (RFC 9396) of an open-task request.

    Attributes:
        intent: free text describing the work.
        purpose: a label that policies match.
        environment: where the task runs.
        tenant: the tenant it acts for; None means the agent's own.
        targets: target URIs or names, as sent.
        max_ttl: the longest life asked for, if any.
        actions: the only actions the task may be granted, if it names them (a
            delegated sub-task always does).
    """

    intent: str
    purpose: str
    environment: str
    tenant: str | None
    targets: tuple[str, ...]
    max_ttl: dt.timedelta | None
    actions: tuple[str, ...] | None = None

    def to_json(self, task_id: str) -> list[dict[str, Any]]:
        """Return the details as echoed in the token response."""
        details: dict[str, Any] = {
            "type": "agent_task",
            "task_id": task_id,
            "intent": self.intent,
            "purpose": self.purpose,
            "environment": self.environment,
            "targets": list(self.targets),
        }
        if self.tenant is not None:
            details["tenant"] = self.tenant
        if self.actions is not None:
            details["actions"] = list(self.actions)
        return [details]


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenTaskRequest:
    """An open-task token exchange: a workload identity for a task token."""

    subject_token: str
    subject_token_type: str
    details: TaskDetails
    client_id: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class DelegationGrantRequest:
    """
    A parent task asks for a delegation token for another agent (issue 10).

    Attributes:
        subject_token: the parent's task token.
        child: the agent id the sub-task is for (``audience``).
        details: the sub-task (targets, actions, purpose, intent, max TTL).
        client_id: the client the request names, if any.
    """

    subject_token: str
    child: str
    details: TaskDetails
    client_id: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class AcceptDelegationRequest:
    """
    The child agent exchanges a delegation token for its own task token.

    Attributes:
        delegation_token: the delegation token (``subject_token``).
        actor_token: the child's workload identity (an assertion or a federated
            token).
        actor_token_type: its RFC 8693 type (``jwt`` or ``id_token``).
        client_id: the client the request names, if any.
    """

    delegation_token: str
    actor_token: str
    actor_token_type: str
    client_id: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class AccessTokenRequest:
    """
    An access-token exchange: a task token for a token scoped to one target.

    Attributes:
        subject_token: the task token.
        resource: the target's URI or name, as sent.
        actions: the actions asked for (the scope).
        client_id: the client the request names, if any.
        requested_ttl: a shorter life than the caps allow, if asked.
        approval_id: the approval named when repeating a request that waited.
        justification: the agent's words for approvers (inert text).
    """

    subject_token: str
    resource: str
    actions: tuple[str, ...]
    client_id: str | None
    requested_ttl: dt.timedelta | None = None
    approval_id: str | None = None
    justification: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenResponse:
    """A successful token-endpoint answer (RFC 8693 §2.2.1)."""

    body: dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class Introspection:
    """An RFC 7662 answer."""

    body: dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class RevocationRequest:
    """
    An RFC 7009 revocation request.

    Attributes:
        token: the token to revoke.
        client_id: the client the request names, if any (RFC 7009 §2.1).
    """

    token: str
    client_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CredentialRequest:
    """
    ``POST /v1/credentials``: an engine credential for one target of the task.

    Attributes:
        target: the target's name or URI, as sent.
        actions: the actions asked for (deduplicated, validated).
        public_key: the agent's OpenSSH public key (SSH targets), or None.
        idempotency_key: the ``Idempotency-Key`` header, or None.
        requested_ttl: a shorter life than the caps allow, if asked.
        approval_id: the approval named when repeating a request that waited.
        justification: the agent's words for approvers (inert text).
    """

    target: str
    actions: tuple[str, ...]
    public_key: str | None = None
    idempotency_key: str | None = None
    requested_ttl: dt.timedelta | None = None
    approval_id: str | None = None
    justification: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentRegistration:
    """
    ``POST /v1/agents``: an agent to register.

    Attributes:
        name: a unique, human label.
        tenant: the tenant it works for.
        public_jwk: its public key, validated (never a private key).
        algorithm: the JWS algorithm pinned to that key.
        labels: free key/value labels policies read.
        owners: names of the operators responsible for it; each must exist and
            be active.
    """

    name: str
    tenant: str
    public_jwk: dict[str, Any]
    algorithm: str
    labels: dict[str, str]
    owners: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class OperatorRegistration:
    """
    ``POST /v1/admin/operators``: a named human to add.

    Attributes:
        name: a unique login-like name (``[a-z0-9][a-z0-9._-]{0,63}``).
        roles: at least one of admin, approver, auditor.
        groups: the approver groups they belong to (an approver needs one).
        tenants: the tenants they may act on, or ``*`` for every tenant (an
            approver needs one).
        description: what their first token is for.
    """

    name: str
    roles: frozenset[OperatorRole]
    groups: frozenset[str] = frozenset()
    tenants: frozenset[str] = frozenset()
    description: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceTokenRequest:
    """
    ``POST /v1/admin/tokens``: a token for a resource server, a proxy or automation.

    Attributes:
        role: introspect, proxy or admin (never operator: those belong to an
            operator and come from ``POST /v1/admin/operators/{name}/tokens``).
        description: what it is for (1 to 200 characters).
    """

    role: ApiRole
    description: str
