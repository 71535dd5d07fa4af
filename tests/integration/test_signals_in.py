"""Signals in over real HTTP: SSF push (RFC 8935) and gatepass's own (issue 14)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from tests.integration.agents import ProtocolAgent
from tests.integration.conftest import (
    LiveBroker,
    free_port,
    quickstart_settings,
    start_server,
)
from tests.integration.test_ssh_credentials import is_revoked, openssh_public_key
from tests.integration.transmitter import CAEP, RISC, LocalTransmitter

from gatepass.api import create_app
from gatepass.broker import build_runtime
from gatepass.clock import SystemClock
from gatepass.sdk import AgentIdentity, GatepassClient
from gatepass.tokens import DPoPKey

SET_TYPE = "application/secevent+jwt"


@pytest.fixture(scope="module")
def transmitter(tmp_path_factory: pytest.TempPathFactory) -> LocalTransmitter:
    """A local transmitter with keys generated for this module."""
    return LocalTransmitter(
        tmp_path_factory.mktemp("transmitter"),
        issuer="https://idp.example.test",
        audience="https://gatepass.example.test/ssf",
    )


@pytest.fixture(scope="module")
def signal_broker(
    tmp_path_factory: pytest.TempPathFactory, transmitter: LocalTransmitter
) -> Iterator[LiveBroker]:
    """A quickstart broker that trusts the local transmitter."""
    state_dir = tmp_path_factory.mktemp("broker") / "state"
    port = free_port()
    settings = quickstart_settings(
        state_dir,
        port=port,
        resource_port=free_port(),
        signals={
            "transmitters": [transmitter.settings()],
            "rules": [
                {
                    "events": ["session-revoked", "account-disabled"],
                    "match": "agent",
                    "effect": "revoke_tasks",
                },
                {
                    "events": ["assurance-level-change"],
                    "match": "agent",
                    "effect": "set_risk",
                    "risk": "high",
                    "duration_seconds": 600,
                },
                {
                    "events": ["device-compliance-change"],
                    "match": "environment",
                    "effect": "freeze_environment",
                },
                {
                    "events": ["credential-compromise"],
                    "match": "tenant",
                    "effect": "revoke_tasks",
                },
                {
                    "events": ["risk-level-change"],
                    "match": "owner",
                    "effect": "set_risk",
                    "risk": "medium",
                },
            ],
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
def agent(signal_broker: LiveBroker) -> Iterator[ProtocolAgent]:
    """The demo agent, with a fresh task key."""
    with ProtocolAgent(signal_broker.url, signal_broker.demo_identity) as protocol:
        yield protocol


@pytest.fixture(autouse=True)
def admin(signal_broker: LiveBroker) -> Iterator[httpx.Client]:
    """An admin API client; every signal it set is cleared afterwards."""
    with httpx.Client(
        base_url=signal_broker.url,
        headers={"Authorization": f"Bearer {signal_broker.admin_token}"},
        timeout=10,
    ) as client:
        yield client
        for signal in client.get("/v1/signals").json()["signals"]:
            scope_field = {"risk": "agent", "freeze": "environment"}.get(
                signal["kind"], "tenant"
            )
            client.post(
                "/v1/signals",
                json={
                    "kind": signal["kind"],
                    scope_field: signal["scope"],
                    "clear": True,
                },
            )


def push(
    broker: LiveBroker,
    token: str,
    transmitter: LocalTransmitter,
    *,
    content_type: str = SET_TYPE,
    authorization: str | None = "transmitter",
) -> httpx.Response:
    """Push one SET to the receiver."""
    headers = {"Content-Type": content_type}
    if authorization == "transmitter":
        headers["Authorization"] = f"Bearer {transmitter.push_token}"
    elif authorization is not None:
        headers["Authorization"] = authorization
    return httpx.post(f"{broker.url}/ssf/push", content=token, headers=headers)


def introspect(broker: LiveBroker, token: str) -> dict[str, Any]:
    """Introspect a token as a resource server would."""
    answer = httpx.post(
        f"{broker.url}/introspect",
        data={"token": token},
        headers={"Authorization": f"Bearer {broker.introspect_token}"},
    )
    body: dict[str, Any] = answer.json()
    return body


def audit(admin: httpx.Client, kind: str) -> list[dict[str, Any]]:
    """Return the audit records of one kind."""
    items: list[dict[str, Any]] = admin.get(
        "/v1/audit/events", params={"kind": kind, "last": "50"}
    ).json()["items"]
    return items


def demo_subject(broker: LiveBroker) -> dict[str, str]:
    """Return an RFC 9493 opaque subject naming the demo agent by name."""
    return {"format": "opaque", "id": "demo-agent"}


class TestPushReceiver:
    """A SET from a configured transmitter acts on what its subject names."""

    def test_session_revoked_revokes_the_agents_tasks(
        self,
        signal_broker: LiveBroker,
        transmitter: LocalTransmitter,
        agent: ProtocolAgent,
        admin: httpx.Client,
    ) -> None:
        """A session-revoked SET closes the agent's tasks and kills their tokens."""
        task = agent.open_task()
        granted = agent.post_token(agent.access_form(task["access_token"])).json()
        assert introspect(signal_broker, granted["access_token"])["active"] is True
        token = transmitter.make_set("session-revoked", demo_subject(signal_broker))
        answer = push(signal_broker, token, transmitter)
        assert answer.status_code == 202, answer.text
        assert introspect(signal_broker, granted["access_token"]) == {"active": False}
        assert introspect(signal_broker, task["access_token"]) == {"active": False}
        refused = agent.post_token(agent.access_form(task["access_token"]))
        assert refused.json()["error"] == "invalid_grant"
        received = audit(admin, "signal.received")[-1]
        assert received["actor"] == f"ssf:{transmitter.issuer}"
        assert received["data"]["event"].endswith("/session-revoked")
        closes = [
            r for r in audit(admin, "task.close") if r["subject"] == task["task_id"]
        ]
        assert closes[0]["data"]["reason"] == "context signal session-revoked"
        # The raw SET is never written anywhere in the audit log.
        everything = json.dumps(admin.get("/v1/audit/events").json())
        assert token.split(".")[2] not in everything

    def test_risc_account_disabled_also_revokes(
        self,
        signal_broker: LiveBroker,
        transmitter: LocalTransmitter,
        agent: ProtocolAgent,
    ) -> None:
        """A RISC account-disabled SET with an aliases subject closes the tasks."""
        task = agent.open_task()
        subject = {
            "format": "aliases",
            "identifiers": [
                {"format": "email", "email": "nobody@example.test"},
                {"format": "opaque", "id": "demo-agent"},
            ],
        }
        token = transmitter.make_set(RISC + "account-disabled", subject)
        assert push(signal_broker, token, transmitter).status_code == 202
        assert introspect(signal_broker, task["access_token"]) == {"active": False}

    def test_assurance_change_sets_risk_and_policy_denies(
        self,
        signal_broker: LiveBroker,
        transmitter: LocalTransmitter,
        agent: ProtocolAgent,
        admin: httpx.Client,
    ) -> None:
        """A set_risk rule makes the agent high-risk: its task ends, new ones fail."""
        task = agent.open_task()
        token = transmitter.make_set(
            "assurance-level-change", demo_subject(signal_broker)
        )
        assert push(signal_broker, token, transmitter).status_code == 202
        assert introspect(signal_broker, task["access_token"]) == {"active": False}
        opened = agent.post_token(agent.open_form())
        assert opened.status_code == 403, opened.text
        assert opened.json()["error"] == "access_denied"
        (risk,) = admin.get("/v1/signals").json()["signals"]
        assert (risk["kind"], risk["value"]) == ("risk", "high")
        assert risk["source"] == f"ssf:{transmitter.issuer}"
        assert risk["until"] is not None

    def test_device_compliance_freezes_the_environment(
        self,
        signal_broker: LiveBroker,
        transmitter: LocalTransmitter,
        agent: ProtocolAgent,
    ) -> None:
        """A freeze rule revokes write leases in the environment, keeps reads."""
        task = agent.open_task()
        write = agent.post_token(agent.access_form(task["access_token"], scope="write"))
        read = agent.post_token(agent.access_form(task["access_token"], scope="read"))
        assert write.status_code == read.status_code == 200
        token = transmitter.make_set(
            "device-compliance-change", {"format": "opaque", "id": "dev"}
        )
        assert push(signal_broker, token, transmitter).status_code == 202
        assert introspect(signal_broker, write.json()["access_token"]) == {
            "active": False
        }
        assert introspect(signal_broker, read.json()["access_token"])["active"] is True
        again = agent.post_token(agent.access_form(task["access_token"], scope="write"))
        assert again.json()["error"] == "access_denied"

    def test_tenant_rule_revokes_every_task_of_the_tenant(
        self,
        signal_broker: LiveBroker,
        transmitter: LocalTransmitter,
        agent: ProtocolAgent,
    ) -> None:
        """A RISC credential-compromise naming a tenant closes its open tasks."""
        task = agent.open_task()
        token = transmitter.make_set(
            RISC + "credential-compromise",
            {"format": "complex", "tenant": {"format": "opaque", "id": "acme"}},
        )
        assert push(signal_broker, token, transmitter).status_code == 202
        assert introspect(signal_broker, task["access_token"]) == {"active": False}

    def test_owner_rule_raises_the_risk_of_every_agent_it_owns(
        self,
        signal_broker: LiveBroker,
        transmitter: LocalTransmitter,
        admin: httpx.Client,
    ) -> None:
        """A SET naming an operator sets the risk of the agents it owns, only those."""
        added = admin.post(
            "/v1/admin/operators",
            json={
                "name": "oscar",
                "roles": ["approver"],
                "groups": ["owners"],
                "tenants": ["acme"],
            },
        )
        assert added.status_code == 201, added.text
        owned = admin.post(
            "/v1/agents",
            json={
                "name": "owned-agent",
                "tenant": "acme",
                "public_key": DPoPKey.generate().public_jwk,
                "owners": ["oscar"],
            },
        )
        assert owned.status_code == 201, owned.text
        token = transmitter.make_set(
            "risk-level-change", {"format": "email", "email": "oscar"}
        )
        assert push(signal_broker, token, transmitter).status_code == 202
        (risk,) = admin.get("/v1/signals").json()["signals"]
        assert (risk["kind"], risk["scope"], risk["value"]) == (
            "risk",
            owned.json()["id"],
            "medium",
        )


class TestEngineCredentials:
    """A signal revokes engine credentials through their engine, not just the lease."""

    def test_risk_signal_puts_the_ssh_certificate_in_the_krl(
        self, signal_broker: LiveBroker, admin: httpx.Client, tmp_path: Path
    ) -> None:
        """The SSH certificate is in the target's KRL once the signal answers."""
        client = GatepassClient(
            AgentIdentity.load(signal_broker.state_dir / "demo-agent.json")
        )
        with client:
            task = client.open_task(
                intent="rotate logs",
                purpose="maintenance",
                environment="dev",
                targets=["bastion"],
            )
            credential = task.ssh_certificate(
                "bastion", "read", public_key=openssh_public_key()
            )
            certificate = credential.certificate
            assert certificate is not None
            sent = admin.post(
                "/v1/signals",
                json={"kind": "risk", "agent": "demo-agent", "level": "high"},
            )
            assert sent.status_code == 200, sent.text
            krl = httpx.get(f"{signal_broker.url}/v1/ssh/bastion/krl")
            assert is_revoked(krl.content, certificate, tmp_path)
            lease = admin.get(f"/v1/leases/{credential.lease_id}").json()
            assert lease["state"] == "revoked"


def _other_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


REFUSALS: list[tuple[str, dict[str, Any], str, int]] = [
    ("bad signature", {"key": "other"}, "invalid_key", 400),
    ("unknown kid", {"header": {"kid": "nope"}}, "invalid_key", 400),
    (
        "wrong audience",
        {"aud": "https://someone-else.test/ssf"},
        "invalid_audience",
        400,
    ),
    ("unknown issuer", {"iss": "https://evil.example.test"}, "invalid_issuer", 400),
    (
        "unknown event type",
        {"event": "https://example.test/made-up"},
        "invalid_request",
        400,
    ),
    ("two events", {"two_events": True}, "invalid_request", 400),
    ("wrong typ", {"header": {"typ": "JWT"}}, "invalid_request", 400),
    ("too old", {"iat": 1_000_000}, "invalid_request", 400),
    ("no subject", {"sub_id": None}, "invalid_request", 400),
    ("no push token", {"authorization": None}, "authentication_failed", 401),
    (
        "wrong push token",
        {"authorization": "Bearer nope"},
        "authentication_failed",
        401,
    ),
    ("wrong content type", {"content_type": "application/jwt"}, "invalid_request", 400),
]


class TestRefusals:
    """Every bad SET is refused with its RFC 8935 code and audited."""

    @pytest.mark.parametrize("refusal", REFUSALS, ids=[r[0] for r in REFUSALS])
    def test_refused_and_audited(
        self,
        signal_broker: LiveBroker,
        transmitter: LocalTransmitter,
        agent: ProtocolAgent,
        admin: httpx.Client,
        refusal: tuple[str, dict[str, Any], str, int],
    ) -> None:
        """The SET is refused, nothing is revoked, and signal.refused says why."""
        _, change, err, status = refusal
        task = agent.open_task()
        change = dict(change)
        event = change.pop("event", "session-revoked")
        key = _other_key() if change.pop("key", None) == "other" else None
        header = change.pop("header", None)
        authorization = change.pop("authorization", "transmitter")
        content_type = change.pop("content_type", SET_TYPE)
        claims = dict(change)
        if claims.pop("two_events", False):
            claims["events"] = {
                CAEP + "session-revoked": {},
                CAEP + "credential-change": {},
            }
        if "sub_id" in claims and claims["sub_id"] is None:
            claims["sub_id"] = "not-an-object"
        token = transmitter.make_set(
            event, demo_subject(signal_broker), key=key, header=header, **claims
        )
        answer = push(
            signal_broker,
            token,
            transmitter,
            content_type=content_type,
            authorization=authorization,
        )
        assert answer.status_code == status, answer.text
        assert answer.json()["err"] == err
        assert introspect(signal_broker, task["access_token"])["active"] is True
        refused = audit(admin, "signal.refused")[-1]
        assert refused["outcome"] == "deny"
        assert refused["data"]["err"] == err
        assert refused["data"]["reason"] == answer.json()["description"]

    def test_replayed_jti_is_refused(
        self,
        signal_broker: LiveBroker,
        transmitter: LocalTransmitter,
        admin: httpx.Client,
    ) -> None:
        """The same SET twice: accepted once, then invalid_request, audited."""
        token = transmitter.make_set(
            "credential-change", {"format": "opaque", "id": "nobody"}
        )
        assert push(signal_broker, token, transmitter).status_code == 202
        again = push(signal_broker, token, transmitter)
        assert again.status_code == 400
        assert again.json() == {
            "err": "invalid_request",
            "description": "jti was already received",
        }
        assert audit(admin, "signal.refused")[-1]["data"]["reason"] == (
            "jti was already received"
        )


class TestOwnSignals:
    """POST /v1/signals changes what policy decides and revokes what no longer holds."""

    def test_high_risk_agent_loses_its_tasks(
        self, signal_broker: LiveBroker, agent: ProtocolAgent, admin: httpx.Client
    ) -> None:
        """Risk high closes the agent's task; clearing it lets the agent work again."""
        task = agent.open_task()
        sent = admin.post(
            "/v1/signals",
            json={"kind": "risk", "agent": "demo-agent", "level": "high"},
        )
        assert sent.status_code == 200, sent.text
        assert task["task_id"] in sent.json()["closed_tasks"]
        assert introspect(signal_broker, task["access_token"]) == {"active": False}
        assert agent.post_token(agent.open_form()).status_code == 403
        cleared = admin.post(
            "/v1/signals", json={"kind": "risk", "agent": "demo-agent", "level": "low"}
        )
        assert cleared.status_code == 200
        assert admin.get("/v1/signals").json()["signals"] == []
        assert agent.post_token(agent.open_form()).status_code == 200

    def test_freeze_revokes_writes_until_it_ends(
        self, signal_broker: LiveBroker, agent: ProtocolAgent, admin: httpx.Client
    ) -> None:
        """A frozen environment's write leases are revoked; reads go on."""
        task = agent.open_task()
        write = agent.post_token(agent.access_form(task["access_token"], scope="write"))
        until = (SystemClock().now() + dt.timedelta(hours=1)).isoformat()
        sent = admin.post(
            "/v1/signals",
            json={"kind": "freeze", "environment": "dev", "until": until},
        )
        assert sent.status_code == 200, sent.text
        assert sent.json()["revoked_leases"]
        assert introspect(signal_broker, write.json()["access_token"]) == {
            "active": False
        }
        read = agent.post_token(agent.access_form(task["access_token"], scope="read"))
        assert read.status_code == 200

    def test_incident_makes_a_tenant_read_only(
        self, agent: ProtocolAgent, admin: httpx.Client
    ) -> None:
        """During an incident, a tenant's agents are refused writes."""
        task = agent.open_task()
        sent = admin.post("/v1/signals", json={"kind": "incident", "tenant": "acme"})
        assert sent.status_code == 200, sent.text
        write = agent.post_token(agent.access_form(task["access_token"], scope="write"))
        assert write.json()["error"] == "access_denied"
        (signal,) = admin.get("/v1/signals").json()["signals"]
        assert signal["kind"] == "incident"
        assert signal["source"].startswith("admin:")
        assert audit(admin, "signal.set")[-1]["subject"] == "acme"

    @pytest.mark.parametrize(
        "body",
        [
            {"kind": "risk", "agent": "no-such-agent"},
            {"kind": "risk", "environment": "dev"},
            {"kind": "freeze", "environment": "dev", "until": "2001-01-01T00:00:00Z"},
            {"kind": "weather", "tenant": "acme"},
            {"kind": "risk", "agent": "demo-agent", "level": "extreme"},
        ],
    )
    def test_bad_signals_are_refused_and_audited(
        self, admin: httpx.Client, body: dict[str, Any]
    ) -> None:
        """Malformed or unknown signals are 4xx and leave an audit record."""
        before = len(audit(admin, "signal.set"))
        answer = admin.post("/v1/signals", json=body)
        assert 400 <= answer.status_code < 500, answer.text
        records = audit(admin, "signal.set")
        assert len(records) == before + 1
        assert records[-1]["outcome"] == "deny"

    def test_a_signal_needs_the_signal_permission(
        self, signal_broker: LiveBroker
    ) -> None:
        """An introspection token may not send signals."""
        answer = httpx.post(
            f"{signal_broker.url}/v1/signals",
            json={"kind": "incident", "tenant": "acme"},
            headers={"Authorization": f"Bearer {signal_broker.introspect_token}"},
        )
        assert answer.status_code == 403
        assert answer.json()["error"] == "access_denied"
