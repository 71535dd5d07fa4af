"""Operators, their tokens and service tokens over real HTTP (issue 9)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest

from gatepass.broker import Permission
from gatepass.secret import token_hash
from gatepass.store import audit_log
from gatepass.tokens import DPoPKey

from .agents import ProtocolAgent
from .conftest import LiveBroker

pytestmark = pytest.mark.slow


def unique(prefix: str) -> str:
    """Return a name no other test of the shared broker uses."""
    return f"{prefix}-{secrets.token_hex(4)}"


def bearer(token: str) -> dict[str, str]:
    """Return the Authorization header of an API token."""
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def admin(live_broker: LiveBroker) -> Iterator[httpx.Client]:
    """An HTTP client carrying the bootstrap admin token."""
    with httpx.Client(
        base_url=live_broker.url, headers=bearer(live_broker.admin_token)
    ) as client:
        yield client


def add_operator(admin: httpx.Client, *roles: str, **fields: Any) -> dict[str, Any]:
    """Add an operator of these roles (an acme prod approver by default)."""
    body = {
        "name": fields.pop("name", unique("op")),
        "roles": list(roles or ("approver",)),
        "groups": fields.pop("groups", ["prod-approvers"]),
        "tenants": fields.pop("tenants", ["acme"]),
        **fields,
    }
    response = admin.post("/v1/admin/operators", json=body)
    assert response.status_code == 201, response.text
    answer: dict[str, Any] = response.json()
    return answer


def last_records(live_broker: LiveBroker, count: int = 5) -> list[Any]:
    """Return the newest audit records, oldest of them first."""
    with live_broker.runtime.database.reading() as conn:
        return audit_log.last_audit(conn, count)


def agent_body(**fields: Any) -> dict[str, Any]:
    """Return an agent registration body with a fresh key."""
    key = DPoPKey.generate("EdDSA")
    return {
        "name": unique("bot"),
        "tenant": "acme",
        "public_key": key.public_jwk,
        **fields,
    }


class TestRoles:
    """What each kind of caller may do, over HTTP."""

    def test_approver_cannot_administer(
        self, live_broker: LiveBroker, admin: httpx.Client
    ) -> None:
        """An approver's token is 403 on changes and on reads of the audit."""
        issued = add_operator(admin, "approver")
        headers = bearer(issued["token"])
        with httpx.Client(base_url=live_broker.url, headers=headers) as approver:
            added = approver.post("/v1/agents", json=agent_body())
            assert added.status_code == 403
            assert added.json()["error"] == "access_denied"
            assert "may not administer" in added.json()["error_description"]
            assert approver.get("/v1/audit/events").status_code == 403
            operator = approver.post(
                "/v1/admin/operators", json={"name": unique("x"), "roles": ["admin"]}
            )
            assert operator.status_code == 403
            me = approver.get("/v1/admin/whoami").json()
        assert me["permissions"] == ["approve"]
        assert me["actor"] == f"operator:{issued['operator']['name']}"
        assert me["groups"] == ["prod-approvers"]
        assert me["tenants"] == ["acme"]
        refused = last_records(live_broker, 1)[0]
        assert (refused.kind, refused.outcome) == ("admin.auth", "deny")
        assert refused.actor == me["actor"]

    def test_auditor_reads_but_cannot_add_agents(
        self, live_broker: LiveBroker, admin: httpx.Client
    ) -> None:
        """An auditor reads the audit, tasks and operators; adding an agent is 403."""
        issued = add_operator(admin, "auditor", groups=[], tenants=[])
        headers = bearer(issued["token"])
        with httpx.Client(base_url=live_broker.url, headers=headers) as auditor:
            events = auditor.get("/v1/audit/events", params={"last": 5})
            assert events.status_code == 200
            assert events.json()["items"]
            assert auditor.get("/v1/tasks").status_code == 200
            assert auditor.get("/v1/admin/operators").status_code == 200
            assert auditor.get("/v1/admin/tokens").status_code == 200
            assert auditor.post("/v1/agents", json=agent_body()).status_code == 403
            assert auditor.post("/v1/policy/reload").status_code == 403

    def test_bootstrap_admin_adds_operators_but_never_approves(
        self, live_broker: LiveBroker, admin: httpx.Client
    ) -> None:
        """The bootstrap admin token adds operators; it holds no approve permission."""
        issued = add_operator(admin, "admin", groups=[], tenants=[])
        assert issued["operator"]["roles"] == ["admin"]
        me = admin.get("/v1/admin/whoami").json()
        assert me["kind"] == "service"
        assert me["permissions"] == ["administer", "audit", "signal"]

        async def caller() -> Any:
            return await live_broker.runtime.broker.callers.authenticate(
                f"Bearer {live_broker.admin_token}", needs=Permission.ADMINISTER
            )

        assert not anyio.run(caller).may(Permission.APPROVE)

    def test_operator_actions_are_audited_by_name(
        self, live_broker: LiveBroker, admin: httpx.Client
    ) -> None:
        """An admin operator's registration of an agent names them in the audit."""
        issued = add_operator(admin, "admin", groups=[], tenants=[])
        name = issued["operator"]["name"]
        with httpx.Client(
            base_url=live_broker.url, headers=bearer(issued["token"])
        ) as operator:
            added = operator.post("/v1/agents", json=agent_body())
        assert added.status_code == 201, added.text
        record = last_records(live_broker, 1)[0]
        assert (record.kind, record.actor) == ("agent.add", f"operator:{name}")


class TestTokens:
    """Tokens are shown once, never listed, and stop at once when revoked."""

    def test_disabled_operator_token_is_refused_and_audited(
        self, live_broker: LiveBroker, admin: httpx.Client
    ) -> None:
        """After disable, the operator's token is 401 and the refusal audited."""
        issued = add_operator(admin, "auditor", groups=[], tenants=[])
        token = issued["token"]
        name = issued["operator"]["name"]
        url = f"{live_broker.url}/v1/tasks"
        assert httpx.get(url, headers=bearer(token)).status_code == 200
        disabled = admin.post(f"/v1/admin/operators/{name}/disable")
        assert disabled.json()["status"] == "disabled"
        refused = httpx.get(url, headers=bearer(token))
        assert refused.status_code == 401
        assert refused.json()["error"] == "unauthenticated"
        assert token not in refused.text
        record = last_records(live_broker, 1)[0]
        assert (record.kind, record.outcome) == ("admin.auth", "deny")
        assert token_hash(token).startswith(record.data["token_hash"])
        assert record.data["token_hash"] != token_hash(token)
        # This operator's disable: other tests of the shared broker disable too.
        disabling = next(
            r
            for r in last_records(live_broker, 10)
            if r.kind == "operator.disable" and r.data.get("name") == name
        )
        assert disabling.data["revoked"] == [issued["token_id"]]

    def test_revoked_service_token_stops_introspecting(
        self, live_broker: LiveBroker, admin: httpx.Client
    ) -> None:
        """A resource server's token introspects until it is revoked."""
        created = admin.post(
            "/v1/admin/tokens",
            json={"role": "introspect", "description": "tickets resource server"},
        )
        assert created.status_code == 201, created.text
        assert created.headers["cache-control"] == "no-store"
        token = created.json()["token"]
        token_id = created.json()["token_id"]
        with ProtocolAgent(live_broker.url, live_broker.demo_identity) as agent:
            task = agent.open_task()
        introspect = f"{live_broker.url}/introspect"
        form = {"token": task["access_token"]}
        before = httpx.post(introspect, data=form, headers=bearer(token))
        assert before.status_code == 200
        assert before.json()["active"] is True
        revoked = admin.post(f"/v1/admin/tokens/{token_id}/revoke")
        assert revoked.json()["state"] == "revoked"
        after = httpx.post(introspect, data=form, headers=bearer(token))
        assert after.status_code == 401
        assert admin.post(f"/v1/admin/tokens/{token_id}/revoke").status_code == 409

    def test_lists_never_show_a_token(self, admin: httpx.Client) -> None:
        """Token lists and operator records hold ids, never a token or hash."""
        issued = add_operator(admin, "approver")
        again = admin.post(
            f"/v1/admin/operators/{issued['operator']['name']}/tokens",
            json={"description": "laptop"},
        )
        assert again.status_code == 201
        assert again.json()["note"].endswith("will not be shown again")
        listed = admin.get("/v1/admin/tokens")
        shown = admin.get(f"/v1/admin/operators/{issued['operator']['name']}")
        for answer in (listed, shown):
            for secret in (issued["token"], again.json()["token"]):
                assert secret not in answer.text
                assert token_hash(secret) not in answer.text
        ids = {token["id"] for token in shown.json()["tokens"]}
        assert ids == {issued["token_id"], again.json()["token_id"]}
        roles = {token["role"] for token in listed.json()["items"]}
        assert {"admin", "introspect", "proxy", "operator"} <= roles

    def test_an_introspect_token_cannot_make_tokens(
        self, live_broker: LiveBroker
    ) -> None:
        """Service tokens other than admin cannot administer tokens."""
        response = httpx.post(
            f"{live_broker.url}/v1/admin/tokens",
            json={"role": "admin", "description": "escalate"},
            headers=bearer(live_broker.introspect_token),
        )
        assert response.status_code == 403


class TestInputs:
    """Malformed requests are 400, unknown names 404, duplicates 409."""

    @pytest.mark.parametrize(
        "body",
        [
            {"name": "ok-name"},
            {"name": "ok-name", "roles": []},
            {"name": "ok-name", "roles": ["root"]},
            {"name": "Bad Name", "roles": ["auditor"]},
            {"name": "ok-name", "roles": ["approver"]},
            {"name": "ok-name", "roles": ["approver"], "groups": ["g"]},
            {"name": "ok-name", "roles": ["auditor"], "groups": "g"},
            {"name": "ok-name", "roles": ["auditor"], "tenants": ["a", "a"]},
            {"name": "ok-name", "roles": ["auditor"], "extra": True},
            {"name": 7, "roles": ["auditor"]},
            ["not", "an", "object"],
        ],
    )
    def test_bad_operators(self, admin: httpx.Client, body: object) -> None:
        """Malformed operators are 400 invalid_request, never a 5xx."""
        response = admin.post("/v1/admin/operators", json=body)
        assert response.status_code == 400, response.text
        assert response.json()["error"] == "invalid_request"

    @pytest.mark.parametrize(
        "body",
        [
            {"role": "operator", "description": "x"},
            {"role": "introspect"},
            {"role": "introspect", "description": ""},
            {"role": "introspect", "description": "x" * 201},
            {"role": "proxy", "description": "x", "extra": 1},
        ],
    )
    def test_bad_service_tokens(self, admin: httpx.Client, body: object) -> None:
        """Malformed service-token requests are 400 invalid_request."""
        response = admin.post("/v1/admin/tokens", json=body)
        assert response.status_code == 400, response.text

    def test_unknown_names_and_duplicates(self, admin: httpx.Client) -> None:
        """Unknown operators and tokens are 404; a taken name is 409."""
        issued = add_operator(admin, "auditor", groups=[], tenants=[])
        name = issued["operator"]["name"]
        assert admin.get("/v1/admin/operators/nobody-here").status_code == 404
        assert admin.post("/v1/admin/operators/nobody/disable").status_code == 404
        assert admin.post("/v1/admin/operators/nobody/tokens").status_code == 404
        assert admin.post("/v1/admin/tokens/tok_nothing/revoke").status_code == 404
        assert admin.get(f"/v1/admin/operators/{'a' * 80}").status_code == 400
        duplicate = admin.post(
            "/v1/admin/operators", json={"name": name, "roles": ["auditor"]}
        )
        assert duplicate.status_code == 409
        assert (
            admin.get("/v1/admin/operators", params={"status": "x"}).status_code == 400
        )

    def test_agent_owners(self, admin: httpx.Client) -> None:
        """Agents name active operators as owners; an unknown one is named in a 400."""
        owner = add_operator(admin, "approver")["operator"]["name"]
        created = admin.post("/v1/agents", json=agent_body(owners=[owner]))
        assert created.status_code == 201, created.text
        assert created.json()["owners"] == [owner]
        shown = admin.get(f"/v1/agents/{created.json()['id']}").json()
        assert shown["owners"] == [owner]
        unknown = admin.post("/v1/agents", json=agent_body(owners=["ghost-owner"]))
        assert unknown.status_code == 400
        assert "ghost-owner" in unknown.json()["error_description"]
        malformed = admin.post("/v1/agents", json=agent_body(owners=["Not Valid"]))
        assert malformed.status_code == 400
