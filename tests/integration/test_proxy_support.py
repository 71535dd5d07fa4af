"""The broker's side of the proxy: the revocation stream and proxied-call audit."""

from __future__ import annotations

import json
import threading
from typing import Any

import httpx
import pytest

from gatepass.store import audit_log

from .agents import ProtocolAgent
from .conftest import LiveBroker

pytestmark = pytest.mark.slow


def proxy_headers(live_broker: LiveBroker) -> dict[str, str]:
    """Authorization with the bootstrap proxy token."""
    token = (live_broker.state_dir / "proxy.token").read_text().strip()
    return {"Authorization": f"Bearer {token}"}


class TestRevocationStream:
    """Revoked access tokens are pushed to subscribers at once."""

    def test_close_pushes_the_token(self, live_broker: LiveBroker) -> None:
        """Closing a task sends its access token's jti on the stream."""
        with ProtocolAgent(live_broker.url, live_broker.demo_identity) as agent:
            task = agent.open_task()
            granted = agent.post_token(agent.access_form(task["access_token"])).json()
            with live_broker.runtime.database.reading() as conn:
                from gatepass.store import leases  # noqa: PLC0415

                lease = leases.get_lease(conn, granted["lease_id"])
            assert lease is not None
            received: list[dict[str, Any]] = []
            connected = threading.Event()

            def listen() -> None:
                with httpx.stream(
                    "GET",
                    f"{live_broker.url}/v1/revocations/stream",
                    headers=proxy_headers(live_broker),
                    timeout=10,
                ) as response:
                    for line in response.iter_lines():
                        connected.set()
                        if line.startswith("data: "):
                            received.append(json.loads(line[6:]))
                            return

            listener = threading.Thread(target=listen, daemon=True)
            listener.start()
            assert connected.wait(timeout=10)
            closed = httpx.post(
                f"{live_broker.url}/v1/tasks/{task['task_id']}/close",
                headers={"Authorization": f"Bearer {live_broker.admin_token}"},
            )
            assert closed.status_code == 200
            listener.join(timeout=10)
        assert received
        assert received[0]["handle"] == lease.handle
        assert received[0]["task_id"] == task["task_id"]

    def test_stream_needs_a_token(self, live_broker: LiveBroker) -> None:
        """Without an api token the stream is refused."""
        response = httpx.get(f"{live_broker.url}/v1/revocations/stream")
        assert response.status_code == 401

    def test_bad_since(self, live_broker: LiveBroker) -> None:
        """A malformed since is invalid_request."""
        response = httpx.get(
            f"{live_broker.url}/v1/revocations/stream",
            params={"since": "yesterday"},
            headers=proxy_headers(live_broker),
        )
        assert response.status_code == 400


class TestProxyAudit:
    """The proxy's records land in the hash-chained audit log."""

    def test_events_are_appended(self, live_broker: LiveBroker) -> None:
        """Valid events become proxy.call records; nothing secret is accepted."""
        event = {
            "jti": "abc",
            "task_id": "tsk_x",
            "agent_id": "agt_x",
            "route": "tickets-saas",
            "method": "GET",
            "path": "/v1/tickets",
            "status": 200,
            "bytes_in": 0,
            "bytes_out": 120,
            "latency_ms": 3.5,
            "outcome": "ok",
        }
        response = httpx.post(
            f"{live_broker.url}/v1/audit/proxy",
            json={"events": [event]},
            headers=proxy_headers(live_broker),
        )
        assert response.status_code == 202
        with live_broker.runtime.database.reading() as conn:
            seq, _ = audit_log.read_audit_head(conn)
            last = next(iter(audit_log.iter_audit(conn, after=seq - 1)))
        assert last.kind == "proxy.call"
        assert last.data["route"] == "tickets-saas"

    @pytest.mark.parametrize(
        "body",
        [
            {"events": []},
            {"events": [{"password": "x"}]},
            {"events": [{"status": "200"}]},
            {"events": [{"outcome": "maybe"}]},
            {"other": []},
        ],
    )
    def test_bad_events(self, live_broker: LiveBroker, body: object) -> None:
        """Unknown fields, wrong types and empty batches are refused."""
        response = httpx.post(
            f"{live_broker.url}/v1/audit/proxy",
            json=body,
            headers=proxy_headers(live_broker),
        )
        assert response.status_code == 400

    def test_introspect_token_cannot_write_audit(self, live_broker: LiveBroker) -> None:
        """Only the proxy (or an admin) may submit proxied-call records."""
        response = httpx.post(
            f"{live_broker.url}/v1/audit/proxy",
            json={"events": [{"outcome": "ok"}]},
            headers={"Authorization": f"Bearer {live_broker.introspect_token}"},
        )
        assert response.status_code == 403
