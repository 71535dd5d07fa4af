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

The table is parsed in :mod:`.settings`, statements are composed in :mod:`.sql`,
and :mod:`.admin` runs them on admin connections whose errors never show a secret.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from typing import Any, ClassVar, Final

import psycopg
from psycopg import sql

from gatepass.engines.base import IssuedCredential, IssueRequest, SecretEngine
from gatepass.engines.context import EngineContext
from gatepass.engines.postgres.admin import AdminConnections, Progress
from gatepass.engines.postgres.settings import (
    PostgresConfig,
    PostgresGrant,
    parse_settings,
)
from gatepass.engines.postgres.sql import (
    HANDLE,
    Connection,
    admin_gap,
    created_at,
    distinct,
    fetchone,
    fetchone_or_none,
    grant_statements,
    lock_acls,
    lock_name,
    terminate,
    unlock_name,
)
from gatepass.engines.requests import check_actions, check_expiry
from gatepass.engines.settings import ConfiguredEngine
from gatepass.ids import is_id
from gatepass.models import Target
from gatepass.secret import Secret

__all__ = ["REAP_GRACE", "PostgresEngine"]

# A reaper that read the live handles just before an issue recorded its pending
# lease would otherwise remove the credential being handed out; roles younger than
# this are spared (the next pass removes them). The broker also re-checks the store
# for any name missing from its snapshot, so this is a second, short safeguard.
REAP_GRACE: Final = dt.timedelta(seconds=2)


class PostgresEngine(ConfiguredEngine[PostgresConfig]):
    """
    Mint temporary PostgreSQL login roles with the grants of their actions.

    Build it with :meth:`from_target`.

    Args:
        config: the validated mount.
        context: shared engine facilities: the clock (role creation times, the
            reap grace) and the installation marker written into every role's
            comment.
    """

    kind: ClassVar[str] = "postgres"

    def __init__(self, config: PostgresConfig, context: EngineContext) -> None:
        """Keep the configuration; connections are opened per operation."""
        super().__init__(config, context)
        self._clock = context.clock
        self._admin = AdminConnections(config)
        # The comment prefix the reaper matches: this deployment, this mount.
        self._marker = f"gatepass installation={context.marker} mount={config.target} "

    @classmethod
    def parse_settings(
        cls, target: Target, settings: Mapping[str, Any]
    ) -> PostgresConfig:
        """Validate a ``postgres`` table (:func:`.settings.parse_settings`)."""
        return parse_settings(target, settings)

    async def check(self) -> None:
        """
        Verify the admin connection, CREATEROLE, and every grant option needed.

        Raises:
            EngineUnavailableError: the server cannot be reached.
            EngineError: the admin role lacks a privilege the grants need.
        """
        progress = Progress("check")

        async def work(conn: Connection) -> None:
            gap = await admin_gap(conn, distinct(self._config.grants.values()))
            if gap is not None:
                raise self._admin.error(gap)

        await self._admin.run(progress, work)

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
        progress = Progress(f"issue {name}", secrets=[password])

        async def work(conn: Connection) -> None:
            await lock_name(conn, name)
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
                await lock_acls(conn)
                progress.verbatim = False
                await conn.execute(
                    sql.SQL(
                        "CREATE ROLE {} WITH LOGIN NOINHERIT PASSWORD {} "
                        "VALID UNTIL {} CONNECTION LIMIT {}"
                    ).format(
                        role,
                        sql.Literal(verifier),
                        sql.Literal(expires_at.isoformat()),
                        sql.Literal(self._config.connection_limit),
                    )
                )
                progress.verbatim = True
                progress.step = f"issue {name}: grant"
                await conn.execute(
                    sql.SQL("COMMENT ON ROLE {} IS {}").format(
                        role, sql.Literal(comment)
                    )
                )
                for statement in grant_statements(self._config.database, grants, role):
                    await conn.execute(statement)
                if not_granted:
                    raise self._admin.error(
                        f"issue {name}: admin role lacks grant options "
                        f"({not_granted[0][:200]})"
                    )

        await self._admin.run(progress, work)
        config = self._config
        fields = {"host": config.host, "port": config.port, "username": name}
        return IssuedCredential(
            handle=name,
            expires_at=request.expires_at,
            secret=Secret(password),
            fields={**fields, "database": config.database},
        )

    async def renew(self, handle: str, expires_at: dt.datetime) -> dt.datetime:
        """
        Move the role's ``VALID UNTIL`` to ``expires_at``.

        Raises:
            EngineError: the handle is malformed, the time naive or past (see
                :func:`~gatepass.engines.requests.check_expiry`), or the role gone.
            EngineUnavailableError: the server cannot be reached.
        """
        name = self._role_name(handle)
        check_expiry(expires_at, now=self._clock.now())
        until = expires_at.astimezone(dt.UTC)
        progress = Progress(f"renew {name}")

        async def work(conn: Connection) -> None:
            await lock_name(conn, name)
            found = await conn.execute(
                "SELECT 1 FROM pg_roles WHERE rolname = %s AND rolcanlogin", (name,)
            )
            if await found.fetchone() is None:
                raise self._admin.error(f"renew: role {name} no longer exists")
            await conn.execute(
                sql.SQL("ALTER ROLE {} VALID UNTIL {}").format(
                    sql.Identifier(name), sql.Literal(until.isoformat())
                )
            )

        await self._admin.run(progress, work)
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
        progress = Progress(f"revoke {name}")

        async def work(conn: Connection) -> None:
            await lock_name(conn, name)
            await self._drop_role(conn, name, progress)

        await self._admin.run(progress, work)

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
        progress = Progress("reap")
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
                if HANDLE.fullmatch(name)
                and created_at(comment) <= now - REAP_GRACE
                and name not in live_handles
            ]
            for name in stale:
                progress.step = f"reap {name}"
                await lock_name(conn, name)
                await self._drop_role(conn, name, progress)
                await unlock_name(conn, name)
            return stale

        return await self._admin.run(progress, work)

    async def aclose(self) -> None:
        """Release connections (none are kept between operations)."""
        self._admin.reset()

    def _role_name(self, value: object) -> str:
        # Defense in depth: the name is composed as an identifier anyway.
        if not isinstance(value, str) or not HANDLE.fullmatch(value):
            raise self._admin.error("malformed credential name")
        return value

    def _grants_of(self, request: IssueRequest) -> list[PostgresGrant]:
        if not is_id(request.lease_id, "lse"):
            raise self._admin.error("issue: malformed lease id")
        # The target's max ttl is the broker's to apply: VALID UNTIL holds the
        # role to whatever expiry the lease carries.
        check_expiry(request.expires_at, now=self._clock.now())
        check_actions(request.actions, self._config.grants)
        return [
            grant for action in request.actions for grant in self._config.grants[action]
        ]

    async def _drop_role(self, conn: Connection, name: str, progress: Progress) -> None:
        """Forbid logins, terminate sessions, reassign and drop owned, drop the role."""
        role = sql.Identifier(name)
        row = await fetchone_or_none(
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
        await terminate(conn, oid)
        async with conn.transaction():
            await lock_acls(conn)
            await conn.execute(
                sql.SQL("REASSIGN OWNED BY {} TO CURRENT_USER").format(role)
            )
            await conn.execute(sql.SQL("DROP OWNED BY {}").format(role))
            await conn.execute(sql.SQL("DROP ROLE {}").format(role))
        # A session that slipped in before NOLOGIN committed is cut here.
        await terminate(conn, oid)
        left = await fetchone(
            conn,
            sql.SQL("SELECT count(*) FROM pg_stat_activity WHERE usesysid = %s"),
            (oid,),
        )
        if left[0]:
            raise self._admin.error(f"{progress.step}: sessions of the role survived")


def _new_password() -> str:
    """Return a fresh password: 32 random bytes, url-safe base64."""
    return secrets.token_urlsafe(32)


_: type[SecretEngine] = PostgresEngine
