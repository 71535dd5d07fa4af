"""
The statements of the PostgreSQL engine, composed from identifiers only.

Nothing here takes text from a request: role names were checked against
``^gp_[a-z2-7]{26}$``, schema and object names come from the validated
configuration and are composed with :class:`psycopg.sql.Identifier`, and privilege
keywords are emitted from :data:`PRIVILEGE_SQL`, never from configuration text.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

import psycopg
from psycopg import sql

from gatepass.engines.postgres.settings import PostgresGrant
from gatepass.errors import EngineError

__all__ = [
    "HANDLE",
    "PRIVILEGE_SQL",
    "TERMINATE_WAIT_MS",
    "Connection",
    "admin_gap",
    "created_at",
    "distinct",
    "fetchone",
    "fetchone_or_none",
    "grant_statements",
    "lock_acls",
    "lock_name",
    "terminate",
    "unlock_name",
]

Connection = psycopg.AsyncConnection[tuple[Any, ...]]

TERMINATE_WAIT_MS: Final = 3000
HANDLE: Final = re.compile(r"gp_[a-z2-7]{26}")
_COMMENT: Final = re.compile(
    r"gatepass installation=(?P<installation>\S+) mount=(?P<mount>\S+)"
    r" lease=(?P<lease>\S+) created=(?P<created>\S+)"
)
# Advisory-lock namespace ("gp"); serializes issue, revoke and reap of one name.
_LOCK_SPACE: Final = 0x67700000
# Concurrent GRANTs and DROP OWNEDs rewrite the same ACL rows (pg_class,
# pg_namespace, pg_database) and fail with "tuple concurrently updated"; the
# transactions that change ACLs take this per-database lock first.
_ACL_LOCK: Final = (0x67700001, 0)
PRIVILEGE_SQL: Final[Mapping[str, sql.SQL]] = {
    keyword: sql.SQL(keyword)
    for keyword in (
        "SELECT",
        "INSERT",
        "UPDATE",
        "DELETE",
        "TRUNCATE",
        "REFERENCES",
        "TRIGGER",
        "USAGE",
    )
}


def distinct(groups: Iterable[Iterable[PostgresGrant]]) -> list[PostgresGrant]:
    """Return the grants of every action once each, in order."""
    seen: list[PostgresGrant] = []
    for group in groups:
        for grant in group:
            if grant not in seen:
                seen.append(grant)
    return seen


def grant_statements(
    database: str, grants: Sequence[PostgresGrant], role: sql.Identifier
) -> list[sql.Composed]:
    """Compose the GRANT statements of a credential (identifiers only)."""
    statements = [
        sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
            sql.Identifier(database), role
        )
    ]
    schemas: list[str] = []
    for grant in distinct([grants]):
        if grant.schema_name not in schemas:
            schemas.append(grant.schema_name)
            statements.append(
                sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(
                    sql.Identifier(grant.schema_name), role
                )
            )
        privileges = sql.SQL(", ").join(PRIVILEGE_SQL[p] for p in grant.privileges)
        schema = sql.Identifier(grant.schema_name)
        on_tables = grant.tables is not None
        every, one = ("TABLES", "TABLE") if on_tables else ("SEQUENCES", "SEQUENCE")
        if "*" in grant.objects:
            target = sql.SQL("ALL {} IN SCHEMA {}").format(sql.SQL(every), schema)
        else:
            names = sql.SQL(", ").join(
                sql.Identifier(grant.schema_name, name) for name in grant.objects
            )
            target = sql.SQL("{} {}").format(sql.SQL(one), names)
        statements.append(
            sql.SQL("GRANT {} ON {} TO {}").format(privileges, target, role)
        )
    return statements


async def _grant_option_gap(
    conn: Connection, grant: PostgresGrant
) -> tuple[str, str, bool] | None:
    """
    Find an object of ``grant`` the admin cannot pass a privilege on.

    Returns:
        ``(object name, privilege, absent)`` of the first gap, absent meaning the
        object does not exist; None when the admin holds every grant option.
    """
    on_tables = grant.tables is not None
    # Every object the grant covers, with each privilege: absent (no oid) or
    # lacking the grant option.
    cursor = await conn.execute(
        sql.SQL(
            "WITH objects AS (SELECT c.oid, c.relname FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = %(schema)s AND c.relkind::text = ANY(%(kinds)s)),"
            " wanted AS (SELECT relname AS name FROM objects WHERE %(every)s"
            " UNION SELECT unnest(%(names)s::text[]))"
            " SELECT w.name, p.privilege, o.oid IS NULL FROM wanted w"
            " CROSS JOIN unnest(%(privileges)s::text[]) AS p(privilege)"
            " LEFT JOIN objects o ON o.relname = w.name"
            " WHERE o.oid IS NULL"
            " OR NOT {}(o.oid, p.privilege || ' WITH GRANT OPTION')"
            " ORDER BY 3 DESC, 1, 2 LIMIT 1"
        ).format(
            sql.Identifier(
                "has_table_privilege" if on_tables else "has_sequence_privilege"
            )
        ),
        {
            "schema": grant.schema_name,
            "kinds": ["r", "p", "v", "m", "f"] if on_tables else ["S"],
            "every": "*" in grant.objects,
            "names": [name for name in grant.objects if name != "*"],
            "privileges": list(grant.privileges),
        },
    )
    problem = await cursor.fetchone()
    if problem is None:
        return None
    return str(problem[0])[:63], str(problem[1]), bool(problem[2])


async def admin_gap(conn: Connection, grants: Iterable[PostgresGrant]) -> str | None:
    """
    Find what the connected admin role lacks to serve ``grants``.

    Returns:
        The first gap, as a message naming it, or None when nothing is missing.
    """
    row = await fetchone(
        conn,
        sql.SQL(
            "SELECT rolsuper, rolcreaterole, rolinherit,"
            " has_database_privilege(current_database(),"
            " 'CONNECT WITH GRANT OPTION')"
            " FROM pg_roles WHERE rolname = current_user"
        ),
    )
    superuser, createrole, inherit, connect = row
    if not (superuser or createrole):
        return "admin role lacks CREATEROLE"
    if not (superuser or inherit):
        return "admin role must be INHERIT (it joins roles to drop)"
    if not connect:
        return (
            "admin role cannot grant CONNECT on the database "
            "(own it or hold CONNECT WITH GRANT OPTION)"
        )
    for grant in grants:
        gap = await _grant_gap(conn, grant)
        if gap is not None:
            return gap
    return None


async def _grant_gap(conn: Connection, grant: PostgresGrant) -> str | None:
    """Find what the admin lacks to pass on ``grant``; None when nothing."""
    schema = grant.schema_name
    usage = await fetchone(
        conn,
        sql.SQL("SELECT has_schema_privilege(%s, 'USAGE WITH GRANT OPTION')"),
        (schema,),
    )
    if usage[0] is not True:
        return f"admin role cannot grant USAGE on schema {schema}"
    gap = await _grant_option_gap(conn, grant)
    if gap is None:
        return None
    name, privilege, absent = gap
    if absent:
        return f"{schema}.{name} does not exist"
    return f"admin role cannot grant {privilege} on {schema}.{name}"


def _lock_key(name: str) -> int:
    """Return a stable signed 32-bit key for a role name."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], signed=True)


async def lock_name(conn: Connection, name: str) -> None:
    """Take the session's advisory lock on a role name (freed when it closes)."""
    await conn.execute(
        sql.SQL("SELECT pg_advisory_lock(%s, %s)"), (_LOCK_SPACE, _lock_key(name))
    )


async def unlock_name(conn: Connection, name: str) -> None:
    """Release the session's advisory lock on a role name."""
    await conn.execute(
        sql.SQL("SELECT pg_advisory_unlock(%s, %s)"), (_LOCK_SPACE, _lock_key(name))
    )


async def lock_acls(conn: Connection) -> None:
    """Take the transaction's lock on this database's ACL changes."""
    await conn.execute(sql.SQL("SELECT pg_advisory_xact_lock(%s, %s)"), _ACL_LOCK)


async def terminate(conn: Connection, oid: int) -> None:
    """Terminate every backend of a role, waiting for each to exit."""
    await conn.execute(
        sql.SQL(
            "SELECT pg_terminate_backend(pid, %s) FROM pg_stat_activity"
            " WHERE usesysid = %s AND pid <> pg_backend_pid()"
        ),
        (TERMINATE_WAIT_MS, oid),
    )


async def fetchone(
    conn: Connection, query: sql.SQL | sql.Composed, params: Sequence[object] = ()
) -> tuple[Any, ...]:
    """Run ``query`` and return its first row; a missing row is an engine error."""
    row = await fetchone_or_none(conn, query, params)
    if row is None:
        raise EngineError("postgres: the server returned no row")
    return row


async def fetchone_or_none(
    conn: Connection, query: sql.SQL | sql.Composed, params: Sequence[object] = ()
) -> tuple[Any, ...] | None:
    """Run ``query`` and return its first row, or None."""
    cursor = await conn.execute(query, params or None)
    return await cursor.fetchone()


def created_at(comment: str | None) -> dt.datetime:
    """Return the creation time recorded in a role comment (epoch if unreadable)."""
    match = _COMMENT.fullmatch(comment or "")
    if match is not None:
        try:
            created = dt.datetime.fromisoformat(match["created"])
        except ValueError:
            pass
        else:
            if created.utcoffset() is not None:
                return created
    return dt.datetime.min.replace(tzinfo=dt.UTC)
