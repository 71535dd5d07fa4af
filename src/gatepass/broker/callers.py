"""
Who calls the admin API: API tokens, stored as hashes, each with one role.

``admin`` may do everything; ``introspect`` only RFC 7662 (given to resource
servers); ``proxy`` introspection, the revocation stream and proxied-call audit.
"""

from __future__ import annotations

from dataclasses import dataclass

from gatepass.audit import Outcome
from gatepass.broker.context import BrokerContext
from gatepass.broker.trail import Attempt
from gatepass.errors import AccessDeniedError, AuthenticationError
from gatepass.secret import token_hash
from gatepass.store import ApiRole, api_tokens

__all__ = ["ADMIN_ONLY", "Caller", "Callers"]

ADMIN_ONLY = frozenset({ApiRole.ADMIN})


@dataclass(frozen=True, slots=True)
class Caller:
    """
    An authenticated API caller.

    Attributes:
        token_id: the API token's id (never the token).
        role: what it may do.
    """

    token_id: str
    role: ApiRole

    @property
    def actor(self) -> str:
        """Return the audit actor name."""
        return f"admin:{self.token_id}"


class Callers:
    """
    Authenticate API tokens.

    Args:
        context: the broker's collaborators.
    """

    def __init__(self, context: BrokerContext) -> None:
        """Keep the context."""
        self._context = context

    async def authenticate(
        self, authorization: str | None, *, roles: frozenset[ApiRole] = ADMIN_ONLY
    ) -> Caller:
        """
        Check an ``Authorization: Bearer`` API token.

        Raises:
            AuthenticationError: no token, or an unknown one (audited).
            AccessDeniedError: the token's role does not allow the operation.
        """
        scheme, _, credential = (authorization or "").partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            raise AuthenticationError(
                "an api token is required (Authorization: Bearer)"
            )
        digest = token_hash(credential)
        found = await self._context.database.read(
            lambda c: api_tokens.find_api_token(c, digest)
        )
        # Looked up by the SHA-256 of a 256-bit random token: the index lookup
        # leaks no timing about the token itself (store/api_tokens.py).
        if found is None:
            attempt = Attempt(kind="admin.auth", data={"token_hash": digest})
            await self._context.trail.record(attempt, Outcome.DENY)
            raise AuthenticationError("unknown api token")
        caller = Caller(found[0], found[1])
        if self._context.seal.ended(caller.token_id):
            # Sealed after a restore: the journal says this token was revoked,
            # although the restored row says otherwise (docs/audit.md).
            attempt = Attempt(kind="admin.auth", data={"token_hash": digest})
            await self._context.trail.record(attempt, Outcome.DENY)
            raise AuthenticationError("unknown api token")
        if caller.role not in roles:
            raise AccessDeniedError(f"a {caller.role.value} token may not do this")
        return caller
