"""
The ``[targets.engine]`` table of a ``postgres`` target, validated into a typed mount.

Identifiers (schemas, tables, sequences) are plain ASCII names that
:class:`psycopg.sql.Identifier` composes later; privileges come from a fixed
allow-list per object kind. The admin connection string is resolved here once
(environment variable or inline), completed with bounded timeouts, and never
quoted in a message: libpq's own parse errors quote it, so they are not shown.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from pydantic import BaseModel, ConfigDict, Field, model_validator

from gatepass.engines.settings import (
    AdminURLTable,
    engine_path,
    matching,
    parse_engine_table,
)
from gatepass.errors import ConfigurationError
from gatepass.models import Target
from gatepass.secret import Secret

__all__ = [
    "SEQUENCE_PRIVILEGES",
    "TABLE_PRIVILEGES",
    "PostgresConfig",
    "PostgresGrant",
    "PostgresSettings",
    "parse_settings",
]

# Plain ASCII identifiers only; PostgreSQL truncates names past 63 bytes.
_IDENTIFIER: Final = r"^[A-Za-z_][A-Za-z0-9_]{0,62}$"
_OBJECT: Final = r"^(\*|[A-Za-z_][A-Za-z0-9_]{0,62})$"
_DATABASE: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.$-]{0,62}")
HOST: Final = re.compile(r"[A-Za-z0-9._:%-]{1,253}")
_ACTION: Final = r"^[a-z][a-z0-9_.:-]{0,63}$"

Identifier = Annotated[str, Field(pattern=_IDENTIFIER)]
ObjectName = Annotated[str, Field(pattern=_OBJECT)]
ObjectNames = Annotated[tuple[ObjectName, ...], Field(min_length=1, max_length=256)]
Privilege = Literal[
    "SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER", "USAGE"
]
TABLE_PRIVILEGES: Final = frozenset(
    {"SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER"}
)
SEQUENCE_PRIVILEGES: Final = frozenset({"USAGE", "SELECT", "UPDATE"})


class PostgresGrant(BaseModel):
    """
    One grant of an action: privileges on tables or on sequences of one schema.

    Attributes:
        schema_name: the schema (``schema`` in TOML), an exact catalog name.
        privileges: from the allow-list of the object kind.
        tables: table names, or ``["*"]`` for all tables in the schema.
        sequences: sequence names, or ``["*"]`` for all sequences in the schema.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_name: Identifier = Field(alias="schema")
    privileges: tuple[Privilege, ...] = Field(min_length=1, max_length=8)
    tables: ObjectNames | None = None
    sequences: ObjectNames | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> PostgresGrant:
        if (self.tables is None) == (self.sequences is None):
            raise ValueError("give exactly one of tables and sequences")
        objects = self.tables if self.tables is not None else self.sequences
        allowed = TABLE_PRIVILEGES if self.tables is not None else SEQUENCE_PRIVILEGES
        if objects is not None and "*" in objects and len(objects) > 1:
            raise ValueError('"*" stands alone')
        if objects is not None and len(set(objects)) != len(objects):
            raise ValueError("repeats a name")
        refused = sorted(set(self.privileges) - allowed)
        if refused:
            kind = "tables" if self.tables is not None else "sequences"
            raise ValueError(f"{', '.join(refused)} cannot be granted on {kind}")
        return self

    @property
    def objects(self) -> tuple[str, ...]:
        """The tables or sequences the grant covers (``("*",)`` for all)."""
        return self.tables if self.tables is not None else self.sequences or ()


class PostgresSettings(AdminURLTable):
    """
    The ``[targets.engine]`` table of a ``postgres`` target.

    Attributes:
        host: the host the agent is told to connect to (default: the admin URL's).
        port: the port the agent is told (default: the admin URL's, else 5432).
        database: the mount's database (default: the admin URL's); the admin
            connects to it and grants ``CONNECT`` on it.
        connection_limit: concurrent sessions per credential.
        admin_connections: concurrent admin connections this mount opens.
        grants: for each action, the grants its credentials receive.
    """

    host: (
        Annotated[
            str,
            Field(max_length=253),
            matching(HOST, "must be a host name or an IP address"),
        ]
        | None
    ) = None
    port: int | None = Field(default=None, ge=1, le=65535)
    database: (
        Annotated[
            str,
            Field(max_length=63),
            matching(_DATABASE, "must be a plain database name"),
        ]
        | None
    ) = None
    connection_limit: int = Field(default=5, ge=1, le=1000)
    admin_connections: int = Field(default=4, ge=1, le=32)
    grants: dict[
        Annotated[str, Field(pattern=_ACTION)],
        Annotated[list[PostgresGrant], Field(min_length=1, max_length=32)],
    ] = Field(min_length=1, max_length=32)


@dataclass(frozen=True, slots=True, kw_only=True)
class PostgresConfig:
    """
    A validated PostgreSQL mount.

    Attributes:
        target: the target name, for messages and role comments.
        admin_conninfo: the admin connection string, completed with timeouts.
        admin_password: the password inside it, if any, to scrub from messages.
        host: the host handed to agents.
        port: the port handed to agents.
        database: the database the admin connects to and agents are granted.
        connection_limit: ``CONNECTION LIMIT`` of every credential.
        admin_connections: admin connections open at once.
        grants: the grants of every action.
    """

    target: str
    admin_conninfo: Secret
    admin_password: Secret | None
    host: str
    port: int
    database: str
    connection_limit: int
    admin_connections: int
    grants: Mapping[str, tuple[PostgresGrant, ...]]


def parse_settings(target: Target, settings: Mapping[str, Any]) -> PostgresConfig:
    """
    Validate a ``postgres`` table and complete its admin connection string.

    Host, port and database default to the admin URL's; the connection string
    gets bounded connect, lock and statement timeouts. Raises
    ``ConfigurationError`` naming the offending field, never its value.
    """
    parsed = parse_engine_table(PostgresSettings, target, settings)
    path = engine_path(target.name)
    admin = parsed.admin(target.name)
    url = admin.value.reveal()
    # SQLAlchemy-style URLs name the driver; libpq does not know them.
    for scheme in ("postgresql+psycopg://", "postgres+psycopg://"):
        if url.startswith(scheme):
            url = "postgresql://" + url.removeprefix(scheme)
    parts = _parse_conninfo(url)
    if parts is None:
        raise ConfigurationError(f"{admin.where}: not a valid libpq connection string")
    host = parsed.host or parts.get("host", "")
    if not host or not HOST.fullmatch(host):
        raise ConfigurationError(
            f"{path}.host: required when the admin URL names no single TCP host"
        )
    port_text = str(parsed.port or parts.get("port") or "5432")
    if not port_text.isdecimal() or not 1 <= int(port_text) <= 65535:
        raise ConfigurationError(f"{path}.port: required (the admin URL's is unusable)")
    database = parsed.database or parts.get("dbname", "")
    if not database or not _DATABASE.fullmatch(database):
        raise ConfigurationError(
            f"{path}.database: required when the admin URL names no plain database"
        )
    options = {"dbname": database, "connect_timeout": parts.get("connect_timeout", "5")}
    options["application_name"] = parts.get("application_name", "gatepass")
    # Bounded waits: a lock held elsewhere must not stall revocation forever.
    options["options"] = (
        parts.get("options", "") + " -c lock_timeout=5000 -c statement_timeout=8000"
    ).strip()
    password = parts.get("password")
    return PostgresConfig(
        target=target.name,
        admin_conninfo=Secret(make_conninfo(url, **options)),
        admin_password=Secret(password) if password else None,
        host=host,
        port=int(port_text),
        database=database,
        connection_limit=parsed.connection_limit,
        admin_connections=parsed.admin_connections,
        grants={action: tuple(items) for action, items in parsed.grants.items()},
    )


def _parse_conninfo(url: str) -> dict[str, str] | None:
    """Parse a connection string; None when invalid (libpq's message quotes it)."""
    try:
        parsed = conninfo_to_dict(url)
    except psycopg.Error:
        return None
    return {key: str(value) for key, value in parsed.items()}
