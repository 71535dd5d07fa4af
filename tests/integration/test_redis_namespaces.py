"""
Two broker deployments sharing one Redis (issue 7, item 9).

Each broker has its own store and so its own installation id; both serve a target
of the same name on the same Redis. Before installation markers, the reaper of one
removed every ``gp_`` user its own store had no lease for, so broker B deleted
broker A's live users. Here: real brokers (``build_runtime`` + HTTP + SDK), a real
``kill -9`` between creating a user and activating its lease, and the real Redis.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import anyio
import httpx
import pytest
import redis
from tests.conftest import require_service

from gatepass.api import create_app
from gatepass.broker import Runtime, build_runtime
from gatepass.config import Settings, load_settings
from gatepass.engines import IssueRequest, credential_name, installation_marker
from gatepass.errors import GatepassError
from gatepass.ids import new_lease_id
from gatepass.sdk import AgentIdentity, GatepassClient
from gatepass.store import Database, keys
from gatepass.store import leases as lease_rows

from .conftest import QUICKSTART_POLICIES, free_port, start_server

pytestmark = [pytest.mark.slow, pytest.mark.redis]

REDIS_URL = os.environ.get("GATEPASS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
RUN = uuid.uuid4().hex[:8]
# Both deployments call their target the same: names are no namespace.
TARGET = f"cache-{RUN}"
ENGINE_POLICY = """
@id("redis-in-own-tenant")
@ttl("600")
permit (principal, action == Gatepass::Action::"read", resource)
when { resource.kind == "redis" && resource.tenant == principal.tenant };
"""


def poll(check: Callable[[], bool], *, within: float) -> bool:
    """Call ``check`` until it is true or ``within`` seconds pass."""
    deadline = time.monotonic() + within
    step = threading.Event()
    while time.monotonic() < deadline:
        if check():
            return True
        # One bounded step of the poll (nobody sets the event).
        step.wait(0.05)
    return bool(check())


@dataclass
class Deployment:
    """One broker deployment: its configuration file, state and settings."""

    config: Path
    state: Path
    port: int
    settings: Settings

    @property
    def url(self) -> str:
        """The broker's base URL."""
        return f"http://127.0.0.1:{self.port}"

    def client(self) -> GatepassClient:
        """Return an SDK client for the deployment's demo agent."""
        return GatepassClient(AgentIdentity.load(self.state / "demo-agent.json"))

    def marker(self) -> str:
        """Read the installation marker the deployment stored at its first start."""
        database = Database(self.settings.store_url)
        try:
            with database.reading() as conn:
                stored = keys.read_setting(conn, "installation_id")
        finally:
            database.dispose()
        assert stored is not None
        return installation_marker(stored.decode())


def make_deployment(root: Path, name: str) -> Deployment:
    """Write the configuration of a broker with one Redis target under ``root``."""
    home = root / name
    policies = home / "policies"
    policies.mkdir(parents=True)
    for file_name in ("schema.cedarschema", "tenancy.cedar"):
        shutil.copy(QUICKSTART_POLICIES / file_name, policies / file_name)
    (policies / "redis.cedar").write_text(ENGINE_POLICY)
    port = free_port()
    state = home / "state"
    config = home / "gatepass.toml"
    config.write_text(
        f"""
[server]
issuer = "http://127.0.0.1:{port}"
port = {port}
state_dir = {json.dumps(str(state))}

[policy]
directory = {json.dumps(str(policies))}
reload_interval_seconds = 0

[engines]
reap_interval_seconds = 1
call_timeout_seconds = 1

[[targets]]
name = "{TARGET}"
uri = "redis://127.0.0.1:6379/"
kind = "redis"
environment = "staging"
tenant = "acme"
actions = ["read"]

[targets.engine]
admin_url = {json.dumps(REDIS_URL)}

[targets.engine.grants.read]
keys = ["ns{RUN}:*"]
categories = ["+@read"]
commands = ["+ping"]

[demo]
enabled = true
tenant = "acme"
labels = {{ team = "support" }}
"""
    )
    return Deployment(
        config=config, state=state, port=port, settings=load_settings(config)
    )


def acl_users() -> set[str]:
    """Return the Redis server's ACL users."""
    admin = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        return {str(user) for user in admin.acl_users()}
    finally:
        admin.close()


def can_ping(kwargs: dict[str, object]) -> bool:
    """Tell whether a credential authenticates and answers PING."""
    client = redis.Redis(**kwargs)  # type: ignore[arg-type]
    try:
        return bool(client.ping())
    except (redis.exceptions.AuthenticationError, redis.exceptions.ConnectionError):
        return False
    finally:
        client.close()


def make_orphan(runtime: Runtime) -> str:
    """
    Create a user through the broker's engine with no lease in its store.

    What a lost store or an abandoned issuance leaves behind; returns the user.
    """
    lease_id = new_lease_id()
    request = IssueRequest(
        lease_id=lease_id,
        name=credential_name(lease_id),
        actions=("read",),
        principal="agt_orphan",
        expires_at=runtime.context.clock.now() + dt.timedelta(minutes=5),
    )
    engine = runtime.context.engines[TARGET]
    return anyio.run(engine.issue, request).handle


def reap(runtime: Runtime) -> list[str]:
    """Run one reaper pass of the broker; return the users it removed."""
    return anyio.run(runtime.broker.revocations.reap).get(TARGET, [])


@pytest.fixture
def deployments(tmp_path: Path) -> Iterator[tuple[Deployment, Deployment]]:
    """Two deployments; every Redis user either created is deleted afterwards."""
    require_service("Redis", REDIS_URL, 6379)
    pair = (make_deployment(tmp_path, "a"), make_deployment(tmp_path, "b"))
    try:
        yield pair
    finally:
        prefixes = [
            f"gp_{deployment.marker()}_"
            for deployment in pair
            if (deployment.state / "gatepass.db").exists()
        ]
        leftovers = [u for u in acl_users() if u.startswith(tuple(prefixes))]
        if prefixes and leftovers:
            admin = redis.Redis.from_url(REDIS_URL)
            try:
                admin.acl_deluser(*leftovers)
            finally:
                admin.close()


def test_issue9_brokers_sharing_a_redis_reap_only_their_own(
    deployments: tuple[Deployment, Deployment],
) -> None:
    """Broker B never removes A's live user; each broker removes its own orphan."""
    a, b = deployments
    runtime_a = build_runtime(a.settings)
    runtime_b = build_runtime(b.settings)
    # Reaping is driven by hand below, so the order of the passes is the test's.
    server_a = start_server(create_app(runtime_a, background_jobs=False), a.port)
    server_b = start_server(create_app(runtime_b, background_jobs=False), b.port)
    try:
        assert a.marker() != b.marker()
        with a.client() as client_a, b.client() as client_b:
            task_a = client_a.open_task(
                intent="a", purpose="reporting", environment="staging", targets=[TARGET]
            )
            task_b = client_b.open_task(
                intent="b", purpose="reporting", environment="staging", targets=[TARGET]
            )
            live_a = task_a.redis(TARGET, "read").connection_kwargs()
            live_b = task_b.redis(TARGET, "read").connection_kwargs()
            orphan_a, orphan_b = make_orphan(runtime_a), make_orphan(runtime_b)
            users = {live_a["username"], live_b["username"], orphan_a, orphan_b}
            assert users <= acl_users()

            assert reap(runtime_b) == [orphan_b]
            assert {live_a["username"], live_b["username"], orphan_a} <= acl_users()
            assert can_ping(live_a)

            assert reap(runtime_a) == [orphan_a]
            assert {live_a["username"], live_b["username"]} <= acl_users()
            assert can_ping(live_b)

            task_a.close()
            task_b.close()
            assert not users & acl_users()
    finally:
        server_a.stop()
        server_b.stop()
        runtime_a.database.dispose()
        runtime_b.database.dispose()


def serve(deployment: Deployment, **env: str) -> subprocess.Popen[bytes]:
    """Start ``gatepass serve`` for the deployment and wait until it is ready."""
    process = subprocess.Popen(  # noqa: S603 - our own entry point
        [
            str(Path(sys.executable).with_name("gatepass")),
            "serve",
            "-c",
            str(deployment.config),
        ],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def ready() -> bool:
        try:
            return httpx.get(f"{deployment.url}/readyz", timeout=1).status_code == 200
        except httpx.TransportError:
            return process.poll() is not None

    assert poll(ready, within=30.0)
    assert process.poll() is None
    return process


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a broker process politely, then by force."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def pending_user(deployment: Deployment) -> str:
    """Return the user name of the deployment's one pending lease."""
    database = Database(deployment.settings.store_url)
    try:
        with database.reading() as conn:
            pending = [
                lease
                for lease in lease_rows.list_leases(conn)
                if lease.state.value == "pending"
            ]
    finally:
        database.dispose()
    assert len(pending) == 1
    return f"gp_{deployment.marker()}_{pending[0].id.removeprefix('lse_')}"


def test_issue9_a_crashed_issuance_is_reaped_by_its_own_broker_only(
    deployments: tuple[Deployment, Deployment],
) -> None:
    """A broker killed after making a user: B spares the user; A's restart ends it."""
    a, b = deployments
    dying = serve(a, GATEPASS_FAILPOINT="credential.after_issue")
    try:
        with a.client() as client:
            task = client.open_task(
                intent="crash",
                purpose="reporting",
                environment="staging",
                targets=[TARGET],
            )
            with pytest.raises((httpx.TransportError, GatepassError)):
                task.redis(TARGET, "read")
        assert dying.wait(timeout=10) == -signal.SIGKILL
    finally:
        if dying.poll() is None:
            dying.kill()
            dying.wait()
    orphan = pending_user(a)
    assert orphan in acl_users()

    runtime_b = build_runtime(b.settings)
    try:
        own = make_orphan(runtime_b)
        assert reap(runtime_b) == [own]
        assert orphan in acl_users()
    finally:
        runtime_b.database.dispose()

    restarted = serve(a)
    try:
        # Past the engine timeout the pending lease is ended and its user removed.
        assert poll(lambda: orphan not in acl_users(), within=30.0)
    finally:
        stop(restarted)
