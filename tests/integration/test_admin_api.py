"""The admin API, health and metrics over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from gatepass.tokens import DPoPKey

from .agents import ProtocolAgent
from .conftest import LiveBroker

pytestmark = pytest.mark.slow


@pytest.fixture
def admin(live_broker: LiveBroker) -> Iterator[httpx.Client]:
    """An HTTP client carrying the bootstrap admin token."""
    headers = {"Authorization": f"Bearer {live_broker.admin_token}"}
    with httpx.Client(base_url=live_broker.url, headers=headers) as client:
        yield client


@pytest.fixture
def agent(live_broker: LiveBroker) -> Iterator[ProtocolAgent]:
    """The demo agent."""
    with ProtocolAgent(live_broker.url, live_broker.demo_identity) as demo:
        yield demo


class TestAuthentication:
    """Admin calls need an admin token; refusals are precise and audited."""

    def test_missing_token(self, live_broker: LiveBroker) -> None:
        """No token is 401 unauthenticated with a Bearer challenge."""
        response = httpx.get(f"{live_broker.url}/v1/agents")
        assert response.status_code == 401
        assert response.json()["error"] == "unauthenticated"
        assert response.headers["www-authenticate"].startswith("Bearer")

    def test_unknown_token(self, live_broker: LiveBroker) -> None:
        """An unknown token is 401 and never echoed."""
        response = httpx.get(
            f"{live_broker.url}/v1/agents",
            headers={"Authorization": "Bearer gp_admin_not-a-real-token"},
        )
        assert response.status_code == 401
        assert "not-a-real-token" not in response.text

    def test_introspect_role_cannot_administer(self, live_broker: LiveBroker) -> None:
        """The introspection token is refused on admin routes with 403."""
        response = httpx.get(
            f"{live_broker.url}/v1/agents",
            headers={"Authorization": f"Bearer {live_broker.introspect_token}"},
        )
        assert response.status_code == 403
        assert response.json()["error"] == "access_denied"

    def test_introspection_needs_a_token(self, live_broker: LiveBroker) -> None:
        """Introspection without an api token is 401."""
        response = httpx.post(f"{live_broker.url}/introspect", data={"token": "x"})
        assert response.status_code == 401


class TestResources:
    """Agents, tasks, leases, targets, keys, policy and audit are readable."""

    def test_agent_lifecycle(self, admin: httpx.Client) -> None:
        """An agent is added, listed, shown; bad input and duplicates are refused."""
        key = DPoPKey.generate("EdDSA")
        body = {"name": "lister", "tenant": "acme", "public_key": key.public_jwk}
        created = admin.post("/v1/agents", json=body)
        assert created.status_code == 201
        agent_id = created.json()["id"]
        assert admin.post("/v1/agents", json=body).status_code == 409
        names = [a["name"] for a in admin.get("/v1/agents").json()["items"]]
        assert "lister" in names
        assert admin.get(f"/v1/agents/{agent_id}").json()["public_jwk"]["x"]
        assert admin.get("/v1/agents/agt_missing").status_code == 404
        assert admin.get("/v1/agents", params={"status": "weird"}).status_code == 400
        disabled = admin.post(f"/v1/agents/{agent_id}/disable")
        assert disabled.json()["status"] == "disabled"
        assert admin.post(f"/v1/agents/{agent_id}/disable").status_code == 409

    @pytest.mark.parametrize(
        "body",
        [
            {"name": "x", "tenant": "acme", "public_key": {"kty": "oct", "k": "AAAA"}},
            {"name": "Bad Name", "tenant": "acme", "public_key": "-"},
            {"name": "y", "tenant": "acme"},
            {"name": "z", "tenant": "acme", "public_key": "-", "extra": 1},
            {"name": "w", "tenant": "acme", "public_key": "-", "labels": {"K": "v"}},
            ["not", "an", "object"],
        ],
    )
    def test_bad_agents_refused(self, admin: httpx.Client, body: object) -> None:
        """Malformed agent registrations are 400 invalid_request."""
        response = admin.post("/v1/agents", json=body)
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_request"

    def test_private_key_refused(self, admin: httpx.Client) -> None:
        """A private key is refused and not echoed."""
        from gatepass.tokens import private_jwk  # noqa: PLC0415

        key = DPoPKey.generate("ES256")
        secret_jwk = private_jwk(key.private_key)
        response = admin.post(
            "/v1/agents",
            json={"name": "leaky", "tenant": "acme", "public_key": secret_jwk},
        )
        assert response.status_code == 400
        assert secret_jwk["d"] not in response.text

    def test_non_json_body(self, admin: httpx.Client) -> None:
        """A body that is not JSON is refused."""
        response = admin.post(
            "/v1/agents", content=b"{", headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 400
        assert response.json()["error_description"] == "body is not valid JSON"

    def test_tasks_and_leases(self, admin: httpx.Client, agent: ProtocolAgent) -> None:
        """A task shows its leases; an admin closes it with a reason and revokes."""
        task = agent.open_task()
        granted = agent.post_token(agent.access_form(task["access_token"])).json()
        shown = admin.get(f"/v1/tasks/{task['task_id']}").json()
        assert [lease["id"] for lease in shown["leases"]] == [granted["lease_id"]]
        lease = admin.get(f"/v1/leases/{granted['lease_id']}").json()
        assert lease["state"] == "active"
        listed = admin.get("/v1/leases", params={"task_id": task["task_id"]}).json()
        assert len(listed["items"]) == 1
        revoked = admin.post(f"/v1/leases/{granted['lease_id']}/revoke").json()
        assert revoked["state"] == "revoked"
        assert admin.post(f"/v1/leases/{granted['lease_id']}/revoke").status_code == 409
        closed = admin.post(
            f"/v1/tasks/{task['task_id']}/close", json={"reason": "incident 42"}
        ).json()
        assert closed["close_reason"] == "incident 42"
        assert admin.get("/v1/tasks", params={"state": "closed"}).status_code == 200
        assert admin.get("/v1/tasks", params={"limit": "0"}).status_code == 400
        assert admin.get("/v1/leases/lse_missing").status_code == 404
        assert admin.get("/v1/tasks/tsk_missing").status_code == 404

    def test_targets_keys_policy(self, admin: httpx.Client) -> None:
        """Targets, keys and the policy status are listed."""
        targets = admin.get("/v1/targets").json()["items"]
        assert {t["name"] for t in targets} >= {"tickets", "tickets-prod"}
        states = sorted(k["state"] for k in admin.get("/v1/keys").json()["items"])
        assert states == ["current", "next"]
        status = admin.get("/v1/policy").json()
        assert status["policy_count"] > 0
        reloaded = admin.post("/v1/policy/reload").json()
        assert reloaded["digest"] == status["digest"]

    def test_audit_pages(self, admin: httpx.Client) -> None:
        """Audit events page by sequence number."""
        first = admin.get("/v1/audit/events", params={"limit": "2"}).json()
        assert [e["seq"] for e in first["items"]] == [1, 2]
        second = admin.get(
            "/v1/audit/events", params={"after": first["next"], "limit": "2"}
        ).json()
        assert second["items"][0]["seq"] == 3
        assert admin.get("/v1/audit/events", params={"after": "-1"}).status_code == 400
        newest = admin.get("/v1/audit/events", params={"last": "2"}).json()["items"]
        assert newest[1]["seq"] == newest[0]["seq"] + 1
        assert admin.get("/v1/audit/events", params={"last": "0"}).status_code == 400
        checkpoints = admin.get("/v1/audit/checkpoints").json()
        assert checkpoints["public_key"]["kty"] == "OKP"


class TestOperations:
    """Health, readiness and metrics."""

    def test_health_and_ready(self, live_broker: LiveBroker) -> None:
        """Both probes answer 200 on a healthy broker."""
        assert httpx.get(f"{live_broker.url}/healthz").json() == {"status": "ok"}
        assert httpx.get(f"{live_broker.url}/readyz").json() == {"status": "ready"}

    def test_metrics(self, live_broker: LiveBroker, agent: ProtocolAgent) -> None:
        """Metrics count token requests and carry no ids or tokens."""
        agent.open_task()
        text = httpx.get(f"{live_broker.url}/metrics").text
        assert "gatepass_token_requests_total" in text
        assert "gatepass_request_duration_seconds" in text
        assert "agt_" not in text
        assert "eyJ" not in text

    def test_unknown_route(self, live_broker: LiveBroker) -> None:
        """Unknown routes answer the JSON error shape."""
        response = httpx.get(f"{live_broker.url}/nowhere")
        assert response.status_code == 404
        assert response.json()["error"] == "not_found"
        wrong_method = httpx.get(f"{live_broker.url}/token")
        assert wrong_method.status_code == 405
