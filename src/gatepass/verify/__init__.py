"""
Verifying gatepass access tokens on a resource server.

:class:`ResourceVerifier` checks a request's ``Authorization: DPoP`` token and its
``DPoP`` proof, and, with an :class:`Introspector`, the token's revocation status;
:class:`GatepassMiddleware` does it for every request of an ASGI application.
This package is part of the base install: it needs httpx, PyJWT and cryptography,
and no web framework.
"""

from __future__ import annotations

from gatepass.verify.access import VerifiedAccess, require_scope
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
    "Introspector",
    "ResourceVerifier",
    "ScopeRule",
    "VerifiedAccess",
    "require_scope",
    "verified_access",
]
