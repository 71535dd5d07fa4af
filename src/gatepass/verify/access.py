"""What a resource server knows after a request's access token verified."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gatepass.errors import InsufficientScopeError

__all__ = ["VerifiedAccess", "actor_chain", "require_scope"]

# Delegation chains are short (a parent and a few sub-agents); a deeper one is
# cut rather than walked without bound.
_MAX_ACTORS = 16


def actor_chain(claims: Mapping[str, Any]) -> tuple[str, ...]:
    """
    Return the ``sub`` of every actor in a token's nested ``act`` claims.

    RFC 8693 §4.1: the outermost ``act`` is the current actor and each nested one
    acted before it, so the first name is the agent acting now on behalf of the
    token's subject and the last the one nearest the subject.

    Args:
        claims: the token's verified claims.

    Returns:
        The actors' ``sub`` values, empty when nobody acts for the subject.
    """
    chain: list[str] = []
    current = claims.get("act")
    while isinstance(current, Mapping) and len(chain) < _MAX_ACTORS:
        subject = current.get("sub")
        if not isinstance(subject, str):
            break
        chain.append(subject)
        current = current.get("act")
    return tuple(chain)


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
        tenant: the task's tenant, empty when the token names none.
        environment: the task's environment, empty when the token names none.
        actors: the delegation chain (see :func:`actor_chain`), empty for an
            agent acting for itself.
        claims: every verified claim, for application-specific checks.
    """

    agent_id: str
    task_id: str
    scopes: frozenset[str]
    jkt: str
    jti: str
    audience: str
    expires_at: dt.datetime
    tenant: str = ""
    environment: str = ""
    actors: tuple[str, ...] = ()
    claims: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)


def require_scope(verified: VerifiedAccess, action: str) -> None:
    """
    Check that a verified token grants an action.

    Args:
        verified: the verified access.
        action: the action the request needs, such as ``read``.

    Raises:
        InsufficientScopeError: the token does not grant the action (RFC 6750
            §3.1); its ``scope`` names the action, for the step-up challenge.
    """
    if action not in verified.scopes:
        raise InsufficientScopeError(f"the token does not grant {action}", scope=action)
