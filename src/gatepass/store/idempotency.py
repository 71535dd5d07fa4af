"""
Idempotency keys of credential requests: a retry gets the same lease, never a twin.

A client that did not hear the answer to ``POST /v1/credentials`` (a timeout, a
dropped connection) repeats it with the same ``Idempotency-Key``; the broker then
answers with the lease the first request made instead of minting a second role.
The key is claimed in the same transaction as the pending lease, so two concurrent
requests with one key can never both create a credential.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Insert

from gatepass.store.tables import UTCDateTime, idempotency_keys

__all__ = [
    "IdempotencyRecord",
    "claim_key",
    "find_key",
    "forget_expired_keys",
    "record_response",
    "release_key",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class IdempotencyRecord:
    """
    What the first request with a key made.

    Attributes:
        fingerprint: the hash of that request's parameters.
        lease_id: its lease.
        response: the non-secret answer, once the credential was handed over;
            None while that request is still in progress.
    """

    fingerprint: str
    lease_id: str
    response: dict[str, Any] | None


def _claim_statement(dialect: str) -> Insert:
    module = postgresql if dialect == "postgresql" else sqlite
    statement: Insert = (
        module.insert(idempotency_keys)
        .values(
            task_id=bindparam("task_id"),
            key_hash=bindparam("key_hash"),
            fingerprint=bindparam("fingerprint"),
            lease_id=bindparam("lease_id"),
            expires_at=bindparam("expires_at", type_=UTCDateTime),
        )
        .on_conflict_do_nothing()
        .returning(idempotency_keys.c.lease_id)
    )
    return statement


_CLAIM = {name: _claim_statement(name) for name in ("sqlite", "postgresql")}


def claim_key(
    conn: Connection,
    *,
    task_id: str,
    key_hash: str,
    fingerprint: str,
    lease_id: str,
    expires_at: dt.datetime,
) -> bool:
    """
    Claim a key for a new lease inside the caller's transaction.

    Returns:
        False when the key is already claimed (by an earlier or concurrent request).
    """
    params = {
        "task_id": task_id,
        "key_hash": key_hash,
        "fingerprint": fingerprint,
        "lease_id": lease_id,
        "expires_at": expires_at,
    }
    return conn.execute(_CLAIM[conn.dialect.name], params).first() is not None


def find_key(conn: Connection, task_id: str, key_hash: str) -> IdempotencyRecord | None:
    """Return what the first request with this key made, or None."""
    row = conn.execute(
        select(
            idempotency_keys.c.fingerprint,
            idempotency_keys.c.lease_id,
            idempotency_keys.c.response,
        ).where(
            idempotency_keys.c.task_id == task_id,
            idempotency_keys.c.key_hash == key_hash,
        )
    ).one_or_none()
    if row is None:
        return None
    return IdempotencyRecord(
        fingerprint=row.fingerprint, lease_id=row.lease_id, response=row.response
    )


def record_response(conn: Connection, lease_id: str, response: dict[str, Any]) -> None:
    """Keep the non-secret answer of the request that made ``lease_id``."""
    conn.execute(
        update(idempotency_keys)
        .where(idempotency_keys.c.lease_id == lease_id)
        .values(response=response)
    )


def release_key(conn: Connection, lease_id: str) -> None:
    """Forget the key of a request that failed, so that a retry may try again."""
    conn.execute(
        delete(idempotency_keys).where(idempotency_keys.c.lease_id == lease_id)
    )


def forget_expired_keys(conn: Connection, now: dt.datetime) -> int:
    """Delete keys whose task can no longer issue; return how many."""
    result = conn.execute(
        delete(idempotency_keys).where(idempotency_keys.c.expires_at <= now)
    )
    return result.rowcount
