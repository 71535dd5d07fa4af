"""
Single-use values in the database: durable across restarts, shared by replicas.

The broker records the DPoP proof and assertion ids a request spent **in the same
transaction** as the request's effect (:func:`claim_single_use`), so a proof is
spent exactly when its task or lease commits, and a proof accepted just before a
``kill -9`` is refused after the restart (issue 7 item 14). The in-memory cache in
front of it only makes a replay inside one process fail early.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import Connection, bindparam, delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Insert

from gatepass.clock import Clock
from gatepass.single_use import SingleUse
from gatepass.store.database import Database
from gatepass.store.prepared import DriverStatement
from gatepass.store.tables import UTCDateTime, seen_values

__all__ = ["SqlReplayCache", "claim_single_use", "forget_expired_values"]


def _claim_statement(dialect: str) -> Insert:
    # Insert the value, or take over its row only when the stored one has expired;
    # RETURNING yields nothing exactly when a live row already holds it (a replay).
    # One statement, so two replicas claiming the same value cannot both succeed.
    module = postgresql if dialect == "postgresql" else sqlite
    statement = module.insert(seen_values).values(
        key=bindparam("key"),
        expires_at=bindparam("expires_at", type_=UTCDateTime),
    )
    upsert: Insert = statement.on_conflict_do_update(
        index_elements=[seen_values.c.key],
        set_={"expires_at": statement.excluded.expires_at},
        where=seen_values.c.expires_at <= bindparam("now", type_=UTCDateTime),
    ).returning(seen_values.c.key)
    return upsert


# Built once per dialect and reused: this runs on the token path.
_CLAIM = {
    name: DriverStatement(_claim_statement(name)) for name in ("sqlite", "postgresql")
}


def claim_single_use(
    conn: Connection, values: Sequence[SingleUse | None], now: dt.datetime
) -> SingleUse | None:
    """
    Record single-use values inside the caller's transaction.

    Call it first in the transaction that commits what the values were spent on,
    so that a refusal leaves nothing else written.

    Args:
        conn: the caller's write transaction.
        values: the values to spend; None entries are skipped.
        now: the current time (expired rows may be taken over).

    Returns:
        The first value that was already spent and has not expired (a replay), or
        None when every value was recorded.
    """
    statement = _CLAIM[conn.dialect.name]
    for value in values:
        if value is None or value.expires_at <= now:
            continue
        params = {"key": value.key, "expires_at": value.expires_at, "now": now}
        if statement.first(conn, params) is None:
            return value
    return None


def forget_expired_values(
    conn: Connection, now: dt.datetime, *, limit: int = 5000
) -> int:
    """
    Delete single-use values that can no longer be presented.

    Returns:
        How many were deleted.
    """
    expired = (
        seen_values.select()
        .with_only_columns(seen_values.c.key)
        .where(seen_values.c.expires_at <= now)
        .limit(limit)
    )
    keys = [row.key for row in conn.execute(expired)]
    if not keys:
        return 0
    result = conn.execute(
        delete(seen_values).where(
            seen_values.c.key.in_(keys), seen_values.c.expires_at <= now
        )
    )
    return result.rowcount


class SqlReplayCache:
    """
    Remember single-use values (assertion and DPoP ``jti``) in the database.

    The primary key makes check-and-record atomic across replicas. A
    :class:`ReplayCache` for components that verify proofs outside a broker
    transaction (each call is its own transaction).

    Args:
        database: the store.
        clock: the time source.
    """

    def __init__(self, database: Database, *, clock: Clock) -> None:
        """Keep the collaborators."""
        self._database = database
        self._clock = clock

    def seen(self, namespace: str, value: str, expires_at: dt.datetime) -> bool:
        """
        Record ``value``; tell whether it had been recorded before and not expired.

        Args:
            namespace: ``dpop`` or ``assertion``.
            value: the single-use value.
            expires_at: when the value may be forgotten.
        """
        now = self._clock.now()
        with self._database.transaction() as conn:
            replayed = claim_single_use(
                conn, [SingleUse(namespace, value, expires_at)], now
            )
        return replayed is not None

    def sweep(self) -> int:
        """Forget expired values; return how many."""
        with self._database.transaction() as conn:
            return forget_expired_values(conn, self._clock.now())
