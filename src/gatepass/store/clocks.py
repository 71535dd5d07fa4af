"""
The times a restarted broker anchors its clock to.

A broker's clock advances with the kernel's boot-time clock once it runs (see
``gatepass.clock``); these are where it starts: the database server's clock on
PostgreSQL (one clock for every replica) and, on any backend, the newest time the
database already holds, so that a restart with the wall clock set back never makes
recorded leases younger than they are.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Connection, func, select

from gatepass.store.tables import audit_events, leases, tasks

__all__ = ["database_time", "newest_recorded_time"]


def database_time(conn: Connection) -> dt.datetime | None:
    """Return the database server's current time, or None when it has no clock."""
    if conn.dialect.name != "postgresql":
        # SQLite runs in this process: its clock is the wall clock we already read.
        return None
    value = conn.exec_driver_sql("SELECT now()").scalar_one()
    if not isinstance(value, dt.datetime):  # pragma: no cover - driver contract
        return None
    return value.astimezone(dt.UTC)


def newest_recorded_time(conn: Connection) -> dt.datetime | None:
    """Return the newest time in the audit log, tasks or leases, or None if empty."""
    found = [
        conn.execute(select(func.max(column))).scalar_one_or_none()
        for column in (audit_events.c.at, tasks.c.created_at, leases.c.issued_at)
    ]
    times = [_aware(value) for value in found if isinstance(value, dt.datetime)]
    return max(times) if times else None


def _aware(value: dt.datetime) -> dt.datetime:
    # The store keeps UTC everywhere; a backend without time zones hands back naive
    # values.
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value
