"""
Persistence of admin API tokens, by hash only.

Revoking a token deletes its row: nothing is left that a request could match, and
the audit log keeps the fact (``api_token.revoke``). A revocation is irreversible,
so :func:`revoke_api_token` notes it for the anchor journal (``store/anchors.py``):
a database restored from before the revocation brings the row back, the broker
finds it still live at start and seals, and reconcile deletes it again.
"""

from __future__ import annotations

import datetime as dt
from typing import Final

from sqlalchemy import Connection, delete, func, select

from gatepass.models import ApiRole, ApiToken
from gatepass.store.anchors import note_ended
from gatepass.store.tables import api_tokens

__all__ = [
    "ENDED_KIND",
    "ApiRole",
    "count_api_tokens",
    "delete_api_tokens",
    "find_api_token",
    "get_api_token",
    "insert_api_token",
    "list_api_tokens",
    "revoke_api_token",
]

ENDED_KIND: Final = "api_tokens"
"""The anchor journal's kind for revoked API tokens."""


def insert_api_token(
    conn: Connection,
    *,
    token_id: str,
    token_hash: str,
    role: ApiRole,
    description: str,
    now: dt.datetime,
) -> None:
    """Record an API token's hash; the token itself is never stored."""
    conn.execute(
        api_tokens.insert().values(
            id=token_id,
            token_hash=token_hash,
            role=role.value,
            description=description[:200],
            created_at=now,
        )
    )


def find_api_token(conn: Connection, token_hash: str) -> tuple[str, ApiRole] | None:
    """
    Return the id and role of the token with this hash, or None.

    The lookup is by SHA-256 of a 256-bit random token, so an index lookup leaks no
    timing about the token itself.
    """
    row = conn.execute(
        select(api_tokens.c.id, api_tokens.c.role).where(
            api_tokens.c.token_hash == token_hash
        )
    ).one_or_none()
    return None if row is None else (row.id, ApiRole(row.role))


def count_api_tokens(conn: Connection, role: ApiRole | None = None) -> int:
    """Return how many API tokens exist (of ``role``, if given)."""
    query = select(func.count()).select_from(api_tokens)
    if role is not None:
        query = query.where(api_tokens.c.role == role.value)
    return int(conn.execute(query).scalar_one())


_COLUMNS = (
    api_tokens.c.id,
    api_tokens.c.description,
    api_tokens.c.role,
    api_tokens.c.created_at,
)


def _to_token(token_id: str, name: str, role: str, created_at: dt.datetime) -> ApiToken:
    return ApiToken(id=token_id, name=name, role=ApiRole(role), created_at=created_at)


def list_api_tokens(conn: Connection) -> list[ApiToken]:
    """Return every live API token, oldest first (never a hash)."""
    query = select(*_COLUMNS).order_by(api_tokens.c.created_at, api_tokens.c.id)
    return [_to_token(*row) for row in conn.execute(query)]


def get_api_token(conn: Connection, token_id: str) -> ApiToken | None:
    """Return the live API token with this id, or None."""
    row = conn.execute(
        select(*_COLUMNS).where(api_tokens.c.id == token_id)
    ).one_or_none()
    return None if row is None else _to_token(*row)


def revoke_api_token(conn: Connection, token_id: str) -> ApiToken | None:
    """
    Revoke an API token: delete its row and note the ending for the journal.

    Returns:
        The token as it was, or None when no live token has this id.
    """
    found = get_api_token(conn, token_id)
    if found is None:
        return None
    delete_api_tokens(conn, [token_id])
    return found


def delete_api_tokens(conn: Connection, token_ids: list[str]) -> list[str]:
    """
    Delete the rows of these API tokens and note them ended (reconcile uses it too).

    Returns:
        The ids that had a row.
    """
    if not token_ids:
        return []
    present = [
        str(row.id)
        for row in conn.execute(
            select(api_tokens.c.id).where(api_tokens.c.id.in_(token_ids))
        )
    ]
    if present:
        conn.execute(delete(api_tokens).where(api_tokens.c.id.in_(present)))
        note_ended(conn, ENDED_KIND, present)
    return sorted(present)
