"""RFC 7662 introspection and RFC 7009 revocation of the broker's own tokens."""

from __future__ import annotations

import hmac
from typing import Any

import jwt

from gatepass.broker.requests import parse_form
from gatepass.broker.service import (
    ACCESS_TOKEN_TYP,
    TASK_TOKEN_TYP,
    Attempt,
    Broker,
    Introspection,
)
from gatepass.errors import (
    ConflictError,
    GatepassError,
    InvalidClientError,
    InvalidRequestError,
    NotFoundError,
    TokenError,
    UnsupportedTokenTypeError,
)
from gatepass.models import LeaseState, TaskState
from gatepass.secret import token_hash
from gatepass.store import leases as lease_rows
from gatepass.store import tasks as task_rows

__all__ = ["TokenStatus"]

_INTROSPECTED_CLAIMS = (
    "scope",
    "client_id",
    "sub",
    "aud",
    "iss",
    "exp",
    "iat",
    "jti",
    "cnf",
    "txn",
    "tenant",
    "env",
)


class TokenStatus:
    """
    Answer "is this token still good?" and "make it not good".

    Args:
        broker: the broker whose tokens these are.
    """

    def __init__(self, broker: Broker) -> None:
        """Keep the broker."""
        self._broker = broker

    def _peek(self, token: str) -> tuple[str, dict[str, Any]] | None:
        try:
            header = jwt.get_unverified_header(token)
            claims = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            return None
        typ = header.get("typ")
        return (typ, claims) if isinstance(typ, str) else None

    def _verify_any(self, token: str) -> tuple[str, dict[str, Any]] | None:
        """Verify a broker token of either kind; None if it is not valid."""
        peeked = self._peek(token)
        if peeked is None:
            return None
        typ, unverified = peeked
        audience = unverified.get("aud")
        if typ.lower() not in {TASK_TOKEN_TYP, ACCESS_TOKEN_TYP} or not isinstance(
            audience, str
        ):
            return None
        try:
            claims = self._broker.verifier.verify(
                token, typ=typ.lower(), audience=audience
            )
        except TokenError:
            return None
        return typ.lower(), claims

    async def revoke_token(self, body: bytes) -> None:
        """
        Serve RFC 7009 revocation: possession of the token is the authorization.

        Unknown, invalid and already-revoked tokens are accepted silently (RFC 7009
        §2.2); the attempt is audited either way.

        Raises:
            InvalidRequestError: the request is malformed.
            UnsupportedTokenTypeError: the hint names a type gatepass cannot revoke.
        """
        attempt = Attempt(kind="token.revoke")
        try:
            form = parse_form(body)
            tokens = form.get("token", [])
            if len(tokens) != 1 or not tokens[0]:
                raise InvalidRequestError("name exactly one token")
            hints = form.get("token_type_hint", [])
            if hints and hints[0] not in {"access_token", "refresh_token"}:
                raise UnsupportedTokenTypeError("unsupported token_type_hint")
            client_ids = form.get("client_id", [])
            if len(client_ids) > 1:
                raise InvalidRequestError("parameter client_id is repeated")
        except GatepassError as error:
            await self._broker.audit_failure(attempt, error)
            raise
        token = tokens[0]
        attempt.data["token_hash"] = token_hash(token)
        verified = self._verify_any(token)
        if verified is None:
            attempt.data["result"] = "not an active gatepass token"
            await self._broker.audit(self._broker.entry(attempt, "ok"))
            return
        typ, claims = verified
        attempt.actor = str(claims.get("sub", "unknown"))
        if client_ids and not hmac.compare_digest(
            client_ids[0].encode(), str(claims.get("client_id", "")).encode()
        ):
            # RFC 7009 §2.1: a request that identifies a client may revoke only the
            # tokens issued to that client; anything else is refused.
            attempt.data["client_id"] = client_ids[0][:64]
            refusal = InvalidClientError("token was not issued to this client")
            await self._broker.audit_failure(attempt, refusal)
            raise refusal
        try:
            if typ == TASK_TOKEN_TYP:
                await self._broker.close_task(
                    str(claims["txn"]), actor=attempt.actor, reason="task token revoked"
                )
            else:
                lease = await self._broker.database.read(
                    lambda c: lease_rows.get_lease_by_handle(c, str(claims["jti"]))
                )
                if lease is not None:
                    await self._broker.revoke_lease(
                        lease.id, actor=attempt.actor, reason="token revoked"
                    )
        except (ConflictError, NotFoundError):
            # Already revoked or closed: RFC 7009 §2.2 answers 200 all the same.
            return

    async def introspect(self, body: bytes) -> Introspection:
        """
        Serve RFC 7662 introspection of a broker token.

        Raises:
            InvalidRequestError: the request is malformed.
        """
        form = parse_form(body)
        tokens = form.get("token", [])
        if len(tokens) != 1 or not tokens[0]:
            raise InvalidRequestError("name exactly one token")
        inactive = Introspection(body={"active": False})
        verified = self._verify_any(tokens[0])
        if verified is None:
            return inactive
        typ, claims = verified
        now = self._broker.clock.now()
        if typ == TASK_TOKEN_TYP:
            task = await self._broker.database.read(
                lambda c: task_rows.get_task(c, str(claims["txn"]))
            )
            if (
                task is None
                or task.state is not TaskState.OPEN
                or task.expires_at <= now
                or self._broker.seal.ended(task.id)
            ):
                return inactive
        else:
            lease = await self._broker.database.read(
                lambda c: lease_rows.get_lease_by_handle(c, str(claims["jti"]))
            )
            if lease is None or lease.state is not LeaseState.ACTIVE:
                return inactive
            if lease.expires_at <= now or self._broker.seal.ended(
                lease.id, lease.task_id
            ):
                return inactive
        body_out: dict[str, Any] = {"active": True, "token_type": "DPoP"}
        body_out.update(
            {name: claims[name] for name in _INTROSPECTED_CLAIMS if name in claims}
        )
        return Introspection(body=body_out)
