"""
PostgreSQL engine: one temporary login role per lease, granted its actions' privileges.

Issuing creates ``gp_<26 base32>`` (the lease's deterministic name) with a random
password, ``VALID UNTIL`` the lease's end, ``NOINHERIT`` and a connection limit; it
grants ``CONNECT`` on the mount's database and the configured grants of every
requested action, and records the installation marker, mount, lease and creation
time in the role's comment, all in one transaction. Revoking first forbids new
logins (committed), then terminates every backend of the role, then reassigns and
drops what it owns and drops it. The reaper revokes roles of this installation and
mount (by comment) that no live lease accounts for: roles are cluster-wide, so two
broker deployments with a target of the same name on one cluster would otherwise
remove each other's live roles.

Nothing taken from a request is pasted into SQL: identifiers come from the
validated configuration and are composed with :class:`psycopg.sql.Identifier`;
privileges come from a fixed allow-list; the role name is checked against
``^gp_[a-z2-7]{26}$``; the password is sent as a SCRAM verifier computed by libpq,
so the plain password never reaches the server or its statement log.

Error messages name the target and the failing step, never the admin connection
string or a password: the driver's own messages can quote both, so they are not
rendered except for the server's primary message on statements without a secret.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import os
import re
import secrets
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Literal, TypeVar

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from gatepass.clock import Clock
from gatepass.engines.base import IssuedCredential, IssueRequest, SecretEngine
from gatepass.engines.context import EngineContext
from gatepass.errors import ConfigurationError, EngineError, EngineUnavailableError
from gatepass.ids import is_id
from gatepass.models import Target
from gatepass.secret import Secret

__all__ = ["REAP_GRACE", "PostgresEngine", "PostgresGrant", "PostgresSettings"]

T = TypeVar("T")
Connection = psycopg.AsyncConnection[tuple[Any, ...]]

# A reaper that read the live handles just before an issue recorded its pending
# lease would otherwise remove the credential being handed out; roles younger than
# this are spared (the next pass removes them). The broker also re-checks the store
# for any name missing from its snapshot, so this is a second, short safeguard.
REAP_GRACE = dt.timedelta(seconds=2)
TERMINATE_WAIT_MS = 3000
_HANDLE = re.compile(r"gp_[a-z2-7]{26}")
# Plain ASCII identifiers only; PostgreSQL truncates names past 63 bytes.
_IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]{0,62}$"
_OBJECT = r"^(\*|[A-Za-z_][A-Za-z0-9_]{0,62})$"
_DATABASE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.$-]{0,62}")
_HOST = re.compile(r"[A-Za-z0-9._:%-]{1,253}")
_ACTION = r"^[a-z][a-z0-9_.:-]{0,63}$"
_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"
_COMMENT = re.compile(
    r"gatepass installation=(?P<installation>\S+) mount=(?P<mount>\S+)"
    r" lease=(?P<lease>\S+) created=(?P<created>\S+)"
)
# Advisory-lock namespace ("gp"); serializes issue, revoke and reap of one name.
_LOCK_SPACE = 0x67700000
# Concurrent GRANTs and DROP OWNEDs rewrite the same ACL rows (pg_class,
# pg_namespace, pg_database) and fail with "tuple concurrently updated"; the
# transactions that change ACLs take this per-database lock first.
_ACL_LOCK = (0x67700001, 0)

Identifier = Annotated[str, Field(pattern=_IDENTIFIER)]
ObjectName = Annotated[str, Field(pattern=_OBJECT)]
Privilege = Literal[
    "SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER", "USAGE"
]
TABLE_PRIVILEGES = frozenset(
    {"SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER"}
)
SEQUENCE_PRIVILEGES = frozenset({"USAGE", "SELECT", "UPDATE"})
# Privilege keywords are emitted from these constants, never from configuration text.
_PRIVILEGE_SQL: Mapping[str, sql.SQL] = {
    "SELECT": sql.SQL("SELECT"),
    "INSERT": sql.SQL("INSERT"),
    "UPDATE": sql.SQL("UPDATE"),
    "DELETE": sql.SQL("DELETE"),
    "TRUNCATE": sql.SQL("TRUNCATE"),
    "REFERENCES": sql.SQL("REFERENCES"),
    "TRIGGER": sql.SQL("TRIGGER"),
    "USAGE": sql.SQL("USAGE"),
}
# Connection-phase failures whose text says the server answered and refused.
_REFUSALS = (
    "authentication failed",
    "does not exist",
    "permission denied",
    "no pg_hba.conf entry",
)


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
    tables: tuple[ObjectName, ...] | None = Field(
        default=None, min_length=1, max_length=256
    )
    sequences: tuple[ObjectName, ...] | None = Field(
        default=None, min_length=1, max_length=256
    )

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


class PostgresSettings(BaseModel):
    """
    The ``[targets.engine]`` table of a ``postgres`` target.

    Attributes:
        admin_url: the admin connection string (prefer ``admin_url_env``).
        admin_url_env: the environment variable holding the admin connection string.
        host: the host the agent is told to connect to (default: the admin URL's).
        port: the port the agent is told (default: the admin URL's, else 5432).
        database: the mount's database (default: the admin URL's); the admin
            connects to it and grants ``CONNECT`` on it.
        connection_limit: concurrent sessions per credential.
        admin_connections: concurrent admin connections this mount opens.
        grants: for each action, the grants its credentials receive.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    admin_url: SecretStr | None = Field(default=None, min_length=1, max_length=4096)
    admin_url_env: Annotated[str, Field(pattern=_ENV_NAME)] | None = None
    host: str | None = Field(default=None, max_length=253)
    port: int | None = Field(default=None, ge=1, le=65535)
    database: str | None = Field(default=None, max_length=63)
    connection_limit: int = Field(default=5, ge=1, le=1000)
    admin_connections: int = Field(default=4, ge=1, le=32)
    grants: dict[
        Annotated[str, Field(pattern=_ACTION)],
        Annotated[list[PostgresGrant], Field(min_length=1, max_length=32)],
    ] = Field(min_length=1, max_length=32)

    @field_validator("host")
    @classmethod
    def _hostname(cls, value: str | None) -> str | None:
        if value is not None and not _HOST.fullmatch(value):
            raise ValueError("must be a host name or an IP address")
        return value

    @field_validator("database")
    @classmethod
    def _database_name(cls, value: str | None) -> str | None:
        if value is not None and not _DATABASE.fullmatch(value):
            raise ValueError("must be a plain database name")
        return value


@dataclass(frozen=True, slots=True, kw_only=True)
class _Mount:
    """The resolved configuration of one mount."""

    target: str
    admin_conninfo: Secret
    admin_password: Secret | None
    host: str
    port: int
    database: str
    connection_limit: int
    admin_connections: int
    grants: Mapping[str, tuple[PostgresGrant, ...]]


@dataclass(slots=True)
class _Progress:
    """The step an operation is in, for error messages that never quote a secret."""

    step: str
    # Whether the server's primary message may be shown for this step.
    verbatim: bool = True
    secrets: list[str] = field(default_factory=list)


class PostgresEngine:
    """
    Mint temporary PostgreSQL login roles with the grants of their actions.

    Build it with :meth:`from_target`.

    Args:
        mount: the resolved configuration.
        clock: the time source for role creation times (reap grace).
        marker: the installation marker written into every role's comment.
    """

    kind: ClassVar[str] = "postgres"

    def __init__(self, mount: _Mount, clock: Clock, *, marker: str) -> None:
        """Keep the configuration; connections are opened per operation."""
        self._mount = mount
        self._clock = clock
        self._semaphore: asyncio.Semaphore | None = None
        self._semaphore_loop: asyncio.AbstractEventLoop | None = None
        # The comment prefix the reaper matches: this deployment, this mount.
        self._marker = f"gatepass installation={marker} mount={mount.target} "

    @classmethod
    def from_target(
        cls, target: Target, settings: Mapping[str, Any], context: EngineContext
    ) -> PostgresEngine:
        """
        Build the engine from a target and its ``[targets.engine]`` table.

        Args:
            target: the configured target.
            settings: the raw engine table.
            context: shared engine facilities (the clock and the installation
                marker are used).

        Returns:
            The engine; no connection is opened yet.

        Raises:
            ConfigurationError: a setting is missing, unknown or invalid.
        """
        prefix = f"targets.{target.name}.engine"
        try:
            parsed = PostgresSettings.model_validate(dict(settings))
        except ValidationError as exc:
            problems = []
            for error in exc.errors(include_input=False, include_url=False):
                where = ".".join(str(part) for part in error["loc"])
                problems.append(
                    f"{prefix}{'.' if where else ''}{where}: {error['msg']}"
                )
            raise ConfigurationError("; ".join(problems[:5])) from None
        for action in parsed.grants:
            if action not in target.actions:
                raise ConfigurationError(
                    f"{prefix}.grants.{action}: not an action of the target"
                )
        for action in target.actions:
            if action not in parsed.grants:
                raise ConfigurationError(f"{prefix}.grants.{action}: missing")
        return cls(
            _resolve(prefix, target.name, parsed), context.clock, marker=context.marker
        )

    async def check(self) -> None:
        """
        Verify the admin connection, CREATEROLE, and every grant option needed.

        Raises:
            EngineUnavailableError: the server cannot be reached.
            EngineError: the admin role lacks a privilege the grants need.
        """
        progress = _Progress("check")

        async def work(conn: Connection) -> None:
            row = await _fetchone(
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
                raise self._error("admin role lacks CREATEROLE")
            if not (superuser or inherit):
                raise self._error("admin role must be INHERIT (it joins roles to drop)")
            if not connect:
                raise self._error(
                    "admin role cannot grant CONNECT on the database "
                    "(own it or hold CONNECT WITH GRANT OPTION)"
                )
            for grant in _distinct(self._mount.grants.values()):
                await self._check_grant(conn, grant)

        await self._run(progress, work)

    async def issue(self, request: IssueRequest) -> IssuedCredential:
        """
        Create the role ``request.name``, replacing a half-made one of that name.

        Args:
            request: what to mint.

        Returns:
            The credential: handle and username are the role name; ``fields`` holds
            ``host``, ``port`` (int), ``database`` and ``username``.

        Raises:
            EngineError: the request is malformed or the server refused.
            EngineUnavailableError: the server cannot be reached.
        """
        name = self._role_name(request.name)
        grants = self._grants_of(request)
        password = _new_password()
        expires_at = request.expires_at.astimezone(dt.UTC)
        comment = (
            f"{self._marker}lease={request.lease_id} "
            f"created={self._clock.now().astimezone(dt.UTC).isoformat()}"
        )
        progress = _Progress(f"issue {name}", secrets=[password])

        async def work(conn: Connection) -> None:
            await _lock(conn, name)
            await self._drop_role(conn, name, progress)
            role = sql.Identifier(name)
            progress.step = f"issue {name}: create role"
            verifier = conn.pgconn.encrypt_password(
                password.encode(), name.encode(), b"scram-sha-256"
            ).decode()
            progress.secrets.append(verifier)
            not_granted: list[str] = []

            def on_notice(diagnostic: psycopg.errors.Diagnostic) -> None:
                # GRANT without enough grant options warns (01007) and grants less.
                if diagnostic.sqlstate == "01007":
                    not_granted.append(diagnostic.message_primary or "")

            conn.add_notice_handler(on_notice)
            async with conn.transaction():
                await _lock_acls(conn)
                progress.verbatim = False
                await conn.execute(
                    sql.SQL(
                        "CREATE ROLE {} WITH LOGIN NOINHERIT PASSWORD {} "
                        "VALID UNTIL {} CONNECTION LIMIT {}"
                    ).format(
                        role,
                        sql.Literal(verifier),
                        sql.Literal(expires_at.isoformat()),
                        sql.Literal(self._mount.connection_limit),
                    )
                )
                progress.verbatim = True
                progress.step = f"issue {name}: grant"
                await conn.execute(
                    sql.SQL("COMMENT ON ROLE {} IS {}").format(
                        role, sql.Literal(comment)
                    )
                )
                for statement in _grant_statements(self._mount.database, grants, role):
                    await conn.execute(statement)
                if not_granted:
                    raise self._error(
                        f"issue {name}: admin role lacks grant options "
                        f"({not_granted[0][:200]})"
                    )

        await self._run(progress, work)
        return IssuedCredential(
            handle=name,
            expires_at=request.expires_at,
            secret=Secret(password),
            fields={
                "host": self._mount.host,
                "port": self._mount.port,
                "database": self._mount.database,
                "username": name,
            },
        )

    async def renew(self, handle: str, expires_at: dt.datetime) -> dt.datetime:
        """
        Move the role's ``VALID UNTIL`` to ``expires_at``.

        Raises:
            EngineError: the handle is malformed, the time naive, or the role gone.
            EngineUnavailableError: the server cannot be reached.
        """
        name = self._role_name(handle)
        if expires_at.utcoffset() is None:
            raise self._error("renew: expires_at must be timezone-aware")
        until = expires_at.astimezone(dt.UTC)
        progress = _Progress(f"renew {name}")

        async def work(conn: Connection) -> None:
            await _lock(conn, name)
            found = await conn.execute(
                "SELECT 1 FROM pg_roles WHERE rolname = %s AND rolcanlogin", (name,)
            )
            if await found.fetchone() is None:
                raise self._error(f"renew: role {name} no longer exists")
            await conn.execute(
                sql.SQL("ALTER ROLE {} VALID UNTIL {}").format(
                    sql.Identifier(name), sql.Literal(until.isoformat())
                )
            )

        await self._run(progress, work)
        return until

    async def revoke(self, handle: str) -> None:
        """
        Forbid new logins, cut live sessions, then drop the role. Idempotent.

        Args:
            handle: the role name.

        Raises:
            EngineError: the handle is malformed or the server refused.
            EngineUnavailableError: the server cannot be reached.
        """
        name = self._role_name(handle)
        progress = _Progress(f"revoke {name}")

        async def work(conn: Connection) -> None:
            await _lock(conn, name)
            await self._drop_role(conn, name, progress)

        await self._run(progress, work)

    async def reap(self, live_handles: AbstractSet[str]) -> list[str]:
        """
        Revoke this mount's roles that no live lease accounts for.

        Only roles named ``gp_<26 base32>`` whose comment names this installation
        and this mount are considered, and those created less than
        :data:`REAP_GRACE` ago are spared.

        Args:
            live_handles: handles of pending and active leases of this mount.

        Returns:
            The role names removed.

        Raises:
            EngineError: the server refused.
            EngineUnavailableError: the server cannot be reached.
        """
        progress = _Progress("reap")
        now = self._clock.now()

        async def work(conn: Connection) -> list[str]:
            cursor = await conn.execute(
                sql.SQL(
                    "SELECT rolname, shobj_description(oid, 'pg_authid') FROM pg_roles"
                    " WHERE rolname LIKE 'gp\\_%%'"
                    " AND starts_with(shobj_description(oid, 'pg_authid'), %s)"
                    " ORDER BY rolname"
                ),
                (self._marker,),
            )
            stale = [
                name
                for name, comment in await cursor.fetchall()
                # Cheap tests first: membership may consult the store again.
                if _HANDLE.fullmatch(name)
                and _created(comment) <= now - REAP_GRACE
                and name not in live_handles
            ]
            for name in stale:
                progress.step = f"reap {name}"
                await _lock(conn, name)
                await self._drop_role(conn, name, progress)
                await conn.execute(
                    sql.SQL("SELECT pg_advisory_unlock(%s, %s)"),
                    (_LOCK_SPACE, _lock_key(name)),
                )
            return stale

        return await self._run(progress, work)

    async def aclose(self) -> None:
        """Release connections (none are kept between operations)."""
        self._semaphore = None
        self._semaphore_loop = None

    def _role_name(self, value: object) -> str:
        # Defense in depth: the name is composed as an identifier anyway.
        if not isinstance(value, str) or not _HANDLE.fullmatch(value):
            raise self._error("malformed credential name")
        return value

    def _grants_of(self, request: IssueRequest) -> list[PostgresGrant]:
        if not is_id(request.lease_id, "lse"):
            raise self._error("issue: malformed lease id")
        if request.expires_at.utcoffset() is None:
            raise self._error("issue: expires_at must be timezone-aware")
        if not request.actions:
            raise self._error("issue: no action requested")
        grants: list[PostgresGrant] = []
        for action in request.actions:
            if action not in self._mount.grants:
                raise self._error("issue: an action has no grants on this target")
            grants.extend(self._mount.grants[action])
        return grants

    def _error(self, detail: str) -> EngineError:
        return EngineError(f"postgres target {self._mount.target}: {detail}")

    async def _drop_role(
        self, conn: Connection, name: str, progress: _Progress
    ) -> None:
        """Forbid logins, terminate sessions, reassign and drop owned, drop the role."""
        role = sql.Identifier(name)
        row = await _fetchone_or_none(
            conn, sql.SQL("SELECT oid FROM pg_roles WHERE rolname = %s"), (name,)
        )
        if row is None:
            return
        oid = row[0]
        # Committed first, so no session can start while the others are cut.
        async with conn.transaction():
            await conn.execute(sql.SQL("ALTER ROLE {} NOLOGIN").format(role))
            # PostgreSQL 15: a CREATEROLE admin must be a member of the role to
            # terminate its backends and to reassign or drop what it owns.
            await conn.execute(sql.SQL("GRANT {} TO CURRENT_USER").format(role))
        await _terminate(conn, oid)
        async with conn.transaction():
            await _lock_acls(conn)
            await conn.execute(
                sql.SQL("REASSIGN OWNED BY {} TO CURRENT_USER").format(role)
            )
            await conn.execute(sql.SQL("DROP OWNED BY {}").format(role))
            await conn.execute(sql.SQL("DROP ROLE {}").format(role))
        # A session that slipped in before NOLOGIN committed is cut here.
        await _terminate(conn, oid)
        left = await _fetchone(
            conn,
            sql.SQL("SELECT count(*) FROM pg_stat_activity WHERE usesysid = %s"),
            (oid,),
        )
        if left[0]:
            raise self._error(f"{progress.step}: sessions of the role survived")

    async def _check_grant(self, conn: Connection, grant: PostgresGrant) -> None:
        """Raise unless the admin can pass on every privilege of ``grant``."""
        schema = grant.schema_name
        usage = await _fetchone(
            conn,
            sql.SQL("SELECT has_schema_privilege(%s, 'USAGE WITH GRANT OPTION')"),
            (schema,),
        )
        if usage[0] is not True:
            raise self._error(f"admin role cannot grant USAGE on schema {schema}")
        on_tables = grant.tables is not None
        objects = grant.tables if grant.tables is not None else grant.sequences or ()
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
                "schema": schema,
                "kinds": ["r", "p", "v", "m", "f"] if on_tables else ["S"],
                "every": "*" in objects,
                "names": [name for name in objects if name != "*"],
                "privileges": list(grant.privileges),
            },
        )
        problem = await cursor.fetchone()
        if problem is None:
            return
        name, privilege, absent = str(problem[0])[:63], problem[1], problem[2]
        if absent:
            raise self._error(f"{schema}.{name} does not exist")
        raise self._error(f"admin role cannot grant {privilege} on {schema}.{name}")

    def _slots(self) -> asyncio.Semaphore:
        # A semaphore belongs to one event loop; tests run several in turn.
        loop = asyncio.get_running_loop()
        if self._semaphore is None or self._semaphore_loop is not loop:
            self._semaphore = asyncio.Semaphore(self._mount.admin_connections)
            self._semaphore_loop = loop
        return self._semaphore

    async def _run(
        self, progress: _Progress, work: Callable[[Connection], Awaitable[T]]
    ) -> T:
        """
        Run ``work`` on a fresh admin connection, translating driver errors.

        The replacement error is raised outside the ``except`` block so that the
        driver's exception, whose text may quote a password or the connection
        string, is neither its cause nor its context.
        """
        failure: EngineError
        connected = False
        async with self._slots():
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self._mount.admin_conninfo.reveal(),
                    autocommit=True,
                    prepare_threshold=None,
                )
                connected = True
                async with conn:
                    return await work(conn)
            except psycopg.Error as exc:
                failure = self._translate(exc, progress, connected=connected)
        raise failure

    def _translate(
        self, exc: psycopg.Error, progress: _Progress, *, connected: bool
    ) -> EngineError:
        target = self._mount.target
        if not connected:
            text = str(exc)
            if "FATAL" in text and any(words in text for words in _REFUSALS):
                return EngineError(
                    f"postgres target {target}: the server refused the admin login"
                )
            return EngineUnavailableError(
                f"postgres target {target}: cannot connect to the server"
            )
        sqlstate = exc.sqlstate or ""
        # Connection loss, resource shortage, shutdown, timeouts: worth retrying.
        if sqlstate == "" or sqlstate.startswith(("08", "53", "57", "55P03")):
            return EngineUnavailableError(
                f"postgres target {target}: {progress.step}: server unavailable "
                f"or timed out ({sqlstate or 'connection lost'})"
            )
        detail = sqlstate
        if progress.verbatim and exc.diag.message_primary:
            detail = f"{exc.diag.message_primary[:200]} ({sqlstate})"
        hidden = [*progress.secrets, self._mount.admin_conninfo.reveal()]
        if self._mount.admin_password is not None:
            hidden.append(self._mount.admin_password.reveal())
        for value in hidden:
            if value:
                detail = detail.replace(value, "**********")
        return EngineError(f"postgres target {target}: {progress.step}: {detail}")


def _new_password() -> str:
    """Return a fresh password: 32 random bytes, url-safe base64."""
    return secrets.token_urlsafe(32)


def _resolve(prefix: str, target: str, parsed: PostgresSettings) -> _Mount:
    """Find the admin connection string and the agent-facing defaults."""
    if (parsed.admin_url is None) == (parsed.admin_url_env is None):
        raise ConfigurationError(
            f"{prefix}.admin_url_env: give exactly one of admin_url_env and admin_url"
        )
    if parsed.admin_url_env is not None:
        url = os.environ.get(parsed.admin_url_env, "")
        if not url:
            raise ConfigurationError(
                f"{prefix}.admin_url_env: environment variable "
                f"{parsed.admin_url_env} is not set"
            )
        where = f"{prefix}.admin_url_env"
    else:
        url = parsed.admin_url.get_secret_value() if parsed.admin_url else ""
        where = f"{prefix}.admin_url"
    # SQLAlchemy-style URLs name the driver; libpq does not know them.
    for scheme in ("postgresql+psycopg://", "postgres+psycopg://"):
        if url.startswith(scheme):
            url = "postgresql://" + url.removeprefix(scheme)
    parts = _parse_conninfo(url)
    if parts is None:
        raise ConfigurationError(f"{where}: not a valid libpq connection string")
    host = parsed.host or parts.get("host", "")
    if not host or not _HOST.fullmatch(host):
        raise ConfigurationError(
            f"{prefix}.host: required when the admin URL names no single TCP host"
        )
    port_text = str(parsed.port or parts.get("port") or "5432")
    if not port_text.isdecimal() or not 1 <= int(port_text) <= 65535:
        raise ConfigurationError(
            f"{prefix}.port: required (the admin URL's is unusable)"
        )
    database = parsed.database or parts.get("dbname", "")
    if not database or not _DATABASE.fullmatch(database):
        raise ConfigurationError(
            f"{prefix}.database: required when the admin URL names no plain database"
        )
    options = {"dbname": database, "connect_timeout": parts.get("connect_timeout", "5")}
    options["application_name"] = parts.get("application_name", "gatepass")
    # Bounded waits: a lock held elsewhere must not stall revocation forever.
    options["options"] = (
        parts.get("options", "") + " -c lock_timeout=5000 -c statement_timeout=8000"
    ).strip()
    password = parts.get("password")
    return _Mount(
        target=target,
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


def _distinct(groups: Iterable[Iterable[PostgresGrant]]) -> list[PostgresGrant]:
    """Return the grants of every action once each, in order."""
    seen: list[PostgresGrant] = []
    for group in groups:
        for grant in group:
            if grant not in seen:
                seen.append(grant)
    return seen


def _grant_statements(
    database: str, grants: Sequence[PostgresGrant], role: sql.Identifier
) -> list[sql.Composed]:
    """Compose the GRANT statements of a credential (identifiers only)."""
    statements = [
        sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
            sql.Identifier(database), role
        )
    ]
    schemas: list[str] = []
    for grant in _distinct([grants]):
        if grant.schema_name not in schemas:
            schemas.append(grant.schema_name)
            statements.append(
                sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(
                    sql.Identifier(grant.schema_name), role
                )
            )
        privileges = sql.SQL(", ").join(_PRIVILEGE_SQL[p] for p in grant.privileges)
        schema = sql.Identifier(grant.schema_name)
        if grant.tables is not None:
            every, one, objects = "TABLES", "TABLE", grant.tables
        else:
            every, one, objects = "SEQUENCES", "SEQUENCE", grant.sequences or ()
        if "*" in objects:
            target = sql.SQL("ALL {} IN SCHEMA {}").format(sql.SQL(every), schema)
        else:
            names = sql.SQL(", ").join(
                sql.Identifier(grant.schema_name, name) for name in objects
            )
            target = sql.SQL("{} {}").format(sql.SQL(one), names)
        statements.append(
            sql.SQL("GRANT {} ON {} TO {}").format(privileges, target, role)
        )
    return statements


def _lock_key(name: str) -> int:
    """Return a stable signed 32-bit key for a role name."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], signed=True)


async def _lock(conn: Connection, name: str) -> None:
    """Take the session's advisory lock on a role name (freed when it closes)."""
    await conn.execute(
        sql.SQL("SELECT pg_advisory_lock(%s, %s)"), (_LOCK_SPACE, _lock_key(name))
    )


async def _lock_acls(conn: Connection) -> None:
    """Take the transaction's lock on this database's ACL changes."""
    await conn.execute(sql.SQL("SELECT pg_advisory_xact_lock(%s, %s)"), _ACL_LOCK)


async def _terminate(conn: Connection, oid: int) -> None:
    """Terminate every backend of a role, waiting for each to exit."""
    await conn.execute(
        sql.SQL(
            "SELECT pg_terminate_backend(pid, %s) FROM pg_stat_activity"
            " WHERE usesysid = %s AND pid <> pg_backend_pid()"
        ),
        (TERMINATE_WAIT_MS, oid),
    )


async def _fetchone(
    conn: Connection, query: sql.SQL | sql.Composed, params: Sequence[object] = ()
) -> tuple[Any, ...]:
    row = await _fetchone_or_none(conn, query, params)
    if row is None:
        raise EngineError("postgres: the server returned no row")
    return row


async def _fetchone_or_none(
    conn: Connection, query: sql.SQL | sql.Composed, params: Sequence[object] = ()
) -> tuple[Any, ...] | None:
    cursor = await conn.execute(query, params or None)
    return await cursor.fetchone()


def _created(comment: str | None) -> dt.datetime:
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


_: type[SecretEngine] = PostgresEngine
