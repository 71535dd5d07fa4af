"""
Identity: who is asking.

Verifiers turn a presented workload credential into a :class:`WorkloadIdentity`.
Today that is an agent assertion signed by a registered key (RFC 7523); SPIFFE
JWT-SVID and OIDC verifiers implement the same :class:`WorkloadVerifier` protocol.
"""

from __future__ import annotations

from gatepass.identity.assertion import AgentAssertionVerifier
from gatepass.identity.workload import (
    JWT_TOKEN_TYPE,
    AgentDirectory,
    ReplayCache,
    WorkloadIdentity,
    WorkloadVerifier,
)

__all__ = [
    "JWT_TOKEN_TYPE",
    "AgentAssertionVerifier",
    "AgentDirectory",
    "ReplayCache",
    "WorkloadIdentity",
    "WorkloadVerifier",
]
