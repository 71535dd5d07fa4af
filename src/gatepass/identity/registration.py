"""
From a federated identity to an agent record: pure helpers for the broker.

A federated agent has **no key**: it proves itself with its issuer's tokens, so its
record carries ``public_jwk = {}`` (which no assertion can ever verify against,
because :class:`~gatepass.identity.AgentAssertionVerifier` refuses an agent whose
key does not fit its algorithm) and a marker of the one issuer allowed to prove it.
The broker looks the agent up by name; these helpers say what a new record holds
and whether a found record may be proved by this identity.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from gatepass.errors import AccessDeniedError, InvalidGrantError
from gatepass.identity.federation import FederatedIdentity
from gatepass.ids import AgentId
from gatepass.models import Agent, AgentStatus

__all__ = [
    "FEDERATED_ALGORITHM",
    "FederatedAgentFields",
    "check_federated_agent",
    "federated_agent_fields",
]

# The algorithm column of a keyless agent: not a JWS algorithm, so no assertion
# can name it, and the assertion verifier treats the record as having no key.
FEDERATED_ALGORITHM = "federated"


@dataclass(frozen=True, slots=True, kw_only=True)
class FederatedAgentFields:
    """
    The fields of a new agent record for a federated identity.

    Attributes:
        name: the mapped agent name.
        tenant: the mapped tenant.
        labels: the labels mapped from the registering token.
        public_jwk: always ``{}``: a federated agent has no registered key.
        algorithm: always :data:`FEDERATED_ALGORITHM`.
        issuer: the issuer marker to store with the agent (a new column).
        method: how the agent proves itself (``oidc``, ``spiffe-jwt-svid``).
        subject: the token subject, for audit.
    """

    name: str
    tenant: str
    labels: dict[str, str]
    public_jwk: dict[str, Any] = field(default_factory=dict)
    algorithm: str = FEDERATED_ALGORITHM
    issuer: str
    method: str
    subject: str

    def to_agent(self, agent_id: AgentId, created_at: dt.datetime) -> Agent:
        """
        Build the :class:`~gatepass.models.Agent` record (without the issuer marker).

        Args:
            agent_id: a new agent id.
            created_at: the registration time.

        Returns:
            The record to insert, alongside :attr:`issuer`.
        """
        return Agent(
            id=agent_id,
            name=self.name,
            tenant=self.tenant,
            labels=dict(self.labels),
            public_jwk=dict(self.public_jwk),
            algorithm=self.algorithm,
            created_at=created_at,
        )


def federated_agent_fields(identity: FederatedIdentity) -> FederatedAgentFields:
    """
    Return what a new agent record for this identity holds.

    Args:
        identity: a verified federated identity whose name is not registered.

    Returns:
        The fields; the caller registers only when
        ``identity.register_on_first_use`` is true.
    """
    return FederatedAgentFields(
        name=identity.name,
        tenant=identity.tenant,
        labels=dict(identity.labels),
        issuer=identity.issuer,
        method=identity.method,
        subject=identity.subject,
    )


def check_federated_agent(
    agent: Agent, agent_issuer: str | None, identity: FederatedIdentity
) -> None:
    """
    Check that a registered agent found by name may be proved by this identity.

    Args:
        agent: the record found under ``identity.name``.
        agent_issuer: the issuer marker stored with it (None for a keyed agent).
        identity: the verified federated identity.

    Raises:
        InvalidGrantError: the record belongs to another issuer, has a key of its
            own (a registered agent is never proved by a federated token), or is in
            another tenant.
        AccessDeniedError: the agent is disabled.
    """
    if agent.public_jwk or agent_issuer is None:
        raise InvalidGrantError("agent name belongs to an agent with its own key")
    if agent_issuer != identity.issuer:
        raise InvalidGrantError("agent name belongs to another issuer")
    if agent.tenant != identity.tenant:
        raise InvalidGrantError("agent is registered in another tenant")
    if agent.status is not AgentStatus.ACTIVE:
        raise AccessDeniedError("agent is disabled")
