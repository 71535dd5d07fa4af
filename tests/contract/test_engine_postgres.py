"""The PostgreSQL engine against a real PostgreSQL: temporary login roles per lease."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import psycopg
import pytest
from cryptography.fernet import Fernet
from hypothesis import given
from hypothesis import strategies as st
from psycopg import sql
from tests.conftest import POSTGRES_URL, require_service

from gatepass.clock import FrozenClock
from gatepass.engines import (
    EngineContext,
    IssuedCredential,
    IssueRequest,
    credential_name,
    installation_marker,
    new_installation_id,
)
from gatepass.engines.postgres import REAP_GRACE, PostgresEngine
from gatepass.engines.postgres import engine as postgres_engine
from gatepass.errors import (
    ConfigurationError,
    EngineError,
    EngineUnavailableError,
    GatepassError,
)
from gatepass.ids import new_lease_id
from gatepass.models import Target
from gatepass.sealing import Sealer
from gatepass.testing import (
    EngineProbe,
    LiveSession,
    SecretEngineContract,
    eventually,
    fresh_clock,
)

# Unique per session: several developers may share one server.
RUN = uuid.uuid4().hex[:10]
# This session's broker deployment; tests of namespaces build a second one.
INSTALLATION_ID = new_installation_id()
ADMIN = f"gatepass_test_admin_{RUN}"
WEAK_ADMIN = f"gatepass_test_weak_{RUN}"
# Under trust authentication the server ignores it; it must never be echoed either way.
ADMIN_PASSWORD = "Adm1n-pw-Zq9xK-in-the-url"
MOUNTS = ("staging", "prod")
# Roles the tests create outside any mount, for the session's safety net.
FOREIGN: set[str] = set()
GRANTS: dict[str, list[dict[str, Any]]] = {
    "read": [{"schema": "app", "privileges": ["SELECT"], "tables": ["*"]}],
    "write": [
        {
            "schema": "app",
            "privileges": ["SELECT", "INSERT", "UPDATE"],
            "tables": ["*"],
        },
        {"schema": "app", "privileges": ["USAGE"], "sequences": ["*"]},
    ],
}
CUT_WITHIN_SECONDS = 2.0


def target_name(mount: str) -> str:
    """Return the target (mount) name of this session's ``mount``."""
    return f"pg-{RUN}-{mount}"


@dataclass(frozen=True)
class Cluster:
    """The server under test and the throwaway databases of this session."""

    superuser_url: str
    databases: Mapping[str, str]

    def url(
        self, mount: str, *, user: str = ADMIN, password: str = ADMIN_PASSWORD
    ) -> str:
        """Return a libpq URL for ``user`` on the database of ``mount``."""
        parts = urlsplit(self.superuser_url)
        host = f"{parts.hostname or '127.0.0.1'}:{parts.port or 5432}"
        return f"postgresql://{user}:{password}@{host}/{self.databases[mount]}"

    def superuser(self, mount: str) -> str:
        """Return the superuser's URL on the database of ``mount``."""
        parts = urlsplit(self.superuser_url)
        return parts._replace(path=f"/{self.databases[mount]}").geturl()


def _admin_setup(database: str) -> list[sql.Composed]:
    """The least-privilege admin grants of docs/engines.md, for one database."""
    db, admin = sql.Identifier(database), sql.Identifier(ADMIN)
    return [
        sql.SQL("REVOKE CONNECT ON DATABASE {} FROM PUBLIC").format(db),
        sql.SQL("GRANT CONNECT ON DATABASE {} TO {} WITH GRANT OPTION").format(
            db, admin
        ),
    ]


_SCHEMA_SETUP = """
CREATE SCHEMA app;
CREATE TABLE app.items (id serial PRIMARY KEY, note text);
CREATE TABLE app.canary (id int);
INSERT INTO app.items (note) VALUES ('first');
GRANT USAGE ON SCHEMA app TO {admin} WITH GRANT OPTION;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA app
    TO {admin} WITH GRANT OPTION;
GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA app TO {admin} WITH GRANT OPTION;
CREATE SCHEMA locked;
GRANT USAGE ON SCHEMA locked TO {admin} WITH GRANT OPTION;
CREATE TABLE locked.private (id int);
CREATE TABLE locked.partial (id int);
GRANT SELECT ON locked.partial TO {admin};
"""


def _drop_session_roles(conn: psycopg.Connection[Any]) -> None:
    rows = conn.execute(
        "SELECT rolname FROM pg_roles WHERE rolname LIKE 'gp\\_%%'"
        " AND shobj_description(oid, 'pg_authid') LIKE %s",
        (f"gatepass installation=% mount=pg-{RUN}-%",),
    ).fetchall()
    names = {row[0] for row in rows} | FOREIGN | {ADMIN, WEAK_ADMIN}
    for name in sorted(names):
        role = sql.Identifier(name)
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,))
        if exists.fetchone() is None:
            continue
        conn.execute(sql.SQL("DROP OWNED BY {}").format(role))
        conn.execute(sql.SQL("DROP ROLE {}").format(role))


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """Two throwaway databases (staging, prod) and a least-privilege admin role."""
    require_service("PostgreSQL", POSTGRES_URL, 5432)
    databases = {mount: f"gatepass_test_{RUN}_{mount}" for mount in MOUNTS}
    found = Cluster(superuser_url=POSTGRES_URL, databases=databases)
    try:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN CREATEROLE PASSWORD {}").format(
                    sql.Identifier(ADMIN), sql.Literal(ADMIN_PASSWORD)
                )
            )
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(WEAK_ADMIN), sql.Literal(ADMIN_PASSWORD)
                )
            )
            for database in databases.values():
                conn.execute(
                    sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database))
                )
                for statement in _admin_setup(database):
                    conn.execute(statement)
            conn.execute(
                sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                    sql.Identifier(databases["staging"]), sql.Identifier(WEAK_ADMIN)
                )
            )
        for mount in MOUNTS:
            with psycopg.connect(found.superuser(mount), autocommit=True) as conn:
                conn.execute(sql.SQL(_SCHEMA_SETUP).format(admin=sql.Identifier(ADMIN)))
        yield found
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            for database in databases.values():
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                        sql.Identifier(database)
                    )
                )
            _drop_session_roles(conn)


EngineFactory = Callable[..., PostgresEngine]


@pytest.fixture
def make_engine(cluster: Cluster, tmp_path: Path) -> Iterator[EngineFactory]:
    """Build engines for a mount; closed after the test."""
    engines: list[PostgresEngine] = []
    sealer = Sealer([Fernet.generate_key()])

    def make(
        mount: str = "staging",
        *,
        clock: FrozenClock | None = None,
        installation_id: str = INSTALLATION_ID,
        **settings: Any,
    ) -> PostgresEngine:
        table: dict[str, Any] = {"admin_url": cluster.url(mount), "grants": GRANTS}
        table.update(settings)
        context = EngineContext(
            state_dir=tmp_path,
            sealer=sealer,
            clock=clock or fresh_clock(),
            installation_id=installation_id,
        )
        engine = PostgresEngine.from_target(make_target(mount), table, context)
        engines.append(engine)
        return engine

    try:
        yield make
    finally:
        for engine in engines:
            anyio.run(engine.aclose)


def make_target(
    mount: str = "staging", actions: tuple[str, ...] = ("read", "write")
) -> Target:
    """Return the target of ``mount``."""
    return Target(
        name=target_name(mount),
        uri=f"https://{mount}.db.example/",
        kind="postgres",
        environment=mount,
        tenant="acme",
        risk="low",
        actions=actions,
        max_ttl=dt.timedelta(hours=1),
    )


def make_request(clock: FrozenClock, *actions: str, **changes: Any) -> IssueRequest:
    """Return a fresh request for ``actions``, one hour long."""
    lease_id = new_lease_id()
    fields: dict[str, Any] = {
        "lease_id": lease_id,
        "name": credential_name(lease_id),
        "actions": actions or ("read",),
        "principal": "agt_testtesttesttesttesttestte",
        "expires_at": clock.now() + dt.timedelta(hours=1),
    }
    fields.update(changes)
    return IssueRequest(**fields)


def scram_matches(verifier: str, password: str) -> bool:
    """Tell whether ``password`` matches a stored SCRAM-SHA-256 verifier (RFC 7677)."""
    match = re.fullmatch(
        r"SCRAM-SHA-256\$(\d+):([^$]+)\$([^:]+):(.+)", verifier, flags=re.ASCII
    )
    if match is None:
        return False
    iterations, salt, stored_key = int(match[1]), match[2], match[3]
    salted = hashlib.pbkdf2_hmac(
        "sha256", password.encode(), base64.b64decode(salt), iterations
    )
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    return hmac.compare_digest(
        hashlib.sha256(client_key).digest(), base64.b64decode(stored_key)
    )


class PostgresSession:
    """A connection of a credential, as an agent would hold it."""

    def __init__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Keep the connection."""
        self.conn = conn

    async def alive(self) -> bool:
        """Tell whether ``SELECT 1`` still works."""
        try:
            await self.conn.execute("SELECT 1")
        except psycopg.OperationalError:
            return False
        return True

    async def aclose(self) -> None:
        """Close the connection."""
        await self.conn.close()


class PostgresProbe:
    """Looks at the server as its superuser, and logs in as agents do."""

    def __init__(self, cluster: Cluster, mount: str) -> None:
        """Probe the database of ``mount``."""
        self.cluster = cluster
        self.mount = mount

    @asynccontextmanager
    async def superuser(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """Yield a superuser connection to the mount's database."""
        conn = await psycopg.AsyncConnection.connect(
            self.cluster.superuser(self.mount), autocommit=True
        )
        async with conn:
            yield conn

    async def connect(
        self, credential: IssuedCredential, database: str | None = None
    ) -> psycopg.AsyncConnection[Any]:
        """Log in with the credential's fields and secret."""
        assert credential.secret is not None
        fields = credential.fields
        return await psycopg.AsyncConnection.connect(
            host=fields["host"],
            port=fields["port"],
            dbname=database or fields["database"],
            user=fields["username"],
            password=credential.secret.reveal(),
            connect_timeout=5,
            autocommit=True,
        )

    async def can_login(self, credential: IssuedCredential) -> bool:
        """Tell whether the secret matches the stored verifier and a login works."""
        if credential.secret is None:
            return False
        # Verify the password itself: the test server may trust every local login.
        async with self.superuser() as conn:
            cursor = await conn.execute(
                "SELECT rolpassword FROM pg_authid WHERE rolname = %s",
                (credential.handle,),
            )
            row = await cursor.fetchone()
        if (
            row is None
            or not row[0]
            or not scram_matches(row[0], credential.secret.reveal())
        ):
            return False
        try:
            session = await self.connect(credential)
        except psycopg.OperationalError:
            return False
        async with session:
            await session.execute("SELECT 1")
        return True

    async def exists(self, handle: str) -> bool:
        """Tell whether the role exists."""
        async with self.superuser() as conn:
            cursor = await conn.execute(
                "SELECT 1 FROM pg_roles WHERE rolname = %s", (handle,)
            )
            return await cursor.fetchone() is not None

    async def open_session(self, credential: IssuedCredential) -> LiveSession:
        """Open a connection as the credential."""
        return PostgresSession(await self.connect(credential))

    async def create_foreign(self) -> list[str]:
        """
        Create roles the staging engine must leave alone.

        A plain role, a gp_ role by hand, gp_ roles of another mount and of
        another installation's staging mount, and one with the comment of a
        broker from before installation markers.
        """
        marker = installation_marker(INSTALLATION_ID)
        staging = target_name("staging")
        commented = {
            credential_name(new_lease_id()): (
                f"gatepass installation={marker} mount=pg-{RUN}-elsewhere"
            ),
            credential_name(new_lease_id()): (
                f"gatepass installation={installation_marker(new_installation_id())}"
                f" mount={staging}"
            ),
            credential_name(new_lease_id()): f"gatepass mount={staging}",
        }
        plain = f"gatepass_test_foreign_{uuid.uuid4().hex[:8]}"
        by_hand = credential_name(new_lease_id())
        names = [plain, by_hand, *commented]
        FOREIGN.update(names)
        async with self.superuser() as conn:
            for name in names:
                await conn.execute(
                    sql.SQL("CREATE ROLE {}").format(sql.Identifier(name))
                )
            for name, prefix in commented.items():
                comment = (
                    f"{prefix} lease={new_lease_id()} created=2000-01-01T00:00:00+00:00"
                )
                await conn.execute(
                    sql.SQL("COMMENT ON ROLE {} IS {}").format(
                        sql.Identifier(name), sql.Literal(comment)
                    )
                )
        return names

    async def drop_foreign(self, names: list[str]) -> None:
        """Drop the roles :meth:`create_foreign` made."""
        async with self.superuser() as conn:
            for name in names:
                await conn.execute(
                    sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name))
                )

    async def canary_exists(self) -> bool:
        """Tell whether the canary table survived."""
        async with self.superuser() as conn:
            cursor = await conn.execute("SELECT to_regclass('app.canary') IS NOT NULL")
            row = await cursor.fetchone()
            return bool(row and row[0])


@pytest.fixture
def staging(cluster: Cluster) -> PostgresProbe:
    """A probe of the staging mount."""
    return PostgresProbe(cluster, "staging")


def _probe_conforms(probe: PostgresProbe) -> EngineProbe:
    """Let mypy prove that the probe satisfies the contract's protocol."""
    return probe


@pytest.mark.postgres
class TestPostgresEngineContract(SecretEngineContract):
    """The shared engine contract, on the staging mount."""

    @pytest.fixture
    def clock(self) -> FrozenClock:
        """The engine's clock, starting now."""
        return fresh_clock()

    @pytest.fixture
    def actions(self) -> tuple[str, ...]:
        """The contract issues read credentials."""
        return ("read",)

    @pytest.fixture
    def engine(self, make_engine: EngineFactory, clock: FrozenClock) -> PostgresEngine:
        """The staging engine."""
        return make_engine("staging", clock=clock)

    @pytest.fixture
    def probe(self, staging: PostgresProbe) -> EngineProbe:
        """The staging probe."""
        return _probe_conforms(staging)

    @pytest.fixture
    def other_installation(
        self, make_engine: EngineFactory, clock: FrozenClock
    ) -> PostgresEngine:
        """The staging mount of another deployment (same target name, same cluster)."""
        return make_engine(
            "staging", clock=clock, installation_id=new_installation_id()
        )


@pytest.fixture
def issued(make_engine: EngineFactory) -> Iterator[list[tuple[PostgresEngine, str]]]:
    """Credentials a test issued; revoked after it, even on failure."""
    created: list[tuple[PostgresEngine, str]] = []
    try:
        yield created
    finally:

        async def revoke_all() -> None:
            for engine, handle in created:
                await engine.revoke(handle)

        anyio.run(revoke_all)


@pytest.mark.postgres
class TestGrants:
    """Credentials carry exactly the grants of their actions."""

    def test_read_can_select_but_not_insert(
        self, make_engine: EngineFactory, staging: PostgresProbe, issued: list[Any]
    ) -> None:
        """A read credential reads the schema's tables and cannot write them."""
        clock = fresh_clock()
        engine = make_engine("staging", clock=clock)

        async def main() -> None:
            credential = await engine.issue(make_request(clock, "read"))
            issued.append((engine, credential.handle))
            async with await staging.connect(credential) as conn:
                cursor = await conn.execute("SELECT note FROM app.items ORDER BY id")
                assert (await cursor.fetchone()) == ("first",)
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    await conn.execute("INSERT INTO app.items (note) VALUES ('no')")

        anyio.run(main)

    def test_write_can_insert_with_the_sequence(
        self, make_engine: EngineFactory, staging: PostgresProbe, issued: list[Any]
    ) -> None:
        """A write credential inserts rows, drawing ids from the serial sequence."""
        clock = fresh_clock()
        engine = make_engine("staging", clock=clock)

        async def main() -> None:
            credential = await engine.issue(make_request(clock, "write"))
            issued.append((engine, credential.handle))
            async with await staging.connect(credential) as conn:
                cursor = await conn.execute(
                    "INSERT INTO app.items (note) VALUES ('agent') RETURNING id"
                )
                assert (await cursor.fetchone()) is not None
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    await conn.execute("DELETE FROM app.items")

        anyio.run(main)

    def test_named_tables_grant_only_those(
        self, make_engine: EngineFactory, staging: PostgresProbe, issued: list[Any]
    ) -> None:
        """A grant naming a table does not reach the schema's other tables."""
        clock = fresh_clock()
        grants = {
            "read": [{"schema": "app", "privileges": ["SELECT"], "tables": ["items"]}],
            "write": GRANTS["write"],
        }
        engine = make_engine("staging", clock=clock, grants=grants)

        async def main() -> None:
            credential = await engine.issue(make_request(clock, "read"))
            issued.append((engine, credential.handle))
            async with await staging.connect(credential) as conn:
                await conn.execute("SELECT count(*) FROM app.items")
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    await conn.execute("SELECT count(*) FROM app.canary")

        anyio.run(main)

    def test_role_is_short_lived_and_powerless(
        self, make_engine: EngineFactory, staging: PostgresProbe, issued: list[Any]
    ) -> None:
        """The role expires with the lease, cannot escalate, keeps no plain password."""
        clock = fresh_clock()
        engine = make_engine("staging", clock=clock, connection_limit=3)

        async def main() -> None:
            request = make_request(clock, "read")
            credential = await engine.issue(request)
            issued.append((engine, credential.handle))
            assert credential.fields == {
                "host": urlsplit(POSTGRES_URL).hostname,
                "port": urlsplit(POSTGRES_URL).port or 5432,
                "database": staging.cluster.databases["staging"],
                "username": request.name,
            }
            async with staging.superuser() as conn:
                cursor = await conn.execute(
                    "SELECT rolvaliduntil, rolconnlimit, rolinherit, rolsuper,"
                    " rolcreaterole, rolcreatedb, rolreplication, rolbypassrls,"
                    " rolpassword, shobj_description(oid, 'pg_authid')"
                    " FROM pg_authid WHERE rolname = %s",
                    (request.name,),
                )
                row = await cursor.fetchone()
            assert row is not None
            assert row[0] == request.expires_at
            assert row[1] == 3
            assert row[2:8] == (False, False, False, False, False, False)
            assert credential.secret is not None
            assert row[8].startswith("SCRAM-SHA-256$")
            assert credential.secret.reveal() not in row[8]
            assert row[9].startswith(
                f"gatepass installation={installation_marker(INSTALLATION_ID)}"
                f" mount={target_name('staging')} lease={request.lease_id} "
            )

        anyio.run(main)


@pytest.mark.postgres
class TestRevocation:
    """Revocation cuts what is running, not only what comes next."""

    def test_revoke_cuts_a_running_query_within_two_seconds(
        self, make_engine: EngineFactory, staging: PostgresProbe, issued: list[Any]
    ) -> None:
        """A session busy in a long query is terminated, and a new login fails."""
        clock = fresh_clock()
        engine = make_engine("staging", clock=clock)

        async def main() -> None:
            credential = await engine.issue(make_request(clock, "read"))
            issued.append((engine, credential.handle))
            conn = await staging.connect(credential)
            outcome: list[BaseException] = []

            async def hold() -> None:
                try:
                    await conn.execute("SELECT pg_sleep(30)")
                except psycopg.OperationalError as exc:
                    outcome.append(exc)

            try:
                async with anyio.create_task_group() as group:
                    group.start_soon(hold)

                    async def running() -> bool:
                        async with staging.superuser() as admin:
                            cursor = await admin.execute(
                                "SELECT 1 FROM pg_stat_activity WHERE usename = %s"
                                " AND query LIKE 'SELECT pg_sleep%%'",
                                (credential.handle,),
                            )
                            return await cursor.fetchone() is not None

                    assert await eventually(running, within=5)
                    with anyio.fail_after(CUT_WITHIN_SECONDS):
                        await engine.revoke(credential.handle)
                        while not outcome:
                            with anyio.move_on_after(0.02):
                                await anyio.Event().wait()
            finally:
                await conn.close()
            assert outcome
            assert not await staging.can_login(credential)

        anyio.run(main)

    def test_revoke_removes_what_the_session_created(
        self, make_engine: EngineFactory, staging: PostgresProbe, issued: list[Any]
    ) -> None:
        """A role that owns temporary objects is still dropped."""
        clock = fresh_clock()
        engine = make_engine("staging", clock=clock)

        async def main() -> None:
            credential = await engine.issue(make_request(clock, "read"))
            issued.append((engine, credential.handle))
            conn = await staging.connect(credential)
            try:
                await conn.execute("CREATE TEMP TABLE scratch (id int)")
                await engine.revoke(credential.handle)
            finally:
                await conn.close()
            assert not await staging.exists(credential.handle)

        anyio.run(main)


@pytest.mark.postgres
class TestMounts:
    """Mounts are isolated from each other although roles are cluster-wide."""

    def test_credential_of_one_mount_fails_on_another(
        self, make_engine: EngineFactory, cluster: Cluster, issued: list[Any]
    ) -> None:
        """A staging credential connects to staging and is refused by prod."""
        clock = fresh_clock()
        engine = make_engine("staging", clock=clock)
        staging = PostgresProbe(cluster, "staging")

        async def main() -> None:
            credential = await engine.issue(make_request(clock, "write"))
            issued.append((engine, credential.handle))
            assert await staging.can_login(credential)
            with pytest.raises(psycopg.OperationalError, match="permission denied"):
                await staging.connect(credential, database=cluster.databases["prod"])

        anyio.run(main)

    def test_reap_spares_roles_of_another_mount(
        self, make_engine: EngineFactory, cluster: Cluster, issued: list[Any]
    ) -> None:
        """Reaping prod never removes a staging role, whatever prod's live set."""
        clock = fresh_clock()
        staging_engine = make_engine("staging", clock=clock)
        prod_engine = make_engine("prod", clock=clock)
        staging = PostgresProbe(cluster, "staging")

        async def main() -> None:
            credential = await staging_engine.issue(make_request(clock, "read"))
            issued.append((staging_engine, credential.handle))
            clock.advance(dt.timedelta(days=1))
            assert credential.handle not in await prod_engine.reap(set())
            assert await staging.exists(credential.handle)

        anyio.run(main)

    def test_reap_spares_roles_younger_than_the_grace(
        self, make_engine: EngineFactory, staging: PostgresProbe, issued: list[Any]
    ) -> None:
        """A role just issued (its pending lease not yet visible) survives one reap."""
        clock = fresh_clock()
        engine = make_engine("staging", clock=clock)

        async def main() -> None:
            credential = await engine.issue(make_request(clock, "read"))
            issued.append((engine, credential.handle))
            clock.advance(REAP_GRACE - dt.timedelta(seconds=1))
            assert credential.handle not in await engine.reap(set())
            assert await staging.exists(credential.handle)
            clock.advance(dt.timedelta(seconds=1))
            assert credential.handle in await engine.reap(set())
            assert not await staging.exists(credential.handle)

        anyio.run(main)


HOSTILE_TEXT = [
    'app"; DROP TABLE app.canary; --',
    "app'; DROP TABLE app.canary; --",
    "app; DROP TABLE app.canary",
    "äpp",
    "app\u200b",
    "app\n",
    "",
    "x" * 10_000,
]
FAKE_ADMIN_URL = f"postgresql://admin:{ADMIN_PASSWORD}@127.0.0.1:1/db"


def build(settings: Mapping[str, Any], target: Target | None = None) -> PostgresEngine:
    """Build an engine without touching a server."""
    context = EngineContext(
        state_dir=Path("/nonexistent"),
        sealer=Sealer([Fernet.generate_key()]),
        clock=fresh_clock(),
        installation_id=INSTALLATION_ID,
    )
    return PostgresEngine.from_target(target or make_target(), settings, context)


def settings_with(**changes: Any) -> dict[str, Any]:
    """Valid settings with some keys replaced."""
    table: dict[str, Any] = {"admin_url": FAKE_ADMIN_URL, "grants": GRANTS}
    table.update(changes)
    return table


class TestSettings:
    """Configuration is validated at construction, with the failing key named."""

    def test_valid_settings_build(self) -> None:
        """The documented example builds an engine."""
        assert build(settings_with()).kind == "postgres"

    @pytest.mark.parametrize("text", HOSTILE_TEXT)
    def test_hostile_schema_names_are_refused(self, text: str) -> None:
        """Quotes, semicolons, unicode, newlines and 10 kB names never reach SQL."""
        grants = {
            "read": [{"schema": text, "privileges": ["SELECT"], "tables": ["*"]}],
            "write": GRANTS["write"],
        }
        with pytest.raises(ConfigurationError) as caught:
            build(settings_with(grants=grants))
        assert caught.value.detail.startswith(
            f"targets.{target_name('staging')}.engine"
        )
        assert "grants.read.0.schema" in caught.value.detail
        assert len(caught.value.detail) < 500

    @pytest.mark.parametrize("text", HOSTILE_TEXT)
    def test_hostile_table_names_are_refused(self, text: str) -> None:
        """Table names obey the same identifier rule."""
        grants = {
            "read": [{"schema": "app", "privileges": ["SELECT"], "tables": [text]}],
            "write": GRANTS["write"],
        }
        with pytest.raises(ConfigurationError, match=r"grants\.read\.0\.tables"):
            build(settings_with(grants=grants))

    @pytest.mark.parametrize(
        "privilege",
        ["ALL", "SELECT; DROP TABLE app.canary", "select", "CREATE", "x" * 10_000],
    )
    def test_privileges_outside_the_allow_list_are_refused(
        self, privilege: str
    ) -> None:
        """Only the listed privilege keywords are accepted, exactly as spelled."""
        grants = {
            "read": [{"schema": "app", "privileges": [privilege], "tables": ["*"]}],
            "write": GRANTS["write"],
        }
        with pytest.raises(ConfigurationError, match="privileges") as caught:
            build(settings_with(grants=grants))
        assert len(caught.value.detail) < 500

    @pytest.mark.parametrize(
        ("grant", "problem"),
        [
            ({"schema": "app", "privileges": ["USAGE"], "tables": ["*"]}, "USAGE"),
            ({"schema": "app", "privileges": ["DELETE"], "sequences": ["*"]}, "DELETE"),
            ({"schema": "app", "privileges": ["SELECT"]}, "exactly one"),
            (
                {
                    "schema": "app",
                    "privileges": ["SELECT"],
                    "tables": ["*"],
                    "sequences": ["*"],
                },
                "exactly one",
            ),
            (
                {"schema": "app", "privileges": ["SELECT"], "tables": ["*", "items"]},
                "alone",
            ),
            ({"schema": "app", "privileges": ["SELECT"], "tables": []}, "at least 1"),
            ({"schema": "app", "privileges": [], "tables": ["*"]}, "at least 1"),
            (
                {"schema": "app", "privileges": ["SELECT"], "tables": ["*"], "x": 1},
                "extra inputs",
            ),
        ],
    )
    def test_malformed_grants_are_refused(
        self, grant: dict[str, Any], problem: str
    ) -> None:
        """Privileges must suit the object kind; a grant names one kind of object."""
        grants = {"read": [grant], "write": GRANTS["write"]}
        with pytest.raises(ConfigurationError, match=problem):
            build(settings_with(grants=grants))

    def test_every_action_needs_grants(self) -> None:
        """A target action without grants is a configuration error."""
        with pytest.raises(ConfigurationError, match=r"engine\.grants\.write: missing"):
            build(settings_with(grants={"read": GRANTS["read"]}))

    def test_grants_for_unknown_actions_are_refused(self) -> None:
        """Grants for an action the target does not offer are refused."""
        grants = {**GRANTS, "admin": GRANTS["read"]}
        with pytest.raises(ConfigurationError, match=r"grants\.admin: not an action"):
            build(settings_with(grants=grants))

    def test_unknown_keys_are_refused(self) -> None:
        """A misspelt key is an error, not ignored."""
        with pytest.raises(ConfigurationError, match=r"engine\.connection_limt"):
            build(settings_with(connection_limt=3))

    def test_exactly_one_admin_source(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Either admin_url or admin_url_env, never both and never neither."""
        monkeypatch.setenv("GP_TEST_ADMIN_URL", FAKE_ADMIN_URL)
        with pytest.raises(ConfigurationError, match="exactly one"):
            build(settings_with(admin_url_env="GP_TEST_ADMIN_URL"))
        with pytest.raises(ConfigurationError, match="exactly one"):
            build({"grants": GRANTS})

    def test_admin_url_from_the_environment(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The admin URL is read from the named variable, which must be set."""
        table = {"admin_url_env": "GP_TEST_ADMIN_URL", "grants": GRANTS}
        monkeypatch.delenv("GP_TEST_ADMIN_URL", raising=False)
        with pytest.raises(ConfigurationError, match="GP_TEST_ADMIN_URL is not set"):
            build(table)
        monkeypatch.setenv("GP_TEST_ADMIN_URL", FAKE_ADMIN_URL)
        assert build(table).kind == "postgres"

    @pytest.mark.parametrize(
        "url",
        [
            f"postgresql://admin:{ADMIN_PASSWORD}@[::1/db",
            f"host=x password={ADMIN_PASSWORD} junk",
            f"postgresql://admin:{ADMIN_PASSWORD} x@127.0.0.1/db",
        ],
    )
    def test_malformed_admin_url_is_not_echoed(self, url: str) -> None:
        """A connection string that does not parse is refused without quoting it."""
        with pytest.raises(ConfigurationError, match="admin_url") as caught:
            build(settings_with(admin_url=url))
        assert_no_secret(caught.value)

    def test_agent_facing_defaults_and_overrides(self) -> None:
        """Host, port and database default to the admin URL's and can be overridden."""
        engine = build(
            settings_with(host="db.example.com", port=6432, database="app_db")
        )
        mount = engine.config
        assert (mount.host, mount.port, mount.database) == (
            "db.example.com",
            6432,
            "app_db",
        )
        defaults = build(settings_with()).config
        assert (defaults.host, defaults.port, defaults.database) == (
            "127.0.0.1",
            1,
            "db",
        )

    def test_unusable_defaults_need_explicit_values(self) -> None:
        """Without a TCP host or a database in the admin URL they must be configured."""
        with pytest.raises(ConfigurationError, match=r"engine\.host"):
            build(settings_with(admin_url="postgresql:///db"))
        with pytest.raises(ConfigurationError, match=r"engine\.database"):
            build(settings_with(admin_url="postgresql://127.0.0.1"))
        with pytest.raises(ConfigurationError, match=r"engine\.database"):
            build(settings_with(database='db"; --'))

    @given(st.text(max_size=80))
    def test_any_accepted_schema_is_a_plain_identifier(self, text: str) -> None:
        """Whatever text is offered as a schema, only plain identifiers pass."""
        grants = {
            "read": [{"schema": text, "privileges": ["SELECT"], "tables": ["*"]}],
            "write": GRANTS["write"],
        }
        if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", text):
            assert build(settings_with(grants=grants)).kind == "postgres"
        else:
            with pytest.raises(ConfigurationError, match="schema"):
                build(settings_with(grants=grants))


def assert_no_secret(error: BaseException, *secrets: str) -> None:
    """Assert the error's text and chain never show the admin password or URL."""
    hidden = [ADMIN_PASSWORD, *secrets]
    texts = [str(error), repr(error), getattr(error, "detail", "")]
    assert error.__cause__ is None
    assert error.__context__ is None
    for text in texts:
        for secret in hidden:
            assert secret not in text
        assert "postgresql://" not in text
        assert "password=" not in text


HOSTILE_HANDLES = [
    "gp_x'; DROP TABLE app.canary; --",
    'gp_aaaaaaaaaaaaaaaaaaaaaaaaaa"; DROP TABLE app.canary; --',
    "gp_AAAAAAAAAAAAAAAAAAAAAAAAAA",
    "gp_aaaaaaaaaaaaaaaaaaaaaaaaaa\n",
    "gp_aaaaaaaaaaaaaaaaaaaaaaaaa",
    "postgres",
    "gp_" + "a" * 10_000,
    "",
]


@pytest.mark.postgres
class TestHostileRequests:
    """Nothing taken from a request is ever executed."""

    @pytest.mark.parametrize("handle", HOSTILE_HANDLES)
    def test_revoke_refuses_handles_that_are_not_gatepass_names(
        self, make_engine: EngineFactory, staging: PostgresProbe, handle: str
    ) -> None:
        """Revoke refuses anything but gp_ plus 26 base32 characters."""
        engine = make_engine("staging")

        async def main() -> None:
            with pytest.raises(EngineError, match="malformed credential name"):
                await engine.revoke(handle)
            assert await staging.canary_exists()
            assert await staging.exists("postgres")

        anyio.run(main)

    @pytest.mark.parametrize("name", HOSTILE_HANDLES)
    def test_issue_refuses_names_that_are_not_gatepass_names(
        self, make_engine: EngineFactory, staging: PostgresProbe, name: str
    ) -> None:
        """Issue refuses a malformed name before connecting."""
        clock = fresh_clock()
        engine = make_engine("staging", clock=clock)

        async def main() -> None:
            with pytest.raises(EngineError, match="malformed credential name"):
                await engine.issue(make_request(clock, "read", name=name))
            assert await staging.canary_exists()

        anyio.run(main)

    def test_hostile_principal_and_lease_id(
        self, make_engine: EngineFactory, staging: PostgresProbe, issued: list[Any]
    ) -> None:
        """The principal never reaches SQL; a malformed lease id is refused."""
        clock = fresh_clock()
        engine = make_engine("staging", clock=clock)
        hostile = "agt'); DROP TABLE app.canary; -- \u2603" + "x" * 10_000

        async def main() -> None:
            credential = await engine.issue(
                make_request(clock, "read", principal=hostile)
            )
            issued.append((engine, credential.handle))
            with pytest.raises(EngineError, match="malformed lease id"):
                await engine.issue(make_request(clock, "read", lease_id=hostile))
            with pytest.raises(EngineError, match="no grants"):
                await engine.issue(make_request(clock, "read", actions=("drop",)))
            with pytest.raises(EngineError, match="timezone-aware"):
                await engine.issue(
                    make_request(clock, "read", expires_at=dt.datetime(2030, 1, 1))  # noqa: DTZ001
                )
            assert await staging.canary_exists()

        anyio.run(main)


@pytest.mark.postgres
class TestCheckAndErrors:
    """check() finds misconfiguration early; no error text carries a secret."""

    def test_check_passes_for_the_least_privilege_admin(
        self, make_engine: EngineFactory
    ) -> None:
        """The documented CREATEROLE admin, not a superuser, is enough."""
        anyio.run(make_engine("staging").check)
        anyio.run(make_engine("prod").check)

    def test_unreachable_server_is_unavailable_and_not_echoed(
        self, make_engine: EngineFactory
    ) -> None:
        """A refused connection raises EngineUnavailableError without the URL."""
        engine = make_engine("staging", admin_url=FAKE_ADMIN_URL)
        clock = fresh_clock()

        async def main() -> None:
            calls: list[Callable[[], Awaitable[object]]] = [
                engine.check,
                lambda: engine.issue(make_request(clock, "read")),
                lambda: engine.revoke(make_request(clock).name),
                lambda: engine.reap(set()),
            ]
            for call in calls:
                with pytest.raises(EngineUnavailableError) as caught:
                    await call()
                assert_no_secret(caught.value)

        anyio.run(main)

    def test_refused_login_is_an_engine_error_and_not_echoed(
        self, make_engine: EngineFactory, cluster: Cluster
    ) -> None:
        """A role the server does not know is refused; the password stays hidden."""
        url = cluster.url("staging", user=f"nobody_{RUN}")
        engine = make_engine("staging", admin_url=url)

        async def main() -> None:
            with pytest.raises(EngineError) as caught:
                await engine.check()
            assert not isinstance(caught.value, EngineUnavailableError)
            assert "refused" in caught.value.detail
            assert_no_secret(caught.value)

        anyio.run(main)

    def test_admin_without_createrole_fails_without_leaking(
        self,
        make_engine: EngineFactory,
        cluster: Cluster,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """check() names the missing CREATEROLE; a failed issue shows no password."""
        canary_password = "Canary-Password-9f8e7d6c5b4a"
        monkeypatch.setattr(postgres_engine, "_new_password", lambda: canary_password)
        clock = fresh_clock()
        engine = make_engine(
            "staging", clock=clock, admin_url=cluster.url("staging", user=WEAK_ADMIN)
        )

        async def main() -> None:
            with pytest.raises(EngineError, match="lacks CREATEROLE") as caught:
                await engine.check()
            assert_no_secret(caught.value)
            with pytest.raises(EngineError) as failed:
                await engine.issue(make_request(clock, "read"))
            assert "create role" in failed.value.detail
            assert_no_secret(failed.value, canary_password, "SCRAM-SHA-256")

        anyio.run(main)

    @pytest.mark.parametrize(
        ("table", "problem"),
        [
            ("private", "cannot grant SELECT on locked.private"),
            ("partial", "cannot grant SELECT on locked.partial"),
        ],
    )
    def test_missing_grant_options_fail_check_and_issue(
        self,
        make_engine: EngineFactory,
        staging: PostgresProbe,
        monkeypatch: pytest.MonkeyPatch,
        table: str,
        problem: str,
    ) -> None:
        """An admin unable to pass a privilege on fails check; issue leaves no role."""
        canary_password = "Canary-Password-1a2b3c4d5e6f"
        monkeypatch.setattr(postgres_engine, "_new_password", lambda: canary_password)
        clock = fresh_clock()
        grants = {
            "read": [{"schema": "locked", "privileges": ["SELECT"], "tables": [table]}],
            "write": GRANTS["write"],
        }
        engine = make_engine("staging", clock=clock, grants=grants)

        async def main() -> None:
            with pytest.raises(EngineError, match=problem) as caught:
                await engine.check()
            assert_no_secret(caught.value)
            request = make_request(clock, "read")
            with pytest.raises(EngineError) as failed:
                await engine.issue(request)
            assert_no_secret(failed.value, canary_password)
            assert not await staging.exists(request.name)

        anyio.run(main)

    def test_check_names_a_missing_schema_or_table(
        self, make_engine: EngineFactory
    ) -> None:
        """A grant on an absent schema or table fails check with its name."""
        missing_schema = {
            "read": [{"schema": "nowhere", "privileges": ["SELECT"], "tables": ["*"]}],
            "write": GRANTS["write"],
        }
        missing_table = {
            "read": [{"schema": "app", "privileges": ["SELECT"], "tables": ["ghost"]}],
            "write": GRANTS["write"],
        }

        async def main() -> None:
            with pytest.raises(EngineError, match="nowhere"):
                await make_engine("staging", grants=missing_schema).check()
            with pytest.raises(EngineError, match=r"app\.ghost does not exist"):
                await make_engine("staging", grants=missing_table).check()

        anyio.run(main)

    def test_errors_are_gatepass_errors(self) -> None:
        """Engine errors belong to the documented tree."""
        assert issubclass(EngineUnavailableError, EngineError)
        assert issubclass(EngineError, GatepassError)
