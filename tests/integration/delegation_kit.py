"""
A broker for delegation tests: PostgreSQL and HTTP targets, a pipeline of agents.

The targets: an HTTP API, a PostgreSQL database and a Redis, each of them low risk
in ``dev``. The broker runs the quickstart policies (``delegation.cedar``: planner ->
researcher -> reader, reads only) on a frozen clock, so that a grant can expire
without a sleep; every assertion and DPoP proof is made at that clock's time.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from tests.conftest import POSTGRES_URL, require_service

from gatepass.api import create_app
from gatepass.broker import Runtime, build_runtime
from gatepass.clock import SystemClock
from gatepass.config import Settings
from gatepass.sdk import AgentIdentity, GatepassClient
from gatepass.testing import FrozenClock
from gatepass.tokens import (
    DELEGATION_TOKEN_TYPE,
    JWT_TOKEN_TYPE,
    TOKEN_EXCHANGE,
    TXN_TOKEN_TYPE,
    DPoPKey,
    create_assertion,
    public_jwk_from_key,
)

from .conftest import QUICKSTART_POLICIES, free_port, start_server
from .deadline import poll

RUN = uuid.uuid4().hex[:8]
ROLES = {
    "planner": "planner",
    "researcher": "researcher",
    "reader": "reader",
    "reader-two": "reader",
    "auditor": "researcher",
}
MAX_DEPTH = 2
DATABASE_TARGET = f"orders-{RUN}"
CACHE_TARGET = f"cache-{RUN}"
CACHE_PREFIX = f"deleg{RUN}:"
REDIS_URL = os.environ.get("GATEPASS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def admin_url(database: str = "postgres") -> str:
    """Return the test cluster's URL for one database."""
    return POSTGRES_URL.rsplit("/", 1)[0] + f"/{database}"


@dataclass
class DelegationBroker:
    """The broker, its clock, and the agents registered for the pipeline."""

    url: str
    runtime: Runtime
    state: Path
    clock: FrozenClock
    database: str
    agents: dict[str, tuple[str, ec.EllipticCurvePrivateKey]] = field(
        default_factory=dict
    )

    @property
    def admin(self) -> httpx.Client:
        """Return an admin API client (the bootstrap admin token)."""
        token = (self.state / "admin.token").read_text().strip()
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {token}"}
        )

    def agent_id(self, name: str) -> str:
        """Return a registered agent's id."""
        return self.agents[name][0]

    def client(self, name: str) -> GatepassClient:
        """Return an SDK client for an agent, on the broker's clock."""
        agent_id, key = self.agents[name]
        return GatepassClient(AgentIdentity(agent_id, key, self.url), clock=self.clock)

    def hop(self, name: str) -> Hop:
        """Return a raw-protocol speaker for an agent, with a fresh task key."""
        agent_id, key = self.agents[name]
        return Hop(self, agent_id, key)

    def audit(self, kind: str, *, last: int = 50) -> list[dict[str, Any]]:
        """Return the newest audit records of a kind, newest last."""
        with self.admin as admin:
            response = admin.get(
                "/v1/audit/events", params={"kind": kind, "last": str(last)}
            )
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items


class Hop:
    """One agent speaking the token exchanges as any OAuth client would."""

    def __init__(
        self, broker: DelegationBroker, agent_id: str, key: ec.EllipticCurvePrivateKey
    ) -> None:
        """Generate the key this agent's next task is bound to."""
        self.broker = broker
        self.agent_id = agent_id
        self._key = key
        self.task_key = DPoPKey.generate()

    @property
    def token_endpoint(self) -> str:
        """The broker's token endpoint."""
        return f"{self.broker.url}/token"

    def assertion(self) -> str:
        """Return a fresh identity assertion at the broker's time."""
        return create_assertion(
            self._key,
            algorithm="ES256",
            agent_id=self.agent_id,
            audience=self.broker.url,
            now=self.broker.clock.now(),
            lifetime=dt.timedelta(seconds=60),
        )

    def post(self, form: dict[str, str], *, proof: bool = True) -> httpx.Response:
        """POST a token exchange, with a DPoP proof by the task key unless told."""
        headers = {}
        if proof:
            headers["DPoP"] = self.task_key.proof(
                "POST", self.token_endpoint, now=self.broker.clock.now()
            )
        return httpx.post(self.token_endpoint, data=form, headers=headers)

    def open_root(self, targets: list[str], **details: Any) -> dict[str, Any]:
        """Open a root task on ``targets``; return the token response."""
        task = {
            "type": "agent_task",
            "intent": "plan the investigation",
            "purpose": "research",
            "environment": "dev",
            "targets": targets,
            **details,
        }
        response = self.post(
            {
                "grant_type": TOKEN_EXCHANGE,
                "subject_token": self.assertion(),
                "subject_token_type": JWT_TOKEN_TYPE,
                "requested_token_type": TXN_TOKEN_TYPE,
                "authorization_details": json.dumps([task]),
            }
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def grant(
        self,
        task_token: str,
        to: str,
        *,
        targets: list[str],
        actions: list[str],
        proof: bool = True,
        **details: Any,
    ) -> httpx.Response:
        """Ask for a delegation grant for ``to``."""
        sub_task = {
            "type": "agent_task",
            "intent": "look into it",
            "purpose": "research",
            "environment": "dev",
            "targets": targets,
            "actions": actions,
            **details,
        }
        return self.post(
            {
                "grant_type": TOKEN_EXCHANGE,
                "subject_token": task_token,
                "subject_token_type": TXN_TOKEN_TYPE,
                "requested_token_type": DELEGATION_TOKEN_TYPE,
                "audience": to,
                "authorization_details": json.dumps([sub_task]),
            },
            proof=proof,
        )

    def accept(self, grant: str, *, proof: bool = True) -> httpx.Response:
        """Accept a grant with this agent's own identity as actor_token."""
        return self.post(
            {
                "grant_type": TOKEN_EXCHANGE,
                "subject_token": grant,
                "subject_token_type": DELEGATION_TOKEN_TYPE,
                "requested_token_type": TXN_TOKEN_TYPE,
                "actor_token": self.assertion(),
                "actor_token_type": JWT_TOKEN_TYPE,
            },
            proof=proof,
        )

    def access(self, task_token: str, resource: str, scope: str) -> httpx.Response:
        """Ask for an access token with a task token."""
        return self.post(
            {
                "grant_type": TOKEN_EXCHANGE,
                "subject_token": task_token,
                "subject_token_type": TXN_TOKEN_TYPE,
                "resource": resource,
                "scope": scope,
            }
        )


def claims(token: str) -> dict[str, Any]:
    """Read a token's claims (the broker signed it; the test only looks)."""
    decoded: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return decoded


def delegation_settings(state: Path, port: int, database: str) -> Settings:
    """The quickstart policies, an HTTP target, a PostgreSQL target, depth 2."""
    grants = {
        "read": [{"schema": "app", "privileges": ["SELECT"], "tables": ["*"]}],
        "write": [
            {"schema": "app", "privileges": ["SELECT", "INSERT"], "tables": ["*"]}
        ],
    }
    raw: dict[str, Any] = {
        "server": {
            "issuer": f"http://127.0.0.1:{port}",
            "port": port,
            "state_dir": str(state),
        },
        "policy": {"directory": str(QUICKSTART_POLICIES), "reload_interval_seconds": 0},
        "engines": {"reap_interval_seconds": 1, "call_timeout_seconds": 5},
        "delegation": {"max_depth": MAX_DEPTH},
        "targets": [
            {
                "name": "tickets",
                "uri": "http://127.0.0.1:1/",
                "environment": "dev",
                "tenant": "acme",
                "risk": "low",
                "actions": ["read", "write"],
                "max_ttl_seconds": 600,
            },
            {
                "name": "notes",
                "uri": "http://127.0.0.1:2/",
                "environment": "dev",
                "tenant": "acme",
                "risk": "low",
                "actions": ["read"],
            },
            {
                "name": DATABASE_TARGET,
                "uri": f"postgresql://127.0.0.1:5432/{database}",
                "kind": "postgres",
                "environment": "dev",
                "tenant": "acme",
                "risk": "low",
                "actions": ["read", "write"],
                "engine": {"admin_url": admin_url(database), "grants": grants},
            },
            {
                "name": CACHE_TARGET,
                "uri": "redis://127.0.0.1:6379/",
                "kind": "redis",
                "environment": "dev",
                "tenant": "acme",
                "risk": "low",
                "actions": ["read"],
                "engine": {
                    "admin_url": REDIS_URL,
                    "grants": {
                        "read": {"keys": [f"{CACHE_PREFIX}*"], "categories": ["+@read"]}
                    },
                },
            },
        ],
    }
    return Settings.model_validate(raw)


@pytest.fixture(scope="module")
def delegation_broker(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[DelegationBroker]:
    """A broker with the pipeline's agents registered, and a throwaway database."""
    require_service("PostgreSQL", POSTGRES_URL, 5432)
    require_service("Redis", REDIS_URL, 6379)
    database = f"gp_it_{RUN}_delegation"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
        conn.execute(f'REVOKE CONNECT ON DATABASE "{database}" FROM PUBLIC')
    with psycopg.connect(admin_url(database), autocommit=True) as conn:
        conn.execute("CREATE SCHEMA app")
        conn.execute("CREATE TABLE app.orders (id serial PRIMARY KEY, item text)")
        conn.execute("INSERT INTO app.orders (item) VALUES ('seed')")
    state = tmp_path_factory.mktemp("delegation") / "state"
    port = free_port()
    clock = FrozenClock(SystemClock().now())
    runtime = build_runtime(delegation_settings(state, port, database), clock=clock)
    running = start_server(create_app(runtime), port)
    broker = DelegationBroker(
        url=running.url, runtime=runtime, state=state, clock=clock, database=database
    )
    try:
        with broker.admin as admin:
            for name, role in ROLES.items():
                key = ec.generate_private_key(ec.SECP256R1())
                created = admin.post(
                    "/v1/agents",
                    json={
                        "name": f"{name}-{RUN}",
                        "tenant": "acme",
                        "public_key": public_jwk_from_key(key),
                        "labels": {"role": role},
                    },
                )
                assert created.status_code == 201, created.text
                broker.agents[name] = (created.json()["id"], key)
        yield broker
        # Whatever a failed test left open is closed, so that its PostgreSQL roles
        # and Redis users are revoked through their engines before the broker stops.
        with broker.admin as admin:
            for task in admin.get("/v1/tasks", params={"state": "open"}).json()[
                "items"
            ]:
                admin.post(f"/v1/tasks/{task['id']}/close")
            assert poll(
                lambda: (
                    not [
                        lease
                        for lease in admin.get(
                            "/v1/leases", params={"limit": "1000"}
                        ).json()["items"]
                        if lease["state"] in {"pending", "active", "revoking"}
                    ]
                ),
                within=10.0,
            )
    finally:
        running.stop()
        runtime.database.dispose()
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            rows = conn.execute(
                "SELECT rolname FROM pg_roles WHERE shobj_description(oid, 'pg_authid')"
                " LIKE %s",
                (f"%mount={DATABASE_TARGET}%",),
            ).fetchall()
            for (role,) in rows:
                conn.execute(f'DROP ROLE IF EXISTS "{role}"')
