"""
Credential reuse and theft detection over real HTTP (issue 14).

Each kind of reuse is provoked the way a thief or a caching agent would: a task
token after its task closed, a replayed DPoP proof, a task token driven from a
second key, an access token presented to the broker, a task token used with a
foreign key at ``/v1``. The refusal stays what it was; a ``credential.reuse``
record carries the evidence, and ``[[reuse.rules]]`` decides the response.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from tests.integration.agents import ProtocolAgent
from tests.integration.conftest import (
    LiveBroker,
    free_port,
    quickstart_settings,
    start_server,
)

from gatepass.api import create_app
from gatepass.approvals.webhooks import EVENT_HEADER, SIGNATURE_HEADER, verify_signature
from gatepass.broker import build_runtime
from gatepass.clock import SystemClock
from gatepass.sdk import AgentIdentity, GatepassClient
from gatepass.tokens import DPoPKey
from gatepass.tokens.proofs import private_jwk


@dataclass
class Notices:
    """What the owners' webhook receiver got, signature checked."""

    got: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)


HOOK_SECRET = "whsec-quarantine-test-do-not-log"


@pytest.fixture(scope="module")
def notices() -> Iterator[tuple[Notices, str]]:
    """A webhook receiver on 127.0.0.1 that checks every signature."""
    received = Notices()

    async def hook(request: Request) -> Response:
        body = await request.body()
        verify_signature(
            HOOK_SECRET,
            request.headers.get(SIGNATURE_HEADER),
            body,
            SystemClock().now(),
        )
        received.got.append(
            (request.url.path, request.headers[EVENT_HEADER], json.loads(body))
        )
        return Response(status_code=204)

    port = free_port()
    app = Starlette(routes=[Route("/{group}", hook, methods=["POST"])])
    running = start_server(app, port)
    try:
        yield received, running.url
    finally:
        running.stop()


@pytest.fixture(scope="module")
def reuse_broker(
    tmp_path_factory: pytest.TempPathFactory, notices: tuple[Notices, str]
) -> Iterator[LiveBroker]:
    """A quickstart broker with one reuse rule per response."""
    state_dir = tmp_path_factory.mktemp("broker") / "state"
    secret_file = tmp_path_factory.mktemp("hooks") / "hook.secret"
    secret_file.write_text(HOOK_SECRET, encoding="utf-8")
    _, hooks = notices
    port = free_port()
    settings = quickstart_settings(
        state_dir,
        port=port,
        resource_port=free_port(),
        reuse={
            "rules": [
                {"kinds": ["closed_task_use", "wrong_audience"], "response": "alert"},
                {"kinds": ["replayed_proof"], "response": "alert"},
                {"kinds": ["two_keys"], "response": "revoke_task"},
                {
                    "kinds": ["foreign_key"],
                    "threshold": 2,
                    "window_seconds": 300,
                    "response": "quarantine",
                    "notify_groups": ["security"],
                },
            ]
        },
        approvals={
            "groups": [
                {
                    "name": name,
                    "webhook": {
                        "url": f"{hooks}/{name}",
                        "secret_file": str(secret_file),
                    },
                }
                for name in ("owners", "security")
            ]
        },
    )
    runtime = build_runtime(settings)
    running = start_server(create_app(runtime, background_jobs=False), port)
    try:
        yield LiveBroker(url=running.url, runtime=runtime, state_dir=state_dir)
    finally:
        running.stop()
        runtime.database.dispose()


@pytest.fixture
def admin(reuse_broker: LiveBroker) -> Iterator[httpx.Client]:
    """An admin API client."""
    with httpx.Client(
        base_url=reuse_broker.url,
        headers={"Authorization": f"Bearer {reuse_broker.admin_token}"},
        timeout=10,
    ) as client:
        yield client


@pytest.fixture
def agent(reuse_broker: LiveBroker) -> Iterator[ProtocolAgent]:
    """The demo agent with a fresh task key."""
    with ProtocolAgent(reuse_broker.url, reuse_broker.demo_identity) as protocol:
        yield protocol


def reuse_records(admin: httpx.Client, task_id: str) -> list[dict[str, Any]]:
    """Return the credential.reuse records about one task."""
    items: list[dict[str, Any]] = admin.get(
        "/v1/audit/events",
        params={"kind": "credential.reuse", "task": task_id, "last": "50"},
    ).json()["items"]
    return items


def introspect(broker: LiveBroker, token: str) -> dict[str, Any]:
    """Introspect a token as a resource server would."""
    body: dict[str, Any] = httpx.post(
        f"{broker.url}/introspect",
        data={"token": token},
        headers={"Authorization": f"Bearer {broker.introspect_token}"},
    ).json()
    return body


def close(broker: LiveBroker, agent: ProtocolAgent, task: dict[str, Any]) -> None:
    """Close a task with its own token."""
    url = f"{broker.url}/v1/tasks/{task['task_id']}/close"
    closed = httpx.post(
        url,
        headers={
            "Authorization": f"DPoP {task['access_token']}",
            "DPoP": agent.key.proof("POST", url, access_token=task["access_token"]),
        },
    )
    assert closed.status_code == 200, closed.text


class TestDetection:
    """Each kind of reuse is refused as before and recorded with its evidence."""

    def test_task_token_after_close(
        self, reuse_broker: LiveBroker, agent: ProtocolAgent, admin: httpx.Client
    ) -> None:
        """A closed task's token is invalid_grant and a closed_task_use alert."""
        task = agent.open_task()
        close(reuse_broker, agent, task)
        refused = agent.post_token(agent.access_form(task["access_token"]))
        assert refused.status_code == 400
        assert refused.json()["error"] == "invalid_grant"
        (record,) = reuse_records(admin, task["task_id"])
        assert record["data"]["reuse"] == "closed_task_use"
        assert record["data"]["response"] == "alert"
        assert record["data"]["evidence"]["task_jkt"] == agent.key.jkt
        assert len(record["data"]["evidence"]["token_hash"]) == 64
        assert task["access_token"] not in str(record)

    def test_revoked_access_token_introspected(
        self, reuse_broker: LiveBroker, agent: ProtocolAgent, admin: httpx.Client
    ) -> None:
        """A resource server introspecting a revoked token reports its reuse."""
        task = agent.open_task()
        granted = agent.post_token(agent.access_form(task["access_token"])).json()
        close(reuse_broker, agent, task)
        assert introspect(reuse_broker, granted["access_token"]) == {"active": False}
        (record,) = reuse_records(admin, task["task_id"])
        assert record["data"]["seen_at"] == "token.introspect"
        assert record["data"]["evidence"]["lease_state"] == "revoked"

    def test_replayed_proof(
        self, reuse_broker: LiveBroker, agent: ProtocolAgent, admin: httpx.Client
    ) -> None:
        """The same DPoP proof twice: invalid_dpop_proof and a replayed_proof event."""
        task = agent.open_task()
        proof = agent.proof()
        first = agent.post_token(agent.access_form(task["access_token"]), proof=proof)
        assert first.status_code == 200, first.text
        again = agent.post_token(agent.access_form(task["access_token"]), proof=proof)
        assert again.json()["error"] == "invalid_dpop_proof"
        (record,) = reuse_records(admin, task["task_id"])
        assert record["data"]["reuse"] == "replayed_proof"
        assert record["data"]["evidence"]["presented_jkt"] == agent.key.jkt
        # An alert only: the task lives on.
        assert introspect(reuse_broker, task["access_token"])["active"] is True

    def test_access_token_at_the_wrong_audience(
        self, agent: ProtocolAgent, admin: httpx.Client
    ) -> None:
        """An access token sent to the broker as a task token is wrong_audience."""
        task = agent.open_task()
        granted = agent.post_token(agent.access_form(task["access_token"])).json()
        refused = agent.post_token(agent.access_form(granted["access_token"]))
        assert refused.json()["error"] == "invalid_grant"
        (record,) = reuse_records(admin, task["task_id"])
        assert record["data"]["reuse"] == "wrong_audience"
        assert record["data"]["evidence"]["audience"].startswith("http://127.0.0.1:")
        assert record["actor"] == agent.agent_id

    def test_proxy_refusing_a_revoked_token(
        self, reuse_broker: LiveBroker, agent: ProtocolAgent, admin: httpx.Client
    ) -> None:
        """The proxy's token_revoked refusals it ships are closed_task_use events."""
        task = agent.open_task()
        proxy_token = (reuse_broker.state_dir / "proxy.token").read_text().strip()
        event = {
            "jti": "jti-of-a-revoked-token",
            "task_id": task["task_id"],
            "agent_id": agent.agent_id,
            "route": "legacy",
            "method": "GET",
            "path": "/tickets",
            "status": 401,
            "outcome": "deny",
            "error": "token_revoked",
        }
        shipped = httpx.post(
            f"{reuse_broker.url}/v1/audit/proxy",
            json={"events": [event, {**event, "error": "rate_limited"}]},
            headers={"Authorization": f"Bearer {proxy_token}"},
        )
        assert shipped.status_code == 202, shipped.text
        (record,) = reuse_records(admin, task["task_id"])
        assert record["data"]["seen_at"] == "proxy.call"
        assert record["data"]["evidence"] == {"jti": "jti-of-a-revoked-token"}


class TestResponses:
    """The rules' responses: revoke the task, quarantine the agent."""

    def test_two_keys_revokes_the_task(
        self, reuse_broker: LiveBroker, agent: ProtocolAgent, admin: httpx.Client
    ) -> None:
        """A task token exchanged with another key's proof: the task is closed."""
        task = agent.open_task()
        thief = DPoPKey.generate()
        refused = agent.post_token(
            agent.access_form(task["access_token"]),
            proof=thief.proof("POST", agent.token_endpoint),
        )
        assert refused.json()["error"] == "invalid_dpop_proof"
        (record,) = reuse_records(admin, task["task_id"])
        assert record["data"]["reuse"] == "two_keys"
        assert record["data"]["evidence"]["presented_jkt"] == thief.jkt
        assert record["data"]["response"] == "revoke_task"
        assert introspect(reuse_broker, task["access_token"]) == {"active": False}
        shown = admin.get(f"/v1/tasks/{task['task_id']}").json()
        assert shown["state"] == "closed"

    def test_foreign_key_twice_quarantines_the_agent(
        self,
        reuse_broker: LiveBroker,
        admin: httpx.Client,
        notices: tuple[Notices, str],
    ) -> None:
        """Two foreign-key uses in the window disable the agent and tell its owners."""
        operator = admin.post(
            "/v1/admin/operators",
            json={
                "name": "olga",
                "roles": ["approver"],
                "groups": ["owners"],
                "tenants": ["acme"],
            },
        )
        assert operator.status_code == 201, operator.text
        key = DPoPKey.generate("ES256")
        created = admin.post(
            "/v1/agents",
            json={
                "name": "suspect",
                "tenant": "acme",
                "public_key": key.public_jwk,
                "labels": {"team": "support"},
                "owners": ["olga"],
            },
        )
        assert created.status_code == 201, created.text
        identity = {
            "agent_id": created.json()["id"],
            "private_jwk": private_jwk(key.private_key),
        }
        with ProtocolAgent(reuse_broker.url, identity) as suspect:
            task = suspect.open_task()
            url = f"{reuse_broker.url}/v1/credentials"
            thief = DPoPKey.generate()
            for _ in range(2):
                answer = httpx.post(
                    url,
                    json={"target": "bastion", "actions": ["read"]},
                    headers={
                        "Authorization": f"DPoP {task['access_token']}",
                        "DPoP": thief.proof(
                            "POST", url, access_token=task["access_token"]
                        ),
                    },
                )
                assert answer.json()["error"] == "invalid_dpop_proof"
        records = reuse_records(admin, task["task_id"])
        assert [r["data"]["response"] for r in records] == ["none", "quarantine"]
        assert records[0]["data"]["evidence"]["bound_jkt"] == suspect.key.jkt
        agent = admin.get(f"/v1/agents/{identity['agent_id']}").json()
        assert agent["status"] == "disabled"
        assert introspect(reuse_broker, task["access_token"]) == {"active": False}
        quarantine = admin.get(
            "/v1/audit/events", params={"kind": "agent.quarantine", "last": "1"}
        ).json()["items"][0]
        assert quarantine["subject"] == identity["agent_id"]
        assert sorted(quarantine["data"]["notified_groups"]) == ["owners", "security"]
        # What the notifications job does every second: deliver what is due.
        received, _ = notices
        assert anyio.run(reuse_broker.runtime.broker.notifier.deliver_due) == 2
        assert sorted(path for path, _, _ in received.got) == ["/owners", "/security"]
        for _, event, body in received.got:
            assert event == "agent.quarantined"
            assert body["agent_id"] == identity["agent_id"]
            assert body["owners"] == ["olga"]
            assert body["reason"] == "foreign_key"


class TestNoTokenOnDisk:
    """The SDK keeps tokens in memory only (anti-caching)."""

    def test_full_sdk_flow_writes_no_token(
        self,
        reuse_broker: LiveBroker,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """After a whole task, no file under cwd, HOME or TMPDIR holds token bytes."""
        home, work, temp = tmp_path / "home", tmp_path / "work", tmp_path / "tmp"
        for directory in (home, work, temp):
            directory.mkdir()
        monkeypatch.setenv("HOME", str(home))
        monkeypatch.setenv("TMPDIR", str(temp))
        monkeypatch.setattr(tempfile, "tempdir", str(temp))
        monkeypatch.chdir(work)
        identity_file = reuse_broker.state_dir / "demo-agent.json"
        seen: list[str] = []
        with GatepassClient(AgentIdentity.load(identity_file)) as client:
            task = client.open_task(
                intent="triage",
                purpose="support-triage",
                environment="dev",
                targets=["tickets"],
            )
            with task:
                token = task.access_token("tickets", "read")
                seen.append(token.value.reveal())
                seen.append(task._live_token())
        assert len(seen) == 2
        written = [
            path.read_bytes()
            for root in (home, work, temp)
            for path in root.rglob("*")
            if path.is_file()
        ]
        for value in seen:
            # The whole token and its signature, the part no other token shares.
            for needle in (value, value.rsplit(".", 1)[-1]):
                assert all(needle.encode() not in data for data in written)
        assert list(work.iterdir()) == []
