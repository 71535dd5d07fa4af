"""
Identity: who is asking.

Verifiers turn a presented workload credential into a verified identity:

- :class:`AgentAssertionVerifier`: an assertion signed by a registered agent key
  (RFC 7523), the :class:`WorkloadVerifier` of registered agents;
- :class:`FederatedVerifier`: a token from a trusted issuer (Kubernetes projected
  service-account tokens, GitHub Actions and GitLab CI ID tokens, SPIRE JWT-SVIDs),
  mapped to an agent by claim rules (``docs/identity.md``).

The key fetcher (:class:`DocumentFetcher`) is usable on its own for any document
fetched from a configured URL.
"""

from __future__ import annotations

from gatepass.identity.addresses import (
    AddressPolicy,
    Resolver,
    StaticResolver,
    SystemResolver,
)
from gatepass.identity.assertion import AgentAssertionVerifier
from gatepass.identity.federation import (
    FEDERATED_TOKEN_TYPES,
    ID_TOKEN_TYPE,
    FederatedIdentity,
    FederatedVerifier,
)
from gatepass.identity.fetch import DocumentFetcher, FetchLimits
from gatepass.identity.issuers import OIDC_METHOD, SPIFFE_METHOD, TrustedIssuer
from gatepass.identity.keycache import IssuerHealth, IssuerKeys, read_key_file
from gatepass.identity.keysets import KeySet, VerificationKey, parse_key_set
from gatepass.identity.registration import (
    FEDERATED_ALGORITHM,
    FederatedAgentFields,
    check_federated_agent,
    federated_agent_fields,
)
from gatepass.identity.settings import (
    ClaimRuleSettings,
    IdentitySettings,
    IssuerSettings,
)
from gatepass.identity.spiffe import SpiffeId, parse_spiffe_id
from gatepass.identity.workload import (
    JWT_TOKEN_TYPE,
    AgentDirectory,
    ReplayCache,
    WorkloadIdentity,
    WorkloadVerifier,
)

__all__ = [
    "FEDERATED_ALGORITHM",
    "FEDERATED_TOKEN_TYPES",
    "ID_TOKEN_TYPE",
    "JWT_TOKEN_TYPE",
    "OIDC_METHOD",
    "SPIFFE_METHOD",
    "AddressPolicy",
    "AgentAssertionVerifier",
    "AgentDirectory",
    "ClaimRuleSettings",
    "DocumentFetcher",
    "FederatedAgentFields",
    "FederatedIdentity",
    "FederatedVerifier",
    "FetchLimits",
    "IdentitySettings",
    "IssuerHealth",
    "IssuerKeys",
    "IssuerSettings",
    "KeySet",
    "ReplayCache",
    "Resolver",
    "SpiffeId",
    "StaticResolver",
    "SystemResolver",
    "TrustedIssuer",
    "VerificationKey",
    "WorkloadIdentity",
    "WorkloadVerifier",
    "check_federated_agent",
    "federated_agent_fields",
    "parse_key_set",
    "parse_spiffe_id",
    "read_key_file",
]
