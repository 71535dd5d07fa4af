"""
API tokens: made, listed and revoked; and the rule that one can always administer.

Service tokens serve programs (a resource server introspecting, the proxy, an
automation that administers); operators' tokens are made by ``broker/operators.py``
with the same :func:`mint_token`. A token is shown once, when it is made, and only
its SHA-256 is stored. Revoking a token takes effect at its next use: nothing
caches an authenticated token.

Whatever is revoked or disabled, one credential able to administer must remain
(:func:`keep_one_administrator`), or nobody could ever change the broker again
short of editing its database.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Collection
from dataclasses import dataclass

from gatepass.audit import Outcome
from gatepass.broker.callers import Caller, Permission, permissions_of
from gatepass.broker.context import BrokerContext
from gatepass.broker.requests import ServiceTokenRequest
from gatepass.broker.trail import Attempt, AuditRecorder
from gatepass.errors import (
    ConflictError,
    GatepassError,
    InvalidRequestError,
    NotFoundError,
)
from gatepass.models import ApiRole, ApiToken, Operator
from gatepass.secret import Secret, token_hash
from gatepass.store import Connection, api_tokens

__all__ = [
    "IssuedToken",
    "ServiceTokens",
    "keep_one_administrator",
    "mint_token",
    "token_attempt",
]

_SERVICE_ROLES = frozenset({ApiRole.ADMIN, ApiRole.INTROSPECT, ApiRole.PROXY})
_MAX_DESCRIPTION = 200


@dataclass(frozen=True, slots=True, kw_only=True)
class IssuedToken:
    """
    A token just made: the only moment the token itself exists outside its holder.

    Attributes:
        token: the token; reveal it once, to whoever asked for it.
        record: the token as lists show it.
        operator: the operator it belongs to, for an operator's token.
    """

    token: Secret
    record: ApiToken
    operator: Operator | None = None


def mint_token(
    conn: Connection,
    *,
    role: ApiRole,
    description: str,
    context: BrokerContext,
    operator: Operator | None = None,
) -> IssuedToken:
    """
    Make a token and record its hash in the caller's transaction.

    The token is 256 bits from the OS's CSPRNG with a readable prefix naming its
    role (``gp_operator_…``), the same shape as the bootstrap tokens.
    """
    token = Secret(f"gp_{role.value}_{secrets.token_urlsafe(32)}")
    now = context.clock.now()
    record = ApiToken(
        id=f"tok_{secrets.token_hex(8)}",
        role=role,
        description=description[:_MAX_DESCRIPTION],
        created_at=now,
        operator_id=None if operator is None else operator.id,
        operator_name=None if operator is None else operator.name,
    )
    api_tokens.insert_api_token(
        conn,
        token_id=record.id,
        token_hash=token_hash(token.reveal()),
        role=role,
        description=record.description,
        now=now,
        operator_id=record.operator_id,
    )
    return IssuedToken(token=token, record=record, operator=operator)


def token_attempt(caller: Caller, issued: IssuedToken) -> Attempt:
    """Return the ``token.create`` record of a token made (never the token)."""
    data: dict[str, object] = {
        "role": issued.record.role.value,
        "description": issued.record.description,
    }
    if issued.operator is not None:
        data["operator"] = issued.operator.name
    return Attempt(
        kind="token.create", actor=caller.actor, subject=issued.record.id, data=data
    )


def keep_one_administrator(conn: Connection, *, removing: Collection[str]) -> None:
    """
    Refuse a change that would leave no live token able to administer.

    The live tokens are read locked (PostgreSQL), so two concurrent revocations
    cannot each count the other's token as the one that remains.

    Args:
        conn: the change's transaction.
        removing: the ids of the tokens the change revokes.

    Raises:
        ConflictError: every token still able to administer is in ``removing``.
    """
    administering = {
        token.id
        for token in api_tokens.live_tokens(conn, lock=True)
        if Permission.ADMINISTER in permissions_of(token.role, token.operator_roles)
    }
    if administering and administering <= set(removing):
        raise ConflictError(
            "this is the last credential able to administer: "
            "add an admin operator or an admin token first"
        )


def _check(request: ServiceTokenRequest) -> None:
    if request.role not in _SERVICE_ROLES:
        raise InvalidRequestError(
            "role must be one of admin, introspect, proxy "
            "(operators' tokens come from /v1/admin/operators/{name}/tokens)"
        )
    if not 0 < len(request.description) <= _MAX_DESCRIPTION:
        raise InvalidRequestError("description must be 1 to 200 characters")


class ServiceTokens:
    """
    Make, list and revoke API tokens.

    Args:
        context: the broker's collaborators.
    """

    def __init__(self, context: BrokerContext) -> None:
        """Keep the context."""
        self._context = context

    async def create(self, caller: Caller, request: ServiceTokenRequest) -> IssuedToken:
        """
        Make a service token (introspect, proxy or admin).

        Raises:
            InvalidRequestError: an operator role or a bad description (audited).
        """
        try:
            _check(request)
        except GatepassError as error:
            await self.reject(caller, "token.create", error)
            raise
        context = self._context

        def create(conn: Connection, audit: AuditRecorder) -> IssuedToken:
            issued = mint_token(
                conn,
                role=request.role,
                description=request.description,
                context=context,
            )
            audit.record(conn, token_attempt(caller, issued), Outcome.OK)
            return issued

        return await context.trail.write(create)

    async def find(
        self, *, operator_id: str | None = None, include_revoked: bool = True
    ) -> list[ApiToken]:
        """Return API tokens (never a token or its hash), oldest first."""
        return await self._context.database.read(
            lambda c: api_tokens.list_api_tokens(
                c, operator_id=operator_id, include_revoked=include_revoked
            )
        )

    async def revoke(self, caller: Caller, token_id: str) -> ApiToken:
        """
        Revoke a token (a service token or an operator's); it stops working at once.

        Raises:
            NotFoundError: no such token (audited).
            ConflictError: it is already revoked, or it is the last credential
                able to administer (audited).
        """
        context = self._context
        now = context.clock.now()
        attempt = Attempt(kind="token.revoke", actor=caller.actor, subject=token_id)

        def revoke(conn: Connection, audit: AuditRecorder) -> ApiToken:
            found = api_tokens.get_api_token(conn, token_id)
            if found is None:
                raise NotFoundError("no such token")
            if found.revoked_at is not None:
                raise ConflictError("token is already revoked")
            keep_one_administrator(conn, removing={token_id})
            api_tokens.revoke_api_token(conn, token_id, now)
            attempt.data = {"role": found.role.value}
            if found.operator_name is not None:
                attempt.data["operator"] = found.operator_name
            audit.record(conn, attempt, Outcome.OK)
            return dataclasses.replace(found, revoked_at=now)

        try:
            return await context.trail.write(revoke)
        except GatepassError as error:
            attempt.data = {}
            await context.trail.refuse(attempt, error)
            raise

    async def reject(self, caller: Caller, kind: str, error: GatepassError) -> None:
        """
        Audit a token request refused before it reached the store (a bad body).

        Raises:
            StoreError: the refusal could not be audited.
        """
        await self._context.trail.refuse(Attempt(kind=kind, actor=caller.actor), error)
