"""Persistence of admin API tokens, by hash only."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Connection, select

from gatepass.models import ApiRole
from gatepass.store.tables import api_tokens

__all__ = ["ApiRole", "count_api_tokens", "find_api_token", "insert_api_token"]


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
    query = select(api_tokens.c.id)
    if role is not None:
        query = query.where(api_tokens.c.role == role.value)
    return len(conn.execute(query).all())
