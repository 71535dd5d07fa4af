"""The token endpoint over real HTTP: the happy path and every refusal, audited."""

from __future__ import annotations

import datetime as dt
import json
import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from gatepass.clock import SystemClock
from gatepass.store import audit_log
from gatepass.tokens import DPoPKey

from .agents import TXN_TYPE, ProtocolAgent
from .conftest import LiveBroker

pytestmark = pytest.mark.slow


@pytest.fixture
def agent(live_broker: LiveBroker) -> Iterator[ProtocolAgent]:
    """The demo agent, with a fresh task key."""
    with ProtocolAgent(live_broker.url, live_broker.demo_identity) as protocol_agent:
        yield protocol_agent


def last_audit(live_broker: LiveBroker) -> dict[str, Any]:
    """Return the newest audit record as JSON."""
    with live_broker.runtime.database.reading() as conn:
        seq, _ = audit_log.read_audit_head(conn)
        records = list(audit_log.iter_audit(conn, after=seq - 1))
    return records[-1].to_json()


def assert_refused(
    live_broker: LiveBroker, response: httpx.Response, status: int, code: str
) -> dict[str, Any]:
    """Check the error shape, code and status, and that the refusal was audited."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == code
    assert body["error_description"]
    assert response.headers["cache-control"] == "no-store"
    record = last_audit(live_broker)
    assert record["outcome"] == "deny"
    assert record["data"]["error"] == code
    assert "eyJ" not in json.dumps(record)
    return record


class TestHappyPath:
    """Open a task, get a token, introspect, close, and the token dies."""

    def test_full_flow(self, live_broker: LiveBroker, agent: ProtocolAgent) -> None:
        """The whole protocol works and closing the task deactivates its token."""
        task = agent.open_task()
        assert task["issued_token_type"] == TXN_TYPE
        assert task["token_type"] == "DPoP"
        assert task["authorization_details"][0]["task_id"] == task["task_id"]
        response = agent.post_token(
            agent.access_form(task["access_token"], scope="read write")
        )
        assert response.status_code == 200, response.text
        granted = response.json()
        # Policy caps: read 600 s, write 300 s; target 600 s: the minimum wins.
        assert granted["expires_in"] == 300
        assert granted["scope"] == "read write"
        introspect = httpx.post(
            f"{live_broker.url}/introspect",
            data={"token": granted["access_token"]},
            headers={"Authorization": f"Bearer {live_broker.introspect_token}"},
        )
        claims = introspect.json()
        assert claims["active"] is True
        assert (
            claims["aud"] == live_broker.runtime.context.catalog.resolve("tickets").uri
        )
        assert claims["cnf"] == {"jkt": agent.key.jkt}
        close_url = f"{live_broker.url}/v1/tasks/{task['task_id']}/close"
        closed = httpx.post(
            close_url,
            headers={
                "Authorization": f"DPoP {task['access_token']}",
                "DPoP": agent.key.proof(
                    "POST", close_url, access_token=task["access_token"]
                ),
            },
        )
        assert closed.status_code == 200, closed.text
        assert closed.json()["state"] == "closed"
        after = httpx.post(
            f"{live_broker.url}/introspect",
            data={"token": granted["access_token"]},
            headers={"Authorization": f"Bearer {live_broker.introspect_token}"},
        )
        assert after.json() == {"active": False}
        refused = agent.post_token(agent.access_form(task["access_token"]))
        assert_refused(live_broker, refused, 400, "invalid_grant")

    def test_revocation_endpoint_revokes_access_token(
        self, live_broker: LiveBroker, agent: ProtocolAgent
    ) -> None:
        """RFC 7009 revocation of an access token revokes its lease only."""
        task = agent.open_task()
        granted = agent.post_token(agent.access_form(task["access_token"])).json()
        revoked = httpx.post(
            f"{live_broker.url}/revoke", data={"token": granted["access_token"]}
        )
        assert revoked.status_code == 200
        assert revoked.content == b""
        with live_broker.runtime.database.reading() as conn:
            from gatepass.store import leases  # noqa: PLC0415

            lease = leases.get_lease(conn, granted["lease_id"])
        assert lease is not None
        assert lease.state.value == "revoked"
        again = agent.post_token(agent.access_form(task["access_token"]))
        assert again.status_code == 200

    def test_issue7_revocation_refuses_another_clients_token(
        self, live_broker: LiveBroker, agent: ProtocolAgent
    ) -> None:
        """RFC 7009 §2.1: naming client B never revokes agent A's token."""
        other = httpx.post(
            f"{live_broker.url}/v1/agents",
            json={
                "name": f"bystander-{secrets.token_hex(4)}",
                "tenant": "acme",
                "public_key": DPoPKey.generate().public_jwk,
            },
            headers={"Authorization": f"Bearer {live_broker.admin_token}"},
        ).json()
        task = agent.open_task()
        granted = agent.post_token(agent.access_form(task["access_token"])).json()
        for token in (granted["access_token"], task["access_token"]):
            refused = httpx.post(
                f"{live_broker.url}/revoke",
                data={"token": token, "client_id": other["id"]},
            )
            record = assert_refused(live_broker, refused, 401, "invalid_client")
            assert record["data"]["client_id"] == other["id"]
        with live_broker.runtime.database.reading() as conn:
            from gatepass.store import leases  # noqa: PLC0415

            lease = leases.get_lease(conn, granted["lease_id"])
        assert lease is not None
        assert lease.state.value == "active"
        assert agent.post_token(agent.access_form(task["access_token"])).is_success
        owned = httpx.post(
            f"{live_broker.url}/revoke",
            data={"token": granted["access_token"], "client_id": agent.agent_id},
        )
        assert owned.status_code == 200

    def test_revocation_of_garbage_is_accepted(self, live_broker: LiveBroker) -> None:
        """Unknown tokens are accepted silently, as RFC 7009 §2.2 requires."""
        response = httpx.post(f"{live_broker.url}/revoke", data={"token": "nope"})
        assert response.status_code == 200

    def test_metadata_and_jwks(self, live_broker: LiveBroker) -> None:
        """RFC 8414 metadata names the endpoints and JWKS publishes current and next."""
        meta = httpx.get(
            f"{live_broker.url}/.well-known/oauth-authorization-server"
        ).json()
        assert meta["issuer"] == live_broker.url
        assert meta["token_endpoint"] == f"{live_broker.url}/token"
        jwks = httpx.get(meta["jwks_uri"]).json()
        assert len(jwks["keys"]) == 2
        assert all("d" not in key for key in jwks["keys"])


class TestRequestShape:
    """Malformed requests are invalid_request (or more precise), never a 5xx."""

    def test_wrong_grant_type(
        self, live_broker: LiveBroker, agent: ProtocolAgent
    ) -> None:
        """Anything but token exchange is unsupported_grant_type."""
        form = agent.open_form()
        form["grant_type"] = "client_credentials"
        response = agent.post_token(form)
        assert_refused(live_broker, response, 400, "unsupported_grant_type")

    def test_json_body(self, live_broker: LiveBroker, agent: ProtocolAgent) -> None:
        """A JSON body is refused: the endpoint takes form encoding."""
        response = agent.http.post(agent.token_endpoint, json=agent.open_form())
        assert_refused(live_broker, response, 400, "invalid_request")

    def test_malformed_form(
        self, live_broker: LiveBroker, agent: ProtocolAgent
    ) -> None:
        """Bytes that are not UTF-8 form encoding are refused."""
        response = agent.post_token(b"\xff\xfe=%%%")
        assert_refused(live_broker, response, 400, "invalid_request")

    def test_repeated_parameter(
        self, live_broker: LiveBroker, agent: ProtocolAgent
    ) -> None:
        """A parameter given twice is refused (RFC 6749 §3.2)."""
        form = agent.open_form()
        body = httpx.QueryParams(form).add("subject_token", "x")
        response = agent.post_token(str(body).encode())
        assert_refused(live_broker, response, 400, "invalid_request")

    def test_oversized_body(
        self, live_broker: LiveBroker, agent: ProtocolAgent
    ) -> None:
        """A body over the limit is refused with 413 before it is read whole."""
        response = agent.post_token(b"a=" + b"x" * 70_000)
        assert_refused(live_broker, response, 413, "invalid_request")

    def test_missing_subject_token(
        self, live_broker: LiveBroker, agent: ProtocolAgent
    ) -> None:
        """A missing subject token is invalid_request."""
        form = agent.open_form()
        del form["subject_token"]
        response = agent.post_token(form)
        assert_refused(live_broker, response, 400, "invalid_request")

    @pytest.mark.parametrize(
        "details",
        [
            "not json",
            "{}",
            "[]",
            '[{"type": "other"}]',
            (
                '[{"type": "agent_task", "intent": "x", "purpose": "BAD PURPOSE",'
                ' "environment": "dev", "targets": ["tickets"]}]'
            ),
            (
                '[{"type": "agent_task", "intent": "x", "purpose": "p",'
                ' "environment": "dev", "targets": []}]'
            ),
            (
                '[{"type": "agent_task", "intent": "x", "purpose": "p",'
                ' "environment": "dev", "targets": ["tickets"], "max_ttl_seconds": -1}]'
            ),
        ],
    )
    def test_bad_authorization_details(
        self, live_broker: LiveBroker, agent: ProtocolAgent, details: str
    ) -> None:
        """Malformed task details are invalid_authorization_details."""
        form = agent.open_form()
        form["authorization_details"] = details
        response = agent.post_token(form)
        assert_refused(live_broker, response, 400, "invalid_authorization_details")


class TestIdentity:
    """The workload identity assertion is checked strictly."""

    def test_expired_assertion(
        self, live_broker: LiveBroker, agent: ProtocolAgent
    ) -> None:
        """An assertion whose exp has passed is invalid_grant."""
        old = SystemClock().now() - dt.timedelta(minutes=10)
        response = agent.post_token(agent.open_form(assertion=agent.assertion(now=old)))
        assert_refused(live_broker, response, 400, "invalid_grant")

    def test_long_lived_assertion(
        self, live_broker: LiveBroker, agent: ProtocolAgent
    ) -> None:
        """An assertion valid for more than five minutes is refused."""
        response = agent.post_token(
            agent.open_form(assertion=agent.assertion(lifetime=3600))
        )
        assert_refused(live_broker, response, 400, "invalid_grant")

    def test_replayed_assertion(
        self, live_broker: LiveBroker, agent: ProtocolAgent
    ) -> None:
        """An assertion is single use."""
        assertion = agent.assertion()
        assert agent.post_token(agent.open_form(assertion=assertion)).status_code == 200
        response = agent.post_token(agent.open_form(assertion=assertion))
        record = assert_refused(live_broker, response, 400, "invalid_grant")
        assert record["actor"] == "unknown" or record["actor"].startswith("agt_")

    def test_unknown_agent(self, live_broker: LiveBroker, agent: ProtocolAgent) -> None:
        """An assertion from an unregistered agent id is invalid_grant."""
        forged = agent.assertion(agent_id="agt_" + "a" * 26)
        response = agent.post_token(agent.open_form(assertion=forged))
        assert_refused(live_broker, response, 400, "invalid_grant")

    def test_wrong_audience(
        self, live_broker: LiveBroker, agent: ProtocolAgent
    ) -> None:
        """An assertion for another audience is invalid_grant."""
        response = agent.post_token(
            agent.open_form(assertion=agent.assertion(audience="https://elsewhere"))
        )
        assert_refused(live_broker, response, 400, "invalid_grant")

    def test_client_id_mismatch(
        self, live_broker: LiveBroker, agent: ProtocolAgent
    ) -> None:
        """A client_id naming another agent is invalid_client."""
        form = agent.open_form()
        form["client_id"] = "agt_" + "b" * 26
        response = agent.post_token(form)
        assert_refused(live_broker, response, 401, "invalid_client")


class TestDPoP:
    """Every token request carries a fresh proof from the right key."""

    def test_missing_proof(self, live_broker: LiveBroker, agent: ProtocolAgent) -> None:
        """No DPoP header is invalid_dpop_proof."""
        response = agent.post_token(agent.open_form(), proof=None)
        assert_refused(live_broker, response, 400, "invalid_dpop_proof")

    def test_two_proofs(self, live_broker: LiveBroker, agent: ProtocolAgent) -> None:
        """Two DPoP headers are refused."""
        headers = [("DPoP", agent.proof()), ("DPoP", agent.proof())]
        response = agent.http.post(
            agent.token_endpoint, data=agent.open_form(), headers=headers
        )
        assert_refused(live_broker, response, 400, "invalid_dpop_proof")

    def test_replayed_proof(
        self, live_broker: LiveBroker, agent: ProtocolAgent
    ) -> None:
        """A proof is single use."""
        proof = agent.proof()
        assert agent.post_token(agent.open_form(), proof=proof).status_code == 200
        response = agent.post_token(agent.open_form(), proof=proof)
        assert_refused(live_broker, response, 400, "invalid_dpop_proof")

    def test_proof_for_other_url(
        self, live_broker: LiveBroker, agent: ProtocolAgent
    ) -> None:
        """A proof whose htu is another URL is refused."""
        proof = agent.proof(url=f"{live_broker.url}/elsewhere")
        response = agent.post_token(agent.open_form(), proof=proof)
        assert_refused(live_broker, response, 400, "invalid_dpop_proof")

    def test_proof_from_other_key(
        self, live_broker: LiveBroker, agent: ProtocolAgent
    ) -> None:
        """A task token used with a proof from another key is refused."""
        task = agent.open_task()
        stranger = DPoPKey.generate()
        response = agent.post_token(
            agent.access_form(task["access_token"]),
            proof=stranger.proof("POST", agent.token_endpoint),
        )
        assert_refused(live_broker, response, 400, "invalid_dpop_proof")


class TestTargetsAndScopes:
    """Targets and actions are bounded by the task, the target and the policy."""

    def test_unknown_target(
        self, live_broker: LiveBroker, agent: ProtocolAgent
    ) -> None:
        """Opening a task for an unknown target is invalid_target."""
        response = agent.post_token(agent.open_form(targets=["https://unknown/"]))
        assert_refused(live_broker, response, 400, "invalid_target")

    def test_environment_mismatch(
        self, live_broker: LiveBroker, agent: ProtocolAgent
    ) -> None:
        """A dev task cannot name a prod target."""
        response = agent.post_token(agent.open_form(targets=["tickets-prod"]))
        assert_refused(live_broker, response, 400, "invalid_target")

    def test_other_tenant_denied(
        self, live_broker: LiveBroker, agent: ProtocolAgent
    ) -> None:
        """Policy refuses a task on another tenant's target."""
        response = agent.post_token(agent.open_form(targets=["globex-dev"]))
        record = assert_refused(live_broker, response, 403, "access_denied")
        assert record["kind"] == "task.open"

    def test_target_outside_task(
        self, live_broker: LiveBroker, agent: ProtocolAgent
    ) -> None:
        """A token for a target the task did not name is invalid_target."""
        task = agent.open_task()
        response = agent.post_token(
            agent.access_form(task["access_token"], resource="globex-dev")
        )
        assert_refused(live_broker, response, 400, "invalid_target")

    def test_two_resources(self, live_broker: LiveBroker, agent: ProtocolAgent) -> None:
        """Exactly one resource may be named (one audience per token)."""
        task = agent.open_task()
        form = httpx.QueryParams(agent.access_form(task["access_token"]))
        response = agent.post_token(str(form.add("resource", "tickets")).encode())
        assert_refused(live_broker, response, 400, "invalid_target")

    def test_unknown_action(
        self, live_broker: LiveBroker, agent: ProtocolAgent
    ) -> None:
        """An action the target does not offer is invalid_scope."""
        task = agent.open_task()
        response = agent.post_token(
            agent.access_form(task["access_token"], scope="delete")
        )
        assert_refused(live_broker, response, 400, "invalid_scope")

    def test_empty_scope(self, live_broker: LiveBroker, agent: ProtocolAgent) -> None:
        """An empty scope is invalid_scope."""
        task = agent.open_task()
        response = agent.post_token(agent.access_form(task["access_token"], scope=" "))
        assert_refused(live_broker, response, 400, "invalid_scope")

    def test_policy_denies_scope(
        self, live_broker: LiveBroker, agent: ProtocolAgent
    ) -> None:
        """Write outside a support-triage task is denied by policy, naming no secret."""
        task = agent.open_task(purpose="reporting")
        response = agent.post_token(
            agent.access_form(task["access_token"], scope="write")
        )
        record = assert_refused(live_broker, response, 403, "access_denied")
        assert record["subject"] == task["task_id"]
        with live_broker.runtime.database.reading() as conn:
            from gatepass.store import leases  # noqa: PLC0415

            assert leases.list_leases(conn, task_id=task["task_id"]) == []

    def test_issue7_decision_records_carry_policy_digest(
        self, live_broker: LiveBroker, agent: ProtocolAgent
    ) -> None:
        """Allow and deny records name the digest of the policy set that decided."""
        digest = live_broker.runtime.context.policies.current.digest
        task = agent.open_task(purpose="reporting")
        opened = last_audit(live_broker)
        assert opened["kind"] == "task.open"
        assert opened["data"]["policy_digest"] == digest
        assert agent.post_token(agent.access_form(task["access_token"])).is_success
        allowed = last_audit(live_broker)
        assert allowed["outcome"] == "allow"
        assert allowed["data"]["policy_digest"] == digest
        assert allowed["data"]["policy_ids"]
        response = agent.post_token(
            agent.access_form(task["access_token"], scope="write")
        )
        denied = assert_refused(live_broker, response, 403, "access_denied")
        assert denied["data"]["policy_digest"] == digest

    def test_forged_task_token(
        self, live_broker: LiveBroker, agent: ProtocolAgent
    ) -> None:
        """A task token with a tampered payload is invalid_grant."""
        task = agent.open_task()
        header, payload, signature = task["access_token"].split(".")
        forged = f"{header}.{payload[:-2]}AA.{signature}"
        response = agent.post_token(agent.access_form(forged))
        assert_refused(live_broker, response, 400, "invalid_grant")


class TestAgentLifecycle:
    """Disabling an agent ends its tasks and refuses it."""

    def test_disabled_agent(self, live_broker: LiveBroker) -> None:
        """A disabled agent's open task closes and its next assertion is denied."""
        key = DPoPKey.generate("EdDSA")
        from gatepass.tokens import private_jwk  # noqa: PLC0415

        admin = {"Authorization": f"Bearer {live_broker.admin_token}"}
        created = httpx.post(
            f"{live_broker.url}/v1/agents",
            json={
                "name": "soon-disabled",
                "tenant": "acme",
                "public_key": key.public_jwk,
                "labels": {"team": "support"},
            },
            headers=admin,
        )
        assert created.status_code == 201, created.text
        identity = {
            "agent_id": created.json()["id"],
            "private_jwk": private_jwk(key.private_key),
        }
        other = ProtocolAgent(live_broker.url, identity)
        task = other.open_task()
        disabled = httpx.post(
            f"{live_broker.url}/v1/agents/{identity['agent_id']}/disable", headers=admin
        )
        assert disabled.status_code == 200
        shown = httpx.get(
            f"{live_broker.url}/v1/tasks/{task['task_id']}", headers=admin
        )
        assert shown.json()["state"] == "closed"
        response = other.post_token(other.open_form())
        other.http.close()
        assert_refused(live_broker, response, 403, "access_denied")


class TestNonce:
    """A broker that requires DPoP nonces challenges first (RFC 9449 §8)."""

    def test_nonce_challenge_then_success(
        self, tmp_path_factory: pytest.TempPathFactory
    ) -> None:
        """The first request gets use_dpop_nonce and a nonce; the retry succeeds."""
        from gatepass.api import create_app  # noqa: PLC0415
        from gatepass.broker import build_runtime  # noqa: PLC0415

        from .conftest import free_port, quickstart_settings, start_server  # noqa: PLC0415

        port = free_port()
        state = tmp_path_factory.mktemp("nonce") / "state"
        settings = quickstart_settings(
            state, port=port, resource_port=free_port(), dpop={"require_nonce": True}
        )
        runtime = build_runtime(settings)
        running = start_server(create_app(runtime, background_jobs=False), port)
        broker = LiveBroker(url=running.url, runtime=runtime, state_dir=state)
        try:
            with ProtocolAgent(running.url, broker.demo_identity) as agent:
                first = agent.post_token(agent.open_form())
                assert_refused(broker, first, 400, "use_dpop_nonce")
                nonce = first.headers["DPoP-Nonce"]
                second = agent.post_token(
                    agent.open_form(), proof=agent.proof(nonce=nonce)
                )
                assert second.status_code == 200, second.text
        finally:
            running.stop()
            runtime.database.dispose()


class TestNoEcho:
    """Whatever a client sends, no error or audit record repeats a secret."""

    CANARY = "canary-9f8e7d6c5b4a"

    @pytest.mark.parametrize(
        "field", ["subject_token", "client_id", "resource", "scope", "audience"]
    )
    def test_canary_never_echoed(
        self, live_broker: LiveBroker, agent: ProtocolAgent, field: str
    ) -> None:
        """A canary placed in any parameter appears in neither the answer nor audit."""
        task = agent.open_task()
        form = agent.access_form(task["access_token"])
        form[field] = f"eyJ{self.CANARY}.{self.CANARY}.{self.CANARY}"
        response = agent.post_token(form)
        assert response.status_code in {400, 401, 403}
        assert self.CANARY not in response.text
        assert self.CANARY not in json.dumps(last_audit(live_broker))
