"""
Engine-backed credentials end to end.

The SDK, a broker over HTTP, real PostgreSQL and Redis; a ``kill -9`` between
creating a role and activating its lease; hundreds of issue/close races.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import signal
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import redis
from tests.conftest import POSTGRES_URL, require_service

from gatepass.api import create_app
from gatepass.broker import Runtime, build_runtime
from gatepass.config import Settings
from gatepass.errors import GatepassError
from gatepass.sdk import AgentIdentity, GatepassClient
from gatepass.store import Database
from gatepass.store import leases as lease_rows

from .conftest import QUICKSTART_POLICIES, free_port, start_server
from .deadline import poll
from .processes import serve, stop, write_config

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

REDIS_URL = os.environ.get("GATEPASS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
RUN = uuid.uuid4().hex[:8]
ENGINE_POLICY = """
@id("engines-in-own-tenant")
@ttl("600")
permit (
  principal,
  action in [Gatepass::Action::"read", Gatepass::Action::"write"],
  resource
)
when {
  ["postgres", "redis"].contains(resource.kind) &&
  resource.tenant == principal.tenant
};
"""


@dataclass
class Databases:
    """Two throwaway databases standing for staging and prod."""

    staging: str
    prod: str


def _admin() -> psycopg.Connection[Any]:
    return psycopg.connect(POSTGRES_URL, autocommit=True)


@pytest.fixture(scope="module")
def databases() -> Iterator[Databases]:
    """Create staging and prod databases with an ``app.tickets`` table."""
    require_service("PostgreSQL", POSTGRES_URL, 5432)
    require_service("Redis", REDIS_URL, 6379)
    names = Databases(staging=f"gp_it_{RUN}_staging", prod=f"gp_it_{RUN}_prod")
    with _admin() as conn:
        for name in (names.staging, names.prod):
            conn.execute(f'CREATE DATABASE "{name}"')
            conn.execute(f'REVOKE CONNECT ON DATABASE "{name}" FROM PUBLIC')
    for name in (names.staging, names.prod):
        with psycopg.connect(_url(name), autocommit=True) as conn:
            conn.execute("CREATE SCHEMA app")
            conn.execute("CREATE TABLE app.tickets (id serial PRIMARY KEY, title text)")
            conn.execute("INSERT INTO app.tickets (title) VALUES ('seed')")
    try:
        yield names
    finally:
        with _admin() as conn:
            for name in (names.staging, names.prod):
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            rows = conn.execute(
                "SELECT rolname FROM pg_roles WHERE shobj_description(oid, 'pg_authid')"
                " LIKE %s",
                (f"%mount=orders-%{RUN}%",),
            ).fetchall()
            for (role,) in rows:
                conn.execute(f'DROP ROLE IF EXISTS "{role}"')


def _url(database: str) -> str:
    return POSTGRES_URL.rsplit("/", 1)[0] + f"/{database}"


def engine_settings(state: Path, port: int, dbs: Databases, **extra: Any) -> Settings:
    """Settings with PostgreSQL (staging, prod) and Redis targets."""
    policies = state.parent / "policies"
    if not policies.exists():
        policies.mkdir(parents=True)
        for name in ("schema.cedarschema", "tenancy.cedar"):
            shutil.copy(QUICKSTART_POLICIES / name, policies / name)
        (policies / "engines.cedar").write_text(ENGINE_POLICY)
    grants = {
        "read": [{"schema": "app", "privileges": ["SELECT"], "tables": ["*"]}],
        "write": [
            {"schema": "app", "privileges": ["SELECT", "INSERT"], "tables": ["*"]},
            {"schema": "app", "privileges": ["USAGE"], "sequences": ["*"]},
        ],
    }

    def postgres(env: str, database: str) -> dict[str, Any]:
        return {
            "name": f"orders-{env}-{RUN}",
            "uri": f"postgresql://127.0.0.1:5432/{database}",
            "kind": "postgres",
            "environment": env,
            "tenant": "acme",
            "actions": ["read", "write"],
            "engine": {"admin_url": _url(database), "grants": grants},
        }

    raw: dict[str, Any] = {
        "server": {
            "issuer": f"http://127.0.0.1:{port}",
            "port": port,
            "state_dir": str(state),
        },
        "policy": {"directory": str(policies), "reload_interval_seconds": 0},
        "engines": {"reap_interval_seconds": 1, "call_timeout_seconds": 5},
        "targets": [
            postgres("staging", dbs.staging),
            postgres("prod", dbs.prod),
            {
                "name": f"cache-staging-{RUN}",
                "uri": "redis://127.0.0.1:6379/",
                "kind": "redis",
                "environment": "staging",
                "tenant": "acme",
                "actions": ["read", "write"],
                "engine": {
                    "admin_url": REDIS_URL,
                    "grants": {
                        "read": {"keys": [f"it{RUN}:*"], "categories": ["+@read"]},
                        "write": {
                            "keys": [f"it{RUN}:*"],
                            "categories": ["+@read", "+@write", "-@dangerous"],
                        },
                    },
                },
            },
        ],
        "demo": {"enabled": True, "tenant": "acme", "labels": {"team": "support"}},
    }
    raw.update(extra)
    return Settings.model_validate(raw)


@dataclass
class Broker:
    """A broker with engine targets, served on 127.0.0.1."""

    url: str
    runtime: Runtime
    state: Path

    def client(self) -> GatepassClient:
        """Return an SDK client for the demo agent."""
        return GatepassClient(AgentIdentity.load(self.state / "demo-agent.json"))


@pytest.fixture(scope="module")
def broker(
    databases: Databases, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Broker]:
    """The broker, with its background jobs (revocations, reaper) running."""
    state = tmp_path_factory.mktemp("engines") / "state"
    port = free_port()
    runtime = build_runtime(engine_settings(state, port, databases))
    running = start_server(create_app(runtime), port)
    try:
        yield Broker(url=running.url, runtime=runtime, state=state)
    finally:
        running.stop()
        runtime.database.dispose()


def gp_roles(database: str) -> set[str]:
    """Return the gatepass roles whose comment names this run's mounts."""
    with _admin() as conn:
        rows = conn.execute(
            "SELECT rolname FROM pg_roles WHERE rolname LIKE 'gp\\_%%' AND "
            "shobj_description(oid, 'pg_authid') LIKE %s",
            (f"%orders-%{RUN}%",),
        ).fetchall()
    del database
    return {row[0] for row in rows}


def can_login(kwargs: dict[str, Any], database: str | None = None) -> bool:
    """Tell whether the credential opens a session (on ``database`` if given)."""
    if database is not None:
        kwargs = {**kwargs, "dbname": database}
    try:
        with psycopg.connect(**kwargs, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.OperationalError:
        return False
    return True


def session_is_dead(conn: psycopg.Connection[Any]) -> bool:
    """Tell whether an open session has been cut."""
    try:
        conn.execute("SELECT 1")
    except psycopg.OperationalError:
        return True
    return False


class TestPostgres:
    """Roles per task: read is read-only, write writes, closing cuts sessions."""

    def test_read_write_and_close(self, broker: Broker, databases: Databases) -> None:
        """Read selects but cannot insert; write inserts; close cuts and forbids."""
        target = f"orders-staging-{RUN}"
        with (
            broker.client() as client,
            client.open_task(
                intent="reconcile orders",
                purpose="reporting",
                environment="staging",
                targets=[target],
            ) as task,
        ):
            read_credential = task.postgres(target, "read")
            renewed = task.renew(read_credential)
            assert renewed.expires_at >= read_credential.expires_at
            with _admin() as conn:
                row = conn.execute(
                    "SELECT rolvaliduntil FROM pg_roles WHERE rolname = %s",
                    (read_credential.fields["username"],),
                ).fetchone()
            assert row is not None
            assert abs((row[0] - renewed.expires_at).total_seconds()) < 1
            read = read_credential.connection_kwargs()
            write = task.postgres(target, "write").connection_kwargs()
            with psycopg.connect(**read, autocommit=True) as conn:
                assert conn.execute("SELECT count(*) FROM app.tickets").fetchone()
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute("INSERT INTO app.tickets (title) VALUES ('no')")
            with psycopg.connect(**write, autocommit=True) as conn:
                conn.execute("INSERT INTO app.tickets (title) VALUES ('yes')")
            live = psycopg.connect(**read, autocommit=True)
            try:
                task.close()
                # Cut within 2 s: a poll under that deadline.
                assert poll(lambda: session_is_dead(live), within=2.0)
            finally:
                live.close()
            assert not can_login(read)
        assert gp_roles(databases.staging) == set()

    def test_prod_credential_fails_on_staging(
        self, broker: Broker, databases: Databases
    ) -> None:
        """A role minted for the prod mount cannot connect to the staging database."""
        target = f"orders-prod-{RUN}"
        with (
            broker.client() as client,
            client.open_task(
                intent="read prod orders",
                purpose="reporting",
                environment="prod",
                targets=[target],
            ) as task,
        ):
            prod = task.postgres(target, "read").connection_kwargs()
            assert can_login(prod)
            assert not can_login(prod, database=databases.staging)


class TestRedis:
    """Redis users per task: allowed keys and commands only; killed on close."""

    def test_keys_commands_and_close(self, broker: Broker) -> None:
        """Read gets but cannot set; write sets; close kills the live connection."""
        target = f"cache-staging-{RUN}"
        key = f"it{RUN}:greeting"
        with (
            broker.client() as client,
            client.open_task(
                intent="warm the cache",
                purpose="reporting",
                environment="staging",
                targets=[target],
            ) as task,
        ):
            write_credential = task.redis(target, "write")
            assert task.renew(write_credential).lease_id == write_credential.lease_id
            write = redis.Redis(**write_credential.connection_kwargs())
            read = redis.Redis(**task.redis(target, "read").connection_kwargs())
            try:
                write.set(key, "hello")
                assert read.get(key) == b"hello"
                with pytest.raises(redis.exceptions.NoPermissionError):
                    read.set(key, "nope")
                with pytest.raises(redis.exceptions.NoPermissionError):
                    write.get("elsewhere:key")
                task.close()

                def killed() -> bool:
                    try:
                        read.ping()
                    except (
                        redis.exceptions.ConnectionError,
                        redis.AuthenticationError,
                    ):
                        return True
                    except redis.exceptions.ResponseError:
                        return True
                    return False

                assert poll(killed, within=2.0)
            finally:
                write.close()
                read.close()
                admin = redis.Redis.from_url(REDIS_URL)
                admin.delete(key)
                admin.close()


class TestRaces:
    """Issue/close races leave no role, user or live lease behind."""

    def test_many_issue_close_races(self, broker: Broker, databases: Databases) -> None:
        """Credentials requested while their task closes are all cleaned up."""
        pg_target, redis_target = f"orders-staging-{RUN}", f"cache-staging-{RUN}"
        client = broker.client()

        def race(index: int) -> None:
            task = client.open_task(
                intent="race",
                purpose="reporting",
                environment="staging",
                targets=[pg_target, redis_target],
            )
            target = pg_target if index % 2 else redis_target
            with ThreadPoolExecutor(max_workers=2) as pair:
                issuing = pair.submit(task.credential, target, "read")
                closing = pair.submit(task.close)
                closing.result()
                with contextlib.suppress(GatepassError):
                    issuing.result()

        with client, ThreadPoolExecutor(max_workers=16) as pool:
            list(pool.map(race, range(500)))

        def settled() -> bool:
            with broker.runtime.database.reading() as conn:
                leases = lease_rows.list_leases(conn, limit=10_000)
            return all(
                lease.state.value in {"revoked", "expired"}
                for lease in leases
                if lease.kind != "access_token"
            )

        assert poll(settled, within=30.0)
        assert gp_roles(databases.staging) == set()
        admin = redis.Redis.from_url(REDIS_URL)
        try:
            users = [
                u.decode() if isinstance(u, bytes) else str(u)
                for u in admin.acl_users()
            ]
        finally:
            admin.close()
        live = {u for u in users if u.startswith("gp_")}
        with broker.runtime.database.reading() as conn:
            ours = {
                lease.handle for lease in lease_rows.list_leases(conn, limit=10_000)
            }
        assert live & ours == set()


class TestCrashRecovery:
    """kill -9 between creating a role and activating its lease."""

    def test_orphan_role_is_reaped_after_restart(
        self, databases: Databases, tmp_path: Path
    ) -> None:
        """The broker dies after CREATE ROLE; after restart the role is removed."""
        port = free_port()
        state = tmp_path / "state"
        config = tmp_path / "gatepass.toml"
        settings = engine_settings(
            state,
            port,
            databases,
            engines={"reap_interval_seconds": 1, "call_timeout_seconds": 1},
        )
        write_config(config, settings)
        url = f"http://127.0.0.1:{port}"
        target = f"orders-staging-{RUN}"
        before = gp_roles(databases.staging)
        dying = serve(config, url, GATEPASS_FAILPOINT="credential.after_issue")
        try:
            client = GatepassClient(AgentIdentity.load(state / "demo-agent.json"))
            task = client.open_task(
                intent="crash",
                purpose="reporting",
                environment="staging",
                targets=[target],
            )
            with pytest.raises((httpx.TransportError, GatepassError)):
                task.credential(target, "read")
            assert dying.wait(timeout=10) == -signal.SIGKILL
            orphans = gp_roles(databases.staging) - before
            assert len(orphans) == 1
            database = Database(settings.store_url)
            try:
                with database.reading() as conn:
                    states = {
                        lease.state.value
                        for lease in lease_rows.list_leases(conn)
                        if lease.kind == "postgres"
                    }
            finally:
                database.dispose()
            assert states == {"pending"}
        finally:
            if dying.poll() is None:
                dying.kill()
                dying.wait()
        restarted = serve(config, url)
        try:
            # The issuance can no longer be running once the engine timeout has
            # passed: the lease is ended and its role removed on the next cycle.
            assert poll(lambda: not (gp_roles(databases.staging) & orphans), within=30)
        finally:
            stop(restarted)


def libfaketime() -> Path:
    """Return Debian's libfaketime; skip locally (fail under CI) when missing."""
    found = sorted(Path("/usr/lib").glob("*/faketime/libfaketime.so.1"))
    if found:
        return found[0]
    message = "libfaketime is not installed (apt-get install faketime)"
    if os.environ.get("CI"):
        pytest.fail(f"{message}; CI must run every test", pytrace=False)
    pytest.skip(message)


class TestClockSteps:
    """Issue 7 item 16: the broker's wall clock is stepped under live leases."""

    def test_issue7_clock_stepped_back_does_not_extend_leases(
        self, databases: Databases, tmp_path: Path
    ) -> None:
        """Set back an hour mid-lease, a role still dies at its true expiry."""
        stamp = tmp_path / "faketime"
        stamp.write_text("+0\n")
        port = free_port()
        state = tmp_path / "state"
        config = tmp_path / "gatepass.toml"
        write_config(config, engine_settings(state, port, databases))
        url = f"http://127.0.0.1:{port}"
        # libfaketime steps the broker's wall clock whenever the file changes;
        # its monotonic and boot-time clocks stay real.
        broker = serve(
            config,
            url,
            LD_PRELOAD=str(libfaketime()),
            FAKETIME_TIMESTAMP_FILE=str(stamp),
            FAKETIME_NO_CACHE="1",
            FAKETIME_DONT_FAKE_MONOTONIC="1",
        )
        target = f"orders-staging-{RUN}"
        identity = AgentIdentity.load(state / "demo-agent.json")
        try:
            with GatepassClient(identity) as client:
                short = client.open_task(
                    intent="short read",
                    purpose="reporting",
                    environment="staging",
                    targets=[target],
                    ttl=dt.timedelta(seconds=5),
                )
                credential = short.postgres(target, "read")
                name = credential.fields["username"]
                live = psycopg.connect(
                    **credential.connection_kwargs(), autocommit=True
                )
                try:
                    stamp.write_text("-1h\n")
                    # True expiry is 5 s away: the sweep ends the task, the role goes
                    # and the open session is cut, whatever the wall clock says.
                    assert poll(
                        lambda: name not in gp_roles(databases.staging), within=20
                    )
                    assert session_is_dead(live)
                finally:
                    live.close()
                stamp.write_text("+1h\n")
                offset = poll(lambda: _clock_offset(url) > 3000, within=15)
                assert offset, "the broker never saw the wall clock step"
                with client.open_task(
                    intent="long read",
                    purpose="reporting",
                    environment="staging",
                    targets=[target],
                    ttl=dt.timedelta(seconds=600),
                ) as long_task:
                    # A step forward expires nothing early: the task still issues.
                    assert can_login(
                        long_task.postgres(target, "read").connection_kwargs()
                    )
        finally:
            stop(broker)


def _clock_offset(url: str) -> float:
    """Read gatepass_clock_offset_seconds from the broker's metrics."""
    for line in httpx.get(f"{url}/metrics", timeout=5).text.splitlines():
        if line.startswith("gatepass_clock_offset_seconds "):
            return float(line.split()[1])
    return 0.0
