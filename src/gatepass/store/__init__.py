"""
The store: SQLAlchemy Core persistence on SQLite (embedded) and PostgreSQL.

Each aggregate has one module of plain functions taking a ``Connection``, so a use
case composes several of them in one transaction (a lease, its audit record and the
task check commit together). Only this package imports SQLAlchemy; callers that
compose store functions in a transaction name its type ``gatepass.store.Connection``.
"""

from __future__ import annotations

from sqlalchemy import Connection

from gatepass.store import (
    agents,
    anchors,
    api_tokens,
    approvals,
    audit_log,
    clocks,
    console_sessions,
    console_views,
    context_signals,
    idempotency,
    keys,
    leases,
    operators,
    outbox,
    replay,
    ssf,
    tasks,
)
from gatepass.store.api_tokens import ApiRole
from gatepass.store.database import Database
from gatepass.store.replay import SqlReplayCache

__all__ = [
    "ApiRole",
    "Connection",
    "Database",
    "SqlReplayCache",
    "agents",
    "anchors",
    "api_tokens",
    "approvals",
    "audit_log",
    "clocks",
    "console_sessions",
    "console_views",
    "context_signals",
    "idempotency",
    "keys",
    "leases",
    "operators",
    "outbox",
    "replay",
    "ssf",
    "tasks",
]
