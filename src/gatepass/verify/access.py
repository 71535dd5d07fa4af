"""What a resource server knows after a request's access token verified."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from gatepass.errors import InsufficientScopeError

__all__ = ["VerifiedAccess", "require_scope"]


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifiedAccess:
    """
    A verified, DPoP-bound gatepass access token.

    Attributes:
        agent_id: the agent the token was issued to (``sub``).
        task_id: the task the token belongs to (``txn``).
        scopes: the actions the token grants.
        jkt: the thumbprint of the key the token is bound to (``cnf.jkt``).
        jti: the token id, which is also the broker's handle of its lease.
        audience: the token's one audience, this resource server.
        expires_at: when the token expires.
        claims: every verified claim, for application-specific checks.
    """

    agent_id: str
    task_id: str
    scopes: frozenset[str]
    jkt: str
    jti: str
    audience: str
    expires_at: dt.datetime
    claims: dict[str, Any] = field(repr=False, compare=False)


def require_scope(verified: VerifiedAccess, action: str) -> None:
    """
    Check that a verified token grants an action.

    Args:
        verified: the verified access.
        action: the action the request needs, such as ``read``.

    Raises:
        InsufficientScopeError: the token does not grant the action (RFC 6750 §3.1).
    """
    if action not in verified.scopes:
        raise InsufficientScopeError(f"the token does not grant {action}")
