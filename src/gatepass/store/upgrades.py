"""
Upgrading a database of an older schema version in place, at start.

Schema history: 3 added ``gp_audit_events.mac`` (the record's HMAC; a version 2
database's records are MACed once by the broker, which alone holds the key); 4
federated agents' issuer, per-task labels and the delegation columns; 5 owners,
delegated tasks' actions and operator tokens; 6 indexes on the times read at start
and by time ranges. New tables need no step: ``create_all`` makes them.
"""

from __future__ import annotations

from sqlalchemy import Connection, Table, inspect

from gatepass.store.tables import (
    SCHEMA_VERSION,
    UNKEYED_THROUGH,
    agents,
    api_tokens,
    audit_events,
    audit_head,
    leases,
    settings_kv,
    tasks,
)

__all__ = ["upgrade_schema"]


def upgrade_schema(conn: Connection, version: int) -> None:
    """
    Bring a database of an older schema version up to :data:`SCHEMA_VERSION`.

    Runs inside the schema transaction at start, so a failed upgrade changes
    nothing; each step brings one version to the next.

    Args:
        conn: the schema transaction.
        version: the version the database holds.

    Raises:
        ValueError: no upgrade path exists from ``version``.
    """
    steps = {
        2: _upgrade_2_to_3,
        3: _upgrade_3_to_4,
        4: _upgrade_4_to_5,
        5: _upgrade_5_to_6,
    }
    if version not in steps:
        msg = f"no upgrade from schema version {version}"
        raise ValueError(msg)
    for step in range(version, SCHEMA_VERSION):
        steps[step](conn)


def _columns(conn: Connection, table: Table) -> set[str]:
    return {column["name"] for column in inspect(conn).get_columns(table.name)}


def _upgrade_2_to_3(conn: Connection) -> None:
    """
    Add ``gp_audit_events.mac``.

    Records, in the ``audit_unkeyed_through`` setting, the last seq written without a
    MAC: only those records may be MACed afterwards, once their chain has been
    verified.
    """
    if "mac" not in _columns(conn, audit_events):
        conn.exec_driver_sql(
            f"ALTER TABLE {audit_events.name} ADD COLUMN mac VARCHAR(64)"
        )
    head = conn.execute(audit_head.select().where(audit_head.c.id == 1)).first()
    through = 0 if head is None else int(head.seq)
    conn.execute(settings_kv.delete().where(settings_kv.c.name == UNKEYED_THROUGH))
    conn.execute(
        settings_kv.insert().values(name=UNKEYED_THROUGH, value=str(through).encode())
    )


def _upgrade_3_to_4(conn: Connection) -> None:
    """
    Add federated agents' issuer, per-task agent labels and the delegation columns.

    Agent names are widened to 255 characters.
    """
    if "issuer" not in _columns(conn, agents):
        conn.exec_driver_sql(
            f"ALTER TABLE {agents.name} ADD COLUMN issuer VARCHAR(2048)"
        )
    json_type = "JSON"  # what create_all makes of sqlalchemy.JSON on both backends
    present = _columns(conn, tasks)
    for name, kind in (
        ("agent_labels", json_type),
        ("parent_id", "VARCHAR(40)"),
        ("lineage_id", "VARCHAR(40)"),
        ("depth", "INTEGER NOT NULL DEFAULT 0"),
        ("actors", json_type),
        ("x5t", "VARCHAR(64)"),
    ):
        if name not in present:
            conn.exec_driver_sql(f"ALTER TABLE {tasks.name} ADD COLUMN {name} {kind}")
    for name in ("parent_id", "lineage_id"):
        index = f"ix_{tasks.name}_{name}"
        conn.exec_driver_sql(
            f"CREATE INDEX IF NOT EXISTS {index} ON {tasks.name} ({name})"
        )
    if conn.dialect.name == "postgresql":
        # SQLite does not enforce VARCHAR lengths; PostgreSQL does.
        conn.exec_driver_sql(
            f"ALTER TABLE {agents.name} ALTER COLUMN name TYPE VARCHAR(255)"
        )


def _upgrade_4_to_5(conn: Connection) -> None:
    """
    Add agents' owners, delegated tasks' actions and operator tokens.

    Operator tokens are API tokens with ``operator_id`` and ``revoked_at``.
    The new tables (operators, approvals and their votes and redemptions, the
    outbox) are made by ``create_all`` as on a fresh database.
    """
    if "owners" not in _columns(conn, agents):
        conn.exec_driver_sql(f"ALTER TABLE {agents.name} ADD COLUMN owners JSON")
    present = _columns(conn, tasks)
    for name, kind in (("actions", "JSON"), ("root_purpose", "VARCHAR(64)")):
        if name not in present:
            conn.exec_driver_sql(f"ALTER TABLE {tasks.name} ADD COLUMN {name} {kind}")
    present = _columns(conn, api_tokens)
    timestamp = (
        "TIMESTAMP WITH TIME ZONE" if conn.dialect.name == "postgresql" else "DATETIME"
    )
    for name, kind in (("operator_id", "VARCHAR(40)"), ("revoked_at", timestamp)):
        if name not in present:
            conn.exec_driver_sql(
                f"ALTER TABLE {api_tokens.name} ADD COLUMN {name} {kind}"
            )
    conn.exec_driver_sql(
        f"CREATE INDEX IF NOT EXISTS ix_{api_tokens.name}_operator_id "
        f"ON {api_tokens.name} (operator_id)"
    )


# The indexes schema 6 adds to tables that already exist (create_all makes them
# only with a new table): name, table, column.
_SCHEMA_6_INDEXES = (
    ("ix_gp_tasks_created_at", tasks.name, "created_at"),
    ("ix_gp_leases_issued_at", leases.name, "issued_at"),
    ("ix_gp_audit_events_at", audit_events.name, "at"),
)


def _upgrade_5_to_6(conn: Connection) -> None:
    """
    Index the times read at start and by time ranges.

    With a million leases, ``max(issued_at)`` at start was a scan of the whole
    table (11 s on SQLite with a cold cache). Building the indexes is a one-time
    cost of the upgrade, inside its transaction.
    """
    for name, table, column in _SCHEMA_6_INDEXES:
        conn.exec_driver_sql(f"CREATE INDEX IF NOT EXISTS {name} ON {table} ({column})")
