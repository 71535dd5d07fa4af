"""
RFC 7662 introspection and RFC 7009 revocation of the broker's own tokens.

Both take a token of either kind (task token or access token), verify it as the
broker's own (signature, issuer, explicit ``typ``, its one audience) and look up
its task or lease: a token is active only while its task is open, or its lease is
active and unexpired. Revocation needs no client authentication — possession of the
token is the authorization, and revoking only takes power away — but a request that
names a client may revoke only that client's tokens (RFC 7009 §2.1).
"""

from __future__ import annotations

import hmac
from typing import Any

from gatepass.audit import Outcome
from gatepass.broker.closing import Closing
from gatepass.broker.context import BrokerContext
from gatepass.broker.requests import Introspection, RevocationRequest
from gatepass.broker.reuse import ReuseDetector
from gatepass.broker.trail import Attempt, Suspicion
from gatepass.errors import (
    ConflictError,
    GatepassError,
    InvalidClientError,
    NotFoundError,
    TokenError,
)
from gatepass.models import LeaseState, TaskState
from gatepass.secret import token_hash
from gatepass.store import leases as lease_rows
from gatepass.store import tasks as task_rows
from gatepass.tokens import ACCESS_TOKEN_TYP, TASK_TOKEN_TYP, unverified_claims

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
    # Delegated tasks (RFC 8693 §4.1): the verified actor chain, the parent task
    # and the tree's root.
    "act",
    "parent",
    "lineage",
)
_INACTIVE = Introspection(body={"active": False})


class TokenStatus:
    """
    Answer "is this token still good?" and "make it not good".

    Args:
        context: the broker's collaborators.
        closing: closes tasks and revokes leases.
        reuse: told when a revoked access token is introspected (a resource
            server saw it used after its task or lease ended).
    """

    def __init__(
        self,
        context: BrokerContext,
        closing: Closing,
        *,
        reuse: ReuseDetector | None = None,
    ) -> None:
        """Keep the collaborators."""
        self._context = context
        self._closing = closing
        self._reuse = reuse

    def _verify_any(self, token: str) -> tuple[str, dict[str, Any]] | None:
        """Verify a broker token of either kind; None if it is not valid."""
        peeked = unverified_claims(token)
        if peeked is None or peeked[0] is None:
            return None
        typ, unverified = peeked[0].lower(), peeked[1]
        audience = unverified.get("aud")
        if typ not in {TASK_TOKEN_TYP, ACCESS_TOKEN_TYP} or not isinstance(
            audience, str
        ):
            return None
        try:
            claims = self._context.verifier.verify(token, typ=typ, audience=audience)
        except TokenError:
            return None
        return typ, claims

    async def revoke(self, request: RevocationRequest) -> None:
        """
        Serve RFC 7009 revocation.

        Unknown, invalid and already-revoked tokens are accepted silently (RFC 7009
        §2.2); the attempt is audited either way.

        Raises:
            InvalidClientError: the request names a client the token was not
                issued to (the token stays live).
        """
        context = self._context
        attempt = Attempt(kind="token.revoke")
        attempt.data["token_hash"] = token_hash(request.token)
        verified = self._verify_any(request.token)
        if verified is None:
            attempt.data["result"] = "not an active gatepass token"
            await context.trail.record(attempt, Outcome.OK)
            return
        typ, claims = verified
        attempt.actor = str(claims.get("sub", "unknown"))
        if request.client_id is not None and not hmac.compare_digest(
            request.client_id.encode(), str(claims.get("client_id", "")).encode()
        ):
            # RFC 7009 §2.1: a request that identifies a client may revoke only the
            # tokens issued to that client; anything else is refused.
            attempt.data["client_id"] = request.client_id[:64]
            refusal = InvalidClientError("token was not issued to this client")
            await context.trail.refuse(attempt, refusal)
            raise refusal
        try:
            if typ == TASK_TOKEN_TYP:
                await self._closing.close_task(
                    str(claims["txn"]), actor=attempt.actor, reason="task token revoked"
                )
            else:
                lease = await context.database.read(
                    lambda c: lease_rows.get_lease_by_handle(c, str(claims["jti"]))
                )
                if lease is not None:
                    await self._closing.revoke_lease(
                        lease.id, actor=attempt.actor, reason="token revoked"
                    )
        except (ConflictError, NotFoundError):
            # Already revoked or closed: RFC 7009 §2.2 answers 200 all the same.
            return

    async def reject(self, error: GatepassError) -> None:
        """
        Audit a revocation request refused before it parsed.

        Raises:
            StoreError: the refusal could not be audited.
        """
        await self._context.trail.refuse(Attempt(kind="token.revoke"), error)

    async def introspect(self, token: str) -> Introspection:
        """Serve RFC 7662 introspection of a broker token."""
        context = self._context
        verified = self._verify_any(token)
        if verified is None:
            return _INACTIVE
        typ, claims = verified
        now = context.clock.now()
        seal = context.seal
        if typ == TASK_TOKEN_TYP:
            task = await context.database.read(
                lambda c: task_rows.get_task(c, str(claims["txn"]))
            )
            if (
                task is None
                or task.state is not TaskState.OPEN
                or task.expires_at <= now
                or seal.ended(task.id)
            ):
                return _INACTIVE
        else:
            lease = await context.database.read(
                lambda c: lease_rows.get_lease_by_handle(c, str(claims["jti"]))
            )
            if (
                lease is None
                or lease.state is not LeaseState.ACTIVE
                or lease.expires_at <= now
                or seal.ended(lease.id, lease.task_id)
            ):
                if (
                    lease is not None
                    and self._reuse is not None
                    and lease.state is not LeaseState.ACTIVE
                    and lease.expires_at > now
                ):
                    # Revoked before it expired, and still presented somewhere.
                    await self._reuse.report(
                        Suspicion(
                            "closed_task_use",
                            {
                                "token_hash": token_hash(token),
                                "lease_id": lease.id,
                                "lease_state": lease.state.value,
                                "audience": str(claims.get("aud", ""))[:200],
                            },
                        ),
                        agent_id=lease.agent_id,
                        task_id=lease.task_id,
                        seen_at="token.introspect",
                        refusal="inactive",
                    )
                return _INACTIVE
        body: dict[str, Any] = {"active": True, "token_type": "DPoP"}
        body.update(
            {name: claims[name] for name in _INTROSPECTED_CLAIMS if name in claims}
        )
        return Introspection(body=body)
