"""
The protocol's names and the typed claims of gatepass's two tokens.

One home for the constants every face needs (the SDK, the broker, resource servers,
the proxy) and typed views of verified claims, so no caller reads
``claims["cnf"]["jkt"]`` out of an untyped dict. A view is built only from claims
whose signature, issuer, audience and lifetime were already checked; building one
checks the *shape* the broker promises and raises :class:`TokenError` otherwise.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gatepass.errors import TokenError
from gatepass.tokens.mtls import bound_thumbprint

__all__ = [
    "ACCESS_TOKEN_TYP",
    "ACCESS_TOKEN_TYPE",
    "ID_TOKEN_TYPE",
    "JWT_TOKEN_TYPE",
    "TASK_TOKEN_TYP",
    "TOKEN_EXCHANGE",
    "TXN_TOKEN_TYPE",
    "AccessTokenClaims",
    "TaskTokenClaims",
]

# RFC 8693 §2.1 and §3: the grant and the token type URIs.
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"  # noqa: S105
JWT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt"  # noqa: S105 - a URN
ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"  # noqa: S105 - a URN
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"  # noqa: S105
# draft-ietf-oauth-transaction-tokens: a task token is a transaction token.
TXN_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:txn_token"  # noqa: S105 - a URN

# RFC 8725 §3.11: explicit typing, so one kind of token is never taken for another.
TASK_TOKEN_TYP = "txntoken+jwt"  # noqa: S105 - a media type
ACCESS_TOKEN_TYP = "at+jwt"  # noqa: S105 - RFC 9068 §2.1


def _text(claims: Mapping[str, Any], name: str) -> str:
    value = claims.get(name)
    if not isinstance(value, str) or not value:
        raise TokenError(f"token has no valid {name} claim")
    return value


def _optional_text(claims: Mapping[str, Any], name: str) -> str:
    value = claims.get(name, "")
    return value if isinstance(value, str) else ""


def _time(claims: Mapping[str, Any], name: str) -> dt.datetime:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TokenError(f"token has no valid {name} claim")
    return dt.datetime.fromtimestamp(int(value), dt.UTC)


def _jkt(claims: Mapping[str, Any]) -> str:
    confirmation = claims.get("cnf")
    jkt = confirmation.get("jkt") if isinstance(confirmation, Mapping) else None
    if not isinstance(jkt, str) or not jkt:
        raise TokenError("token is not dpop-bound")
    return jkt


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskTokenClaims:
    """
    A verified task token: which agent's which task, bound to which key.

    Attributes:
        agent_id: ``sub`` (and ``client_id``), the agent that opened the task.
        task_id: ``txn``, the task.
        jti: the token's id, which the task row remembers.
        jkt: ``cnf.jkt``, the thumbprint of the task's DPoP key.
        issued_at: ``iat``.
        expires_at: ``exp``.
        tenant: the task's tenant.
        environment: ``env``, the task's environment.
        purpose: the task's purpose label.
        raw: every claim, for introspection.
        x5t: ``cnf.x5t#S256``, the client certificate the task was opened over
            (RFC 8705), or None.
    """

    agent_id: str
    task_id: str
    jti: str
    jkt: str
    issued_at: dt.datetime
    expires_at: dt.datetime
    tenant: str
    environment: str
    purpose: str
    raw: Mapping[str, Any]
    x5t: str | None = None

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any]) -> TaskTokenClaims:
        """
        Read a task token's verified claims.

        Raises:
            TokenError: a claim the broker always sets is missing or malformed.
        """
        task_id = _text(claims, "txn")
        if not task_id.startswith("tsk_"):
            raise TokenError("task token lacks its task or key binding")
        return cls(
            agent_id=_text(claims, "sub"),
            task_id=task_id,
            jti=_text(claims, "jti"),
            jkt=_jkt(claims),
            issued_at=_time(claims, "iat"),
            expires_at=_time(claims, "exp"),
            tenant=_optional_text(claims, "tenant"),
            environment=_optional_text(claims, "env"),
            purpose=_optional_text(claims, "purpose"),
            raw=dict(claims),
            x5t=bound_thumbprint(claims),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class AccessTokenClaims:
    """
    A verified access token (RFC 9068) for one target.

    Attributes:
        agent_id: ``sub``, the agent.
        client_id: ``client_id`` (the agent as an OAuth client).
        audience: ``aud``, exactly one target URI (RFC 8707).
        scope: the granted actions.
        task_id: ``txn``, the task it belongs to.
        jti: the token's id, which its lease remembers.
        jkt: ``cnf.jkt``, the key a DPoP proof must be signed with.
        issued_at: ``iat``.
        expires_at: ``exp``.
        tenant: the task's tenant.
        environment: ``env``, the task's environment.
        raw: every claim, for introspection.
        x5t: ``cnf.x5t#S256`` (RFC 8705): the client certificate a resource
            server must see on the connection, or None.
    """

    agent_id: str
    client_id: str
    audience: str
    scope: tuple[str, ...]
    task_id: str
    jti: str
    jkt: str
    issued_at: dt.datetime
    expires_at: dt.datetime
    tenant: str
    environment: str
    raw: Mapping[str, Any]
    x5t: str | None = None

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any]) -> AccessTokenClaims:
        """
        Read an access token's verified claims.

        Raises:
            TokenError: a claim the broker always sets is missing or malformed.
        """
        audience = claims.get("aud")
        if isinstance(audience, list) and len(audience) == 1:
            audience = audience[0]
        if not isinstance(audience, str) or not audience:
            raise TokenError("token must have exactly one audience")
        scope = claims.get("scope", "")
        if not isinstance(scope, str):
            raise TokenError("token has no valid scope claim")
        return cls(
            agent_id=_text(claims, "sub"),
            client_id=_optional_text(claims, "client_id"),
            audience=audience,
            scope=tuple(action for action in scope.split(" ") if action),
            task_id=_text(claims, "txn"),
            jti=_text(claims, "jti"),
            jkt=_jkt(claims),
            issued_at=_time(claims, "iat"),
            expires_at=_time(claims, "exp"),
            tenant=_optional_text(claims, "tenant"),
            environment=_optional_text(claims, "env"),
            raw=dict(claims),
            x5t=bound_thumbprint(claims),
        )
