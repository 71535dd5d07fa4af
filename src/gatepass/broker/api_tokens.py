"""
API tokens: one per resource server, proxy or operator, each revocable on its own.

A token is shown once, when it is created, and stored only as its SHA-256
(DESIGN ground rule 8: a stolen database yields nothing usable). Creating and
revoking are audited (``api_token.create``, ``api_token.revoke``) in the same
transaction as the change. A revocation takes effect at the next request, since
every request looks its token up in the store (``broker/callers.py``).
"""

from __future__ import annotations

import re
import secrets

from gatepass.audit import Outcome
from gatepass.broker.callers import Caller
from gatepass.broker.context import BrokerContext
from gatepass.broker.trail import Attempt, AuditRecorder
from gatepass.errors import ConflictError, GatepassError, NotFoundError
from gatepass.models import ApiRole, ApiToken
from gatepass.secret import Secret, token_hash
from gatepass.store import Connection
from gatepass.store import api_tokens as token_rows

__all__ = ["ApiTokens", "new_api_token"]

_TOKEN_ID = re.compile(r"tok_[0-9a-f]{16}")


def new_api_token(role: ApiRole) -> tuple[str, Secret]:
    """
    Return a new token's id and value: 256 random bits, prefixed by its role.

    The ``gp_<role>_`` prefix lets secret scanners and people tell what a leaked
    token is; the bootstrap tokens of ``broker/first_start.py`` look the same.
    """
    return (
        f"tok_{secrets.token_hex(8)}",
        Secret(f"gp_{role.value}_{secrets.token_urlsafe(32)}"),
    )


class ApiTokens:
    """
    Create, list and revoke API tokens.

    Args:
        context: the broker's collaborators.
    """

    def __init__(self, context: BrokerContext) -> None:
        """Keep the context."""
        self._context = context

    async def create(
        self, caller: Caller, *, role: ApiRole, name: str
    ) -> tuple[ApiToken, Secret]:
        """
        Create a token; its value is returned once and never stored.

        Args:
            caller: the admin creating it.
            role: what the token may do.
            name: who will hold it (validated at the edge).

        Returns:
            The token's record and its value.

        Raises:
            StoreError: the token could not be recorded (no token exists then).
        """
        context = self._context
        token_id, value = new_api_token(role)
        now = context.clock.now()
        record = ApiToken(id=token_id, name=name, role=role, created_at=now)
        attempt = Attempt(
            kind="api_token.create",
            actor=caller.actor,
            subject=token_id,
            data={"role": role.value, "name": name},
        )

        def change(conn: Connection, audit: AuditRecorder) -> None:
            token_rows.insert_api_token(
                conn,
                token_id=token_id,
                token_hash=token_hash(value.reveal()),
                role=role,
                description=name,
                now=now,
            )
            audit.record(conn, attempt, Outcome.OK)

        await context.trail.write(change)
        return record, value

    async def find(self) -> list[ApiToken]:
        """Return every live token, oldest first."""
        return await self._context.database.read(token_rows.list_api_tokens)

    async def revoke(self, caller: Caller, token_id: str) -> ApiToken:
        """
        Revoke a token at once: the next request that carries it is refused.

        The last admin token cannot be revoked, so that the admin API never
        locks everyone out; create another admin token first.

        Returns:
            The token as it was.

        Raises:
            NotFoundError: no live token has this id (audited).
            ConflictError: it is the last admin token (audited).
        """
        context = self._context
        if _TOKEN_ID.fullmatch(token_id) is None:
            # Perhaps the token itself, pasted where its id belongs: never record
            # or repeat it (DESIGN ground rule 9).
            refusal = NotFoundError("no api token has this id (ids look like tok_…)")
            await context.trail.refuse(
                Attempt(kind="api_token.revoke", actor=caller.actor), refusal
            )
            raise refusal
        attempt = Attempt(kind="api_token.revoke", actor=caller.actor, subject=token_id)

        def change(conn: Connection, audit: AuditRecorder) -> ApiToken:
            found = token_rows.get_api_token(conn, token_id)
            if found is None:
                raise NotFoundError(f"no api token {token_id}")
            if (
                found.role is ApiRole.ADMIN
                and token_rows.count_api_tokens(conn, ApiRole.ADMIN) == 1
            ):
                raise ConflictError(
                    "cannot revoke the last admin token: create another admin "
                    "token first"
                )
            token_rows.revoke_api_token(conn, token_id)
            attempt.data.update(role=found.role.value, name=found.name)
            audit.record(conn, attempt, Outcome.OK)
            return found

        try:
            return await context.trail.write(change)
        except (NotFoundError, ConflictError) as error:
            await context.trail.refuse(attempt, error)
            raise

    async def reject(self, caller: Caller, kind: str, error: GatepassError) -> None:
        """
        Audit a token request refused at the edge (a malformed body).

        Raises:
            StoreError: the refusal could not be audited.
        """
        await self._context.trail.refuse(Attempt(kind=kind, actor=caller.actor), error)
