"""
Persistence of API tokens, by hash only.

A row holds the SHA-256 of a token, never the token: a stolen database yields
nothing that authenticates (DESIGN ground rule 8). Tokens are revoked by setting
``revoked_at``, never deleted, so the bootstrap tokens are not created again at the
next start once an operator has retired them (``broker/first_start.py`` counts
every row of a role, revoked or not).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Final, NamedTuple

from sqlalchemy import Connection, Row, Select, select, update

from gatepass.ids import OperatorId
from gatepass.models import AgentStatus, ApiRole, ApiToken, OperatorRole
from gatepass.store.anchors import note_ended
from gatepass.store.tables import api_tokens, operators

ENDED_KIND: Final = "api_tokens"
"""The anchor journal's kind for revoked API tokens."""

__all__ = [
    "ENDED_KIND",
    "ApiRole",
    "LiveToken",
    "TokenMatch",
    "count_api_tokens",
    "find_api_token",
    "get_api_token",
    "insert_api_token",
    "list_api_tokens",
    "live_tokens",
    "revoke_api_token",
    "revoke_operator_tokens",
]


class TokenMatch(NamedTuple):
    """
    The token a presented secret matched.

    Attributes:
        id: the token id.
        role: its role.
        operator_id: its operator (role ``operator``), else None.
    """

    id: str
    role: ApiRole
    operator_id: OperatorId | None


class LiveToken(NamedTuple):
    """
    A token that still authenticates: not revoked, and its operator (if any) active.

    Attributes:
        id: the token id.
        role: its role.
        operator_roles: its operator's roles (empty for a service token).
    """

    id: str
    role: ApiRole
    operator_roles: frozenset[OperatorRole]


def insert_api_token(
    conn: Connection,
    *,
    token_id: str,
    token_hash: str,
    role: ApiRole,
    description: str,
    now: dt.datetime,
    operator_id: OperatorId | None = None,
) -> None:
    """Record an API token's hash; the token itself is never stored."""
    conn.execute(
        api_tokens.insert().values(
            id=token_id,
            token_hash=token_hash,
            role=role.value,
            description=description[:200],
            created_at=now,
            operator_id=operator_id,
        )
    )


def find_api_token(conn: Connection, token_hash: str) -> TokenMatch | None:
    """
    Return the unrevoked token with this hash, or None.

    The lookup is by SHA-256 of a 256-bit random token, so an index lookup leaks no
    timing about the token itself. A revoked token is not found: it authenticates
    nothing.
    """
    row = conn.execute(
        select(api_tokens.c.id, api_tokens.c.role, api_tokens.c.operator_id).where(
            api_tokens.c.token_hash == token_hash,
            api_tokens.c.revoked_at.is_(None),
        )
    ).one_or_none()
    if row is None:
        return None
    operator_id = None if row.operator_id is None else OperatorId(row.operator_id)
    return TokenMatch(row.id, ApiRole(row.role), operator_id)


def _described() -> Select[Any]:
    # Every column but the hash: what a token list may show.
    return select(
        api_tokens.c.id,
        api_tokens.c.role,
        api_tokens.c.description,
        api_tokens.c.created_at,
        api_tokens.c.operator_id,
        api_tokens.c.revoked_at,
        operators.c.name.label("operator_name"),
    ).select_from(
        api_tokens.outerjoin(operators, operators.c.id == api_tokens.c.operator_id)
    )


def _to_token(row: Row[Any]) -> ApiToken:
    return ApiToken(
        id=row.id,
        role=ApiRole(row.role),
        description=row.description,
        created_at=row.created_at,
        operator_id=None if row.operator_id is None else OperatorId(row.operator_id),
        operator_name=row.operator_name,
        revoked_at=row.revoked_at,
    )


def get_api_token(conn: Connection, token_id: str) -> ApiToken | None:
    """Return the token with this id (never its hash), or None."""
    row = conn.execute(_described().where(api_tokens.c.id == token_id)).one_or_none()
    return None if row is None else _to_token(row)


def list_api_tokens(
    conn: Connection,
    *,
    operator_id: str | None = None,
    include_revoked: bool = True,
) -> list[ApiToken]:
    """Return tokens (never their hashes), oldest first, optionally filtered."""
    query = _described().order_by(api_tokens.c.created_at, api_tokens.c.id)
    if operator_id is not None:
        query = query.where(api_tokens.c.operator_id == operator_id)
    if not include_revoked:
        query = query.where(api_tokens.c.revoked_at.is_(None))
    return [_to_token(row) for row in conn.execute(query)]


def revoke_api_token(conn: Connection, token_id: str, now: dt.datetime) -> bool:
    """
    Revoke one token.

    Returns:
        True if it was live and is now revoked.
    """
    result = conn.execute(
        update(api_tokens)
        .where(api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    revoked = result.rowcount > 0
    # Irreversible: a database restored from backup must not bring it back.
    note_ended(conn, ENDED_KIND, [token_id] if revoked else [])
    return revoked


def revoke_operator_tokens(
    conn: Connection, operator_id: str, now: dt.datetime
) -> list[str]:
    """
    Revoke every live token of one operator.

    Returns:
        The ids of the tokens revoked, sorted.
    """
    live = api_tokens.c.operator_id == operator_id, api_tokens.c.revoked_at.is_(None)
    ids = sorted(conn.execute(select(api_tokens.c.id).where(*live)).scalars())
    if ids:
        conn.execute(update(api_tokens).where(*live).values(revoked_at=now))
    note_ended(conn, ENDED_KIND, ids)
    return ids


def live_tokens(conn: Connection, *, lock: bool = False) -> list[LiveToken]:
    """
    Return every token that still authenticates, with its operator's roles.

    Args:
        conn: the connection.
        lock: lock the token rows until the transaction ends (PostgreSQL; SQLite
            writes are serialized anyway). A use case that must keep one token
            able to administer reads them locked, so two concurrent revocations
            cannot each see the other's token as the one that remains.
    """
    query = (
        select(api_tokens.c.id, api_tokens.c.role, operators.c.roles)
        .select_from(
            api_tokens.outerjoin(operators, operators.c.id == api_tokens.c.operator_id)
        )
        .where(
            api_tokens.c.revoked_at.is_(None),
            (api_tokens.c.operator_id.is_(None))
            | (operators.c.status == AgentStatus.ACTIVE.value),
        )
        .order_by(api_tokens.c.id)
    )
    if lock:
        query = query.with_for_update(of=api_tokens)
    return [
        LiveToken(
            row.id,
            ApiRole(row.role),
            frozenset(OperatorRole(role) for role in row.roles or ()),
        )
        for row in conn.execute(query)
    ]


def count_api_tokens(conn: Connection, role: ApiRole | None = None) -> int:
    """
    Return how many API tokens exist (of ``role``, if given), revoked ones included.

    Revoked tokens count, so that a retired bootstrap token is not made again.
    """
    query = select(api_tokens.c.id)
    if role is not None:
        query = query.where(api_tokens.c.role == role.value)
    return len(conn.execute(query).all())
