"""A replay cache in the database, shared by every broker replica."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError

from gatepass.clock import Clock
from gatepass.store.database import Database
from gatepass.store.tables import seen_values

__all__ = ["SqlReplayCache"]


class SqlReplayCache:
    """
    Remember single-use values (assertion and DPoP ``jti``) in the database.

    The primary key makes check-and-record atomic across replicas. Use it when more
    than one broker process serves the same database; a single process can use the
    faster in-memory cache.

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
        key = f"{namespace}:{value}"[:300]
        now = self._clock.now()
        with self._database.transaction() as conn:
            conn.execute(
                delete(seen_values).where(
                    seen_values.c.key == key, seen_values.c.expires_at <= now
                )
            )
            try:
                with conn.begin_nested():
                    conn.execute(
                        seen_values.insert().values(key=key, expires_at=expires_at)
                    )
            except IntegrityError:
                return True
        return False

    def sweep(self) -> int:
        """Forget expired values; return how many."""
        with self._database.transaction() as conn:
            result = conn.execute(
                delete(seen_values).where(seen_values.c.expires_at <= self._clock.now())
            )
        return result.rowcount
