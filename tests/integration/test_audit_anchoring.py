"""
Issue 11 end to end: a database restored from a snapshot brings nothing back.

Real processes: ``gatepass serve`` on SQLite and on PostgreSQL (a database of its
own, created and dropped here), a real ``postgres`` target, the SDK, the RFC 7009
and 7662 endpoints, and the ``gatepass audit`` commands. The broker is snapshotted
while it runs, ten tokens are revoked and five tasks closed, and the snapshot is put
back: the restarted broker must come up sealed, answer introspection from its
anchor journal, and issue again only after ``gatepass audit reconcile``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest
from tests.conftest import POSTGRES_URL, require_service

from gatepass.config import Settings
from gatepass.errors import GatepassError, SealedError
from gatepass.sdk import AgentIdentity, GatepassClient
from gatepass.sdk.credential import Credential
from gatepass.sdk.task import Task

from .conftest import QUICKSTART_POLICIES, free_port

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

RUN = uuid.uuid4().hex[:8]
GATEPASS = str(Path(sys.executable).with_name("gatepass"))
ENGINE_POLICY = """
@id("orders-read-in-own-tenant")
@ttl("600")
permit (principal, action == Gatepass::Action::"read", resource)
when { resource.kind == "postgres" && resource.tenant == principal.tenant };
"""


def poll(check: Callable[[], bool], *, within: float) -> bool:
    """Call ``check`` until it is true or ``within`` seconds pass."""
    deadline = time.monotonic() + within
    step = threading.Event()
    while time.monotonic() < deadline:
        if check():
            return True
        # One bounded step of the poll (nobody sets the event).
        step.wait(0.1)
    return bool(check())


def _admin() -> psycopg.Connection[Any]:
    return psycopg.connect(POSTGRES_URL, autocommit=True)


def _url(database: str, *, driver: str = "postgresql") -> str:
    parts = urlsplit(POSTGRES_URL)
    return f"{driver}://{parts.netloc}/{database}"


def _write_config(path: Path, settings: Settings) -> None:
    """Write ``settings`` as the TOML file ``gatepass serve`` reads."""

    def value(item: Any) -> str:
        if isinstance(item, bool):
            return "true" if item else "false"
        if isinstance(item, int | float):
            return str(item)
        if isinstance(item, str):
            return json.dumps(item)
        if isinstance(item, list):
            return "[" + ", ".join(value(v) for v in item) + "]"
        if isinstance(item, dict):
            return "{" + ", ".join(f"{k} = {value(v)}" for k, v in item.items()) + "}"
        msg = f"cannot write {type(item).__name__}"
        raise TypeError(msg)

    lines: list[str] = []
    for section, table in settings.model_dump(mode="json", exclude_none=True).items():
        if section == "targets":
            for target in table:
                lines.append("[[targets]]")
                lines.extend(f"{k} = {value(v)}" for k, v in target.items())
        else:
            lines.append(f"[{section}]")
            lines.extend(f"{k} = {value(v)}" for k, v in table.items())
    path.write_text("\n".join(lines) + "\n")


@dataclass
class Deployment:
    """One broker deployment: its config, state, store and PostgreSQL target."""

    backend: str
    config: Path
    state: Path
    url: str
    target: str
    target_db: str
    store_db: str | None
    process: subprocess.Popen[bytes] | None = None

    @property
    def admin_token(self) -> str:
        """The bootstrap admin token."""
        return (self.state / "admin.token").read_text().strip()

    @property
    def introspect_token(self) -> str:
        """The bootstrap introspection token."""
        return (self.state / "introspect.token").read_text().strip()

    def start(self) -> None:
        """Run ``gatepass serve`` and wait until it answers (sealed or not)."""
        self.process = subprocess.Popen(  # noqa: S603 - our own entry point
            [GATEPASS, "serve", "-c", str(self.config)],
            env={**os.environ, "GATEPASS_LOG_LEVEL": "warning"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        def answers() -> bool:
            try:
                return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
            except httpx.TransportError:
                return self.process is None or self.process.poll() is not None

        assert poll(answers, within=60.0)
        assert self.process.poll() is None, "gatepass serve exited"

    def stop(self) -> None:
        """Stop the broker as an operator would (SIGINT, then wait)."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def snapshot(self, directory: Path) -> Path:
        """Take a consistent copy of the running broker's database."""
        if self.store_db is None:
            target = directory / "snapshot.db"
            source = sqlite3.connect(self.state / "gatepass.db")
            copy = sqlite3.connect(target)
            try:
                source.backup(copy)
            finally:
                copy.close()
                source.close()
            return target
        target = directory / "snapshot.dump"
        subprocess.run(  # noqa: S603 - fixed arguments
            ["pg_dump", "-Fc", "-f", str(target), _url(self.store_db)],  # noqa: S607
            check=True,
        )
        return target

    def restore(self, snapshot: Path) -> None:
        """Put the snapshot back in place of the database (broker stopped)."""
        if self.store_db is None:
            for suffix in ("", "-wal", "-shm"):
                (self.state / f"gatepass.db{suffix}").unlink(missing_ok=True)
            shutil.copyfile(snapshot, self.state / "gatepass.db")
            return
        with _admin() as conn:
            conn.execute(f'DROP DATABASE "{self.store_db}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{self.store_db}"')
        subprocess.run(  # noqa: S603 - fixed arguments
            [  # noqa: S607
                "pg_restore",
                "--no-owner",
                "-d",
                _url(self.store_db),
                str(snapshot),
            ],
            check=True,
        )

    def client(self) -> GatepassClient:
        """An SDK client for the demo agent."""
        return GatepassClient(AgentIdentity.load(self.state / "demo-agent.json"))

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run a ``gatepass`` command against this broker."""
        return subprocess.run(  # noqa: S603 - our own entry point
            [GATEPASS, *args],
            env={
                **os.environ,
                "GATEPASS_ADDR": self.url,
                "GATEPASS_TOKEN": self.admin_token,
                "GATEPASS_STATE_DIR": str(self.state),
            },
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def admin_get(self, path: str) -> Any:
        """GET an admin resource."""
        answer = httpx.get(
            f"{self.url}{path}",
            headers={"Authorization": f"Bearer {self.admin_token}"},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        return answer.json()

    def admin_post(self, path: str) -> Any:
        """POST to an admin resource."""
        answer = httpx.post(
            f"{self.url}{path}",
            headers={"Authorization": f"Bearer {self.admin_token}"},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        return answer.json()

    def introspect(self, token: str) -> bool:
        """RFC 7662: is the token active?"""
        answer = httpx.post(
            f"{self.url}/introspect",
            data={"token": token},
            headers={"Authorization": f"Bearer {self.introspect_token}"},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        return bool(answer.json()["active"])

    def revoke(self, token: str) -> None:
        """RFC 7009: revoke a token by presenting it."""
        answer = httpx.post(f"{self.url}/revoke", data={"token": token}, timeout=10)
        assert answer.status_code == 200, answer.text

    def roles(self) -> set[str]:
        """The gatepass roles this deployment's target mount created."""
        with _admin() as conn:
            rows = conn.execute(
                "SELECT rolname FROM pg_roles WHERE rolname LIKE 'gp\\_%%' AND "
                "shobj_description(oid, 'pg_authid') LIKE %s",
                (f"%{self.target}%",),
            ).fetchall()
        return {row[0] for row in rows}


def _settings(deployment_dir: Path, backend: str, target_db: str) -> Settings:
    port = free_port()
    policies = deployment_dir / "policies"
    shutil.copytree(QUICKSTART_POLICIES, policies)
    (policies / "orders.cedar").write_text(ENGINE_POLICY)
    raw: dict[str, Any] = {
        "server": {
            "issuer": f"http://127.0.0.1:{port}",
            "port": port,
            "state_dir": str(deployment_dir / "state"),
        },
        "policy": {"directory": str(policies), "reload_interval_seconds": 0},
        "engines": {"reap_interval_seconds": 1, "call_timeout_seconds": 5},
        "targets": [
            {
                "name": "tickets",
                "uri": f"http://127.0.0.1:{free_port()}/",
                "environment": "dev",
                "tenant": "acme",
                "risk": "low",
                "actions": ["read", "write"],
                "max_ttl_seconds": 600,
            },
            {
                "name": f"orders-{RUN}-{backend}",
                "uri": f"postgresql://127.0.0.1:5432/{target_db}",
                "kind": "postgres",
                "environment": "dev",
                "tenant": "acme",
                "actions": ["read"],
                "engine": {
                    "admin_url": _url(target_db),
                    "grants": {
                        "read": [
                            {"schema": "app", "privileges": ["SELECT"], "tables": ["*"]}
                        ]
                    },
                },
            },
        ],
        "demo": {"enabled": True, "tenant": "acme", "labels": {"team": "support"}},
    }
    if backend == "postgres":
        raw["store"] = {
            "url": _url(f"gp_anchor_{RUN}_store", driver="postgresql+psycopg")
        }
    return Settings.model_validate(raw)


@pytest.fixture(params=["sqlite", "postgres"])
def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Deployment]:
    """A broker deployment on the requested store, with its own databases."""
    require_service("PostgreSQL", POSTGRES_URL, 5432)
    backend = str(request.param)
    target_db = f"gp_anchor_{RUN}_{backend}_orders"
    store_db = f"gp_anchor_{RUN}_store" if backend == "postgres" else None
    with _admin() as conn:
        conn.execute(f'CREATE DATABASE "{target_db}"')
        if store_db is not None:
            conn.execute(f'CREATE DATABASE "{store_db}"')
    with psycopg.connect(_url(target_db), autocommit=True) as conn:
        conn.execute("CREATE SCHEMA app")
        conn.execute("CREATE TABLE app.orders (id serial PRIMARY KEY, item text)")
    settings = _settings(tmp_path, backend, target_db)
    config = tmp_path / "gatepass.toml"
    _write_config(config, settings)
    found = Deployment(
        backend=backend,
        config=config,
        state=settings.server.state_dir,
        url=settings.server.issuer,
        target=f"orders-{RUN}-{backend}",
        target_db=target_db,
        store_db=store_db,
    )
    try:
        yield found
    finally:
        found.stop()
        roles = found.roles()
        with _admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{target_db}" WITH (FORCE)')
            if store_db is not None:
                conn.execute(f'DROP DATABASE IF EXISTS "{store_db}" WITH (FORCE)')
            # Roles last: their privileges lived in the target database.
            for role in roles:
                conn.execute(f'DROP ROLE IF EXISTS "{role}"')


def _open(client: GatepassClient, target: str) -> Task:
    return client.open_task(
        intent="triage",
        purpose="support-triage",
        environment="dev",
        targets=["tickets", target],
    )


@dataclass
class Story:
    """What the test did before the snapshot was put back."""

    client: GatepassClient
    tasks: list[Task]
    tokens: list[str]
    closed: list[Task]
    dropped: Credential
    issued_after: Credential


def _live_then_restored(deployment: Deployment, tmp_path: Path) -> Story:
    """Issue, snapshot, revoke ten tokens and close five tasks, then restore."""
    deployment.start()
    client = deployment.client()
    tasks = [_open(client, deployment.target) for _ in range(7)]
    tokens = [
        task.access_token("tickets", actions).value.reveal()
        for task in tasks[:5]
        for actions in ("read", "read write")
    ]
    dropped = tasks[2].postgres(deployment.target, "read")
    snapshot = deployment.snapshot(tmp_path)
    issued_after = tasks[0].postgres(deployment.target, "read")
    assert issued_after.fields["username"] in deployment.roles()
    for token in tokens:
        deployment.revoke(token)
    closed = tasks[2:7]
    for task in closed:
        # An operator closes them: the agent keeps its task token, as a
        # compromised agent would, and tries it again later.
        deployment.admin_post(f"/v1/tasks/{task.id}/close")
    assert not any(deployment.introspect(token) for token in tokens)
    assert dropped.fields["username"] not in deployment.roles()
    deployment.stop()
    deployment.restore(snapshot)
    return Story(client, tasks, tokens, closed, dropped, issued_after)


def _check_sealed(deployment: Deployment, story: Story) -> None:
    ready = httpx.get(f"{deployment.url}/readyz", timeout=10)
    assert ready.status_code == 503
    assert ready.json()["error"] == "sealed"
    assert "gatepass audit reconcile" in ready.json()["reason"]
    assert not any(deployment.introspect(token) for token in story.tokens)
    with pytest.raises(SealedError, match="broker is sealed"):
        _open(story.client, deployment.target)
    with pytest.raises(SealedError):
        story.tasks[3].access_token("tickets", "write")
    with pytest.raises(SealedError):
        story.tasks[0].postgres(deployment.target, "read")
    verify = deployment.cli("audit", "verify")
    assert verify.returncode == 65, verify.stderr
    assert "behind the anchor journal" in verify.stderr


def _lease_state(deployment: Deployment, lease_id: str) -> str:
    return str(deployment.admin_get(f"/v1/leases/{lease_id}")["state"])


def _check_reconciled(deployment: Deployment, story: Story) -> None:
    assert httpx.get(f"{deployment.url}/readyz", timeout=10).status_code == 200
    for task in story.closed:
        assert deployment.admin_get(f"/v1/tasks/{task.id}")["state"] == "closed"
    assert not any(deployment.introspect(token) for token in story.tokens)
    gone = story.issued_after.fields["username"]
    assert poll(lambda: gone not in deployment.roles(), within=30)
    lease = story.dropped.lease_id
    assert poll(lambda: _lease_state(deployment, lease) == "revoked", within=30)
    with pytest.raises(GatepassError, match="task is closed"):
        story.tasks[3].access_token("tickets", "write")
    fresh = _open(story.client, deployment.target)
    assert deployment.introspect(fresh.access_token("tickets", "read").value.reveal())
    again = story.tasks[0].postgres(deployment.target, "read")
    assert again.fields["username"] in deployment.roles()
    verify = deployment.cli("audit", "verify")
    assert verify.returncode == 0, verify.stderr
    assert "journal segments" in verify.stdout
    for task in (fresh, story.tasks[0], story.tasks[1]):
        with contextlib.suppress(GatepassError):
            task.close()


class TestIssue11RestoredSnapshot:
    """Revocations lost with a snapshot stay revoked, and reconcile re-applies them."""

    def test_issue11_restored_snapshot_seals_until_reconciled(
        self, deployment: Deployment, tmp_path: Path
    ) -> None:
        """Sealed after the restore; after reconcile nothing revoked is live again."""
        story = _live_then_restored(deployment, tmp_path)
        deployment.start()
        _check_sealed(deployment, story)
        reconcile = deployment.cli("audit", "reconcile", "--json")
        assert reconcile.returncode == 0, reconcile.stderr
        summary = json.loads(reconcile.stdout)
        assert summary["reconciled"] is True
        assert summary["reapplied"]["tasks"] == 5
        assert summary["segments"][0]["fork_seq"] < summary["journal_head"]
        _check_reconciled(deployment, story)
        story.client.close()
