"""
Issue 12: the SDK drops a token the resource refused, over real HTTP.

A quickstart broker and its demo tickets API (GatepassMiddleware, introspection on
every request) on 127.0.0.1; an admin revokes one lease, or closes the task, while
the agent holds a cached token.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from gatepass.demo import create_resource_app, demo_target
from gatepass.errors import InvalidGrantError
from gatepass.sdk import AgentIdentity, GatepassClient, ResourceAuth, Task

from .conftest import LiveBroker, RunningServer, start_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tickets(live_broker: LiveBroker) -> Iterator[str]:
    """The demo tickets API beside the live broker; yields its tickets URL."""
    target = demo_target(live_broker.runtime.settings)
    port = urlsplit(target.uri).port
    assert port is not None
    running: RunningServer = start_server(
        create_resource_app(live_broker.runtime.settings), port
    )
    try:
        yield target.uri.rstrip("/") + "/tickets"
    finally:
        running.stop()


@pytest.fixture
def task(live_broker: LiveBroker) -> Iterator[Task]:
    """An open task of the demo agent on the tickets target."""
    identity = AgentIdentity.load(live_broker.state_dir / "demo-agent.json")
    target = demo_target(live_broker.runtime.settings).uri
    with GatepassClient(identity) as client:
        opened = client.open_task(
            intent="triage",
            purpose="support-triage",
            environment="dev",
            targets=[target],
        )
        try:
            yield opened
        finally:
            opened.close()


def _admin(live_broker: LiveBroker, path: str) -> None:
    response = httpx.post(
        f"{live_broker.url}{path}",
        headers={"Authorization": f"Bearer {live_broker.admin_token}"},
        json={},
    )
    assert response.status_code == 200, response.text


class TestCachedTokens:
    """What the agent sees after the broker revoked its token."""

    def test_issue12_revoked_lease_gets_a_new_token(
        self, live_broker: LiveBroker, tickets: str, task: Task
    ) -> None:
        """Revoked lease: 401 invalid_token, then access_token asks the broker again."""
        target = demo_target(live_broker.runtime.settings).uri
        token = task.access_token(target, "read")
        assert httpx.get(tickets, auth=token.auth()).status_code == 200
        _admin(live_broker, f"/v1/leases/{token.lease_id}/revoke")
        refused = httpx.get(tickets, auth=token.auth())
        assert refused.status_code == 401
        assert token.rejected
        fresh = task.access_token(target, "read")
        assert fresh.lease_id != token.lease_id
        assert httpx.get(tickets, auth=fresh.auth()).status_code == 200

    def test_issue12_closed_task_surfaces_the_brokers_answer(
        self, live_broker: LiveBroker, tickets: str, task: Task
    ) -> None:
        """Task closed by an admin: the refetch raises invalid_grant, no stale token."""
        target = demo_target(live_broker.runtime.settings).uri
        token = task.access_token(target, "read")
        _admin(live_broker, f"/v1/tasks/{task.id}/close")
        assert httpx.get(tickets, auth=token.auth()).status_code == 401
        with pytest.raises(InvalidGrantError):
            task.access_token(target, "read")

    def test_resource_auth_replaces_a_revoked_token_by_itself(
        self, live_broker: LiveBroker, tickets: str, task: Task
    ) -> None:
        """ResourceAuth: discovery from the 401, and a revoked lease is replaced."""
        auth = ResourceAuth(task, scopes=["read"])
        with httpx.Client(auth=auth) as http:
            first = http.get(tickets)
            assert first.status_code == 200
            assert auth.resource == demo_target(live_broker.runtime.settings).uri
            held = task.access_token(str(auth.resource), "read")
            _admin(live_broker, f"/v1/leases/{held.lease_id}/revoke")
            assert http.get(tickets).status_code == 200
        assert task.access_token(str(auth.resource), "read").lease_id != held.lease_id
