"""
Workload identity: who an agent is, and the seam where identity verifiers plug in.

A registered agent proves itself with a JWT assertion signed by its key (RFC 7523),
checked by a :class:`WorkloadVerifier`. A federated workload proves itself with a
token from a trusted issuer (SPIFFE JWT-SVID, OIDC); that verifier
(``gatepass.identity.federation.FederatedVerifier``) is asynchronous, because it
may fetch its issuer's keys, and returns the mapped identity rather than an agent
record, which the broker looks up or registers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from gatepass.ids import AgentId
from gatepass.models import Agent
from gatepass.single_use import ReplayCache, SingleUse
from gatepass.tokens import JWT_TOKEN_TYPE

__all__ = [
    "JWT_TOKEN_TYPE",
    "AgentDirectory",
    "ReplayCache",
    "WorkloadIdentity",
    "WorkloadVerifier",
]


class AgentDirectory(Protocol):
    """Looks up registered agents (the store implements it)."""

    def get_agent(self, agent_id: AgentId) -> Agent | None:
        """
        Return the agent with this id, or None.

        Args:
            agent_id: a well-formed agent id.
        """
        ...


@dataclass(frozen=True, slots=True)
class WorkloadIdentity:
    """
    A verified agent identity.

    Attributes:
        agent: the registered agent.
        method: how it proved itself (``"jwt-assertion"``).
        assertion_jti: the id of the credential it presented, for audit.
        single_use: the presented credential's id as a single-use value, which
            the broker records durably with the task it opens; None when the
            credential is not single use.
    """

    agent: Agent
    method: str
    assertion_jti: str
    single_use: SingleUse | None = None


class WorkloadVerifier(Protocol):
    """Turns a presented identity token into a :class:`WorkloadIdentity`, or raises."""

    token_types: frozenset[str]

    def verify(self, token: str) -> WorkloadIdentity:
        """
        Verify an identity token.

        Args:
            token: the ``subject_token`` or ``actor_token``.

        Returns:
            The verified identity.

        Raises:
            InvalidGrantError: the token is invalid, expired, replayed or unknown.
            AccessDeniedError: the agent is disabled.
        """
        ...
