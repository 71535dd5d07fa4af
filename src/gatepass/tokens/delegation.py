"""
Delegation tokens and actor chains (RFC 8693 §4.1 ``act``, §4.4 ``may_act``).

A delegation token is what a parent task hands to the child agent: short-lived,
single use, signed by the broker, naming exactly one agent allowed to act with it
(``may_act.sub``) and the sub-task it may open (``authorization_details``). It is not
bound to a key: the child proves who it is with its own workload identity
(``actor_token``) and binds its task to a key it generated (DPoP).

Task and access tokens of a delegated task carry the verified chain as nested
``act`` claims, the current actor outermost: ``{"sub": child, "act": {"sub":
parent, "act": {"sub": root}}}``. gatepass builds the chain from its own records;
an ``act`` a client sends is never read.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gatepass.errors import TokenError

__all__ = [
    "DELEGATION_TOKEN_TYP",
    "DELEGATION_TOKEN_TYPE",
    "DelegationClaims",
    "actor_chain",
]

# gatepass's own token type URI (RFC 8693 §3 allows others than the registered).
DELEGATION_TOKEN_TYPE = "urn:gatepass:params:oauth:token-type:delegation"  # noqa: S105
# RFC 8725 §3.11: its own media type, so it is never taken for a task token.
DELEGATION_TOKEN_TYP = "delegation+jwt"  # noqa: S105 - a media type


def actor_chain(actors: Sequence[str]) -> dict[str, Any] | None:
    """
    Return the nested ``act`` claim of a chain of agent ids, current actor first.

    Returns:
        None for an empty chain (a task its agent opened itself).
    """
    claim: dict[str, Any] | None = None
    for actor in reversed(actors):
        claim = {"sub": actor} if claim is None else {"sub": actor, "act": claim}
    return claim


@dataclass(frozen=True, slots=True, kw_only=True)
class DelegationClaims:
    """
    A verified delegation token.

    Attributes:
        parent_agent: ``sub``, the delegating agent.
        parent_task: ``txn``, the task delegated from.
        child_agent: ``may_act.sub``, the one agent that may accept it.
        jti: its id, spent when it is accepted.
        expires_at: ``exp``.
        details: the sub-task (one ``agent_task`` object, as granted).
    """

    parent_agent: str
    parent_task: str
    child_agent: str
    jti: str
    expires_at: dt.datetime
    details: Mapping[str, Any]

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any]) -> DelegationClaims:
        """
        Read a delegation token's verified claims.

        Raises:
            TokenError: a claim the broker always sets is missing or malformed.
        """
        may_act = claims.get("may_act")
        child = may_act.get("sub") if isinstance(may_act, Mapping) else None
        details = claims.get("authorization_details")
        if (
            not isinstance(details, list)
            or len(details) != 1
            or not isinstance(details[0], Mapping)
        ):
            raise TokenError("delegation token has no sub-task")
        values = [claims.get(name) for name in ("sub", "txn", "jti")]
        if not isinstance(child, str) or not all(
            isinstance(value, str) and value for value in values
        ):
            raise TokenError("delegation token is malformed")
        exp = claims.get("exp")
        if isinstance(exp, bool) or not isinstance(exp, int):
            raise TokenError("delegation token has no valid exp claim")
        return cls(
            parent_agent=str(values[0]),
            parent_task=str(values[1]),
            child_agent=child,
            jti=str(values[2]),
            expires_at=dt.datetime.fromtimestamp(exp, dt.UTC),
            details=details[0],
        )
