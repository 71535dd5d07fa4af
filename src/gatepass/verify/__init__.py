"""
Verifying gatepass access tokens on a resource server.

:class:`ResourceVerifier` checks a request's ``Authorization: DPoP`` token and its
``DPoP`` proof, and, with an :class:`Introspector`, the token's revocation status;
:class:`GatepassMiddleware` does it for every request of an ASGI application.
:func:`presented_credentials` reads a request's one token and one proof, and
:func:`www_authenticate` / :func:`challenge_headers` build the ``DPoP`` challenge
that every gatepass surface (this middleware, the proxy, the broker) answers with.
This package is part of the base install: it needs httpx, PyJWT and cryptography,
and no web framework.
"""

from __future__ import annotations

from gatepass.verify.access import VerifiedAccess, require_scope
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
from gatepass.verify.middleware import (
    ASGIApp,
    GatepassMiddleware,
    ScopeRule,
    verified_access,
)
from gatepass.verify.verifier import ACCESS_TOKEN_TYP, ResourceVerifier

__all__ = [
    "ACCESS_TOKEN_TYP",
    "ASGIApp",
    "GatepassMiddleware",
    "Header",
    "Introspector",
    "PresentedCredentials",
    "ResourceVerifier",
    "ScopeRule",
    "VerifiedAccess",
    "challenge_headers",
    "dpop_access_token",
    "error_body",
    "header_values",
    "presented_credentials",
    "refusal_status",
    "require_scope",
    "single_dpop_proof",
    "verified_access",
    "www_authenticate",
]
