"""
Verifying gatepass access tokens on a resource server.

:class:`ResourceVerifier` checks a request's ``Authorization: DPoP`` token and its
``DPoP`` proof, and the token's revocation status: pushed by the broker's stream
(:class:`RevocationFeed`), or asked of it (:class:`Introspector`) while the stream
is down. :class:`GatepassMiddleware` does it for every request of an ASGI
application and serves the resource's RFC 9728 metadata
(:class:`ProtectedResource`). :func:`presented_credentials` reads a request's one
token and one proof, and :func:`www_authenticate` / :func:`challenge_headers`
build the ``DPoP`` challenge that every gatepass surface (this middleware, the
MCP guard, the proxy, the broker) answers with. This package is part of the base
install: it needs httpx, PyJWT and cryptography, and no web framework.
"""

from __future__ import annotations

from gatepass.verify.access import VerifiedAccess, actor_chain, require_scope
from gatepass.verify.challenges import (
    challenge_headers,
    error_body,
    refusal_status,
    www_authenticate,
)
from gatepass.verify.headers import (
    Header,
    PresentedCredentials,
    dpop_access_token,
    header_values,
    presented_credentials,
    single_dpop_proof,
)
from gatepass.verify.introspection import Introspector
from gatepass.verify.metadata import (
    WELL_KNOWN_PATH,
    ProtectedResource,
    metadata_url,
    origin_of,
)
from gatepass.verify.middleware import (
    ASGIApp,
    GatepassMiddleware,
    Message,
    Receive,
    Scope,
    ScopeRule,
    Send,
    send_refusal,
    verified_access,
)
from gatepass.verify.mtls import client_certificate_thumbprint
from gatepass.verify.revocations import RevocationFeed
from gatepass.verify.verifier import ACCESS_TOKEN_TYP, ResourceVerifier

__all__ = [
    "ACCESS_TOKEN_TYP",
    "WELL_KNOWN_PATH",
    "ASGIApp",
    "GatepassMiddleware",
    "Header",
    "Introspector",
    "Message",
    "PresentedCredentials",
    "ProtectedResource",
    "Receive",
    "ResourceVerifier",
    "RevocationFeed",
    "Scope",
    "ScopeRule",
    "Send",
    "VerifiedAccess",
    "actor_chain",
    "challenge_headers",
    "client_certificate_thumbprint",
    "dpop_access_token",
    "error_body",
    "header_values",
    "metadata_url",
    "origin_of",
    "presented_credentials",
    "refusal_status",
    "require_scope",
    "send_refusal",
    "single_dpop_proof",
    "verified_access",
    "www_authenticate",
]
