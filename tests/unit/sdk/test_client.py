"""Tests for GatepassClient, Task and AccessToken against a fake broker."""

from __future__ import annotations

import datetime as dt
import json
import logging

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from gatepass.clock import FrozenClock
from gatepass.errors import (
    AccessDeniedError,
    ConfigurationError,
    DPoPNonceRequiredError,
    GatepassError,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    InvalidTargetError,
)
from gatepass.sdk import REFRESH_MARGIN, AgentIdentity, GatepassClient
from gatepass.tokens import DPoPVerifier, MemoryReplayCache

from .conftest import BROKER, TARGET, TASK_ID, FakeBroker, open_task


class TestOpenTask:
    """Opening a task."""

    def test_sends_a_token_exchange_with_details(
        self, client: GatepassClient, broker: FakeBroker
    ) -> None:
        """The request is RFC 8693 with agent_task details and a verified proof."""
        task = client.open_task(
            intent="triage",
            purpose="support-triage",
            environment="dev",
            targets=[TARGET],
            tenant="acme",
            ttl=dt.timedelta(minutes=5),
        )
        form = broker.forms()[0]
        assert form["grant_type"].endswith("token-exchange")
        assert form["requested_token_type"].endswith("txn_token")
        details = json.loads(form["authorization_details"])
        assert details == [
            {
                "type": "agent_task",
                "intent": "triage",
                "purpose": "support-triage",
                "environment": "dev",
                "targets": [TARGET],
                "tenant": "acme",
                "max_ttl_seconds": 300,
            }
        ]
        assert task.id == TASK_ID
        assert not task.closed
        assert "task-token" not in repr(task)

    def test_each_task_has_its_own_key(
        self, client: GatepassClient, broker: FakeBroker
    ) -> None:
        """Two tasks are bound to two different DPoP keys."""
        open_task(client)
        open_task(client)
        keys = [
            jwt.get_unverified_header(r.headers["dpop"])["jwk"]["x"]
            for r in broker.requests
            if r.url.path == "/token"
        ]
        assert keys[0] != keys[1]

    def test_nonce_challenge_is_retried_once(
        self, client: GatepassClient, broker: FakeBroker
    ) -> None:
        """use_dpop_nonce: the SDK retries with the nonce and keeps using it."""
        broker.require_nonce = True
        task = open_task(client)
        task.access_token(TARGET, "read")
        proofs = [
            jwt.decode(r.headers["dpop"], options={"verify_signature": False})
            for r in broker.requests
            if r.url.path == "/token"
        ]
        assert "nonce" not in proofs[0]
        assert [p["nonce"] for p in proofs[1:]] == ["nonce-1", "nonce-1"]

    def test_nonce_challenge_twice_raises(
        self, client: GatepassClient, broker: FakeBroker
    ) -> None:
        """A second nonce challenge in a row is raised, not looped on."""
        challenge = {"error": "use_dpop_nonce", "error_description": "nonce"}
        broker.errors = [(400, challenge), (400, challenge)]
        with pytest.raises(DPoPNonceRequiredError):
            open_task(client)

    @pytest.mark.parametrize(
        ("code", "error_class"),
        [
            ("access_denied", AccessDeniedError),
            ("invalid_target", InvalidTargetError),
            ("invalid_grant", InvalidGrantError),
            ("something_new", GatepassError),
        ],
    )
    def test_broker_errors_map_to_classes(
        self,
        client: GatepassClient,
        broker: FakeBroker,
        code: str,
        error_class: type[GatepassError],
    ) -> None:
        """The error code picks the class; the description is kept."""
        broker.errors = [(400, {"error": code, "error_description": "because"})]
        with pytest.raises(error_class, match="because") as raised:
            open_task(client)
        assert type(raised.value) is error_class

    def test_non_json_error_is_a_gatepass_error(
        self, client: GatepassClient, broker: FakeBroker
    ) -> None:
        """A proxy's HTML error page becomes GatepassError with the status."""
        broker.errors = [(502, None)]
        with pytest.raises(GatepassError, match="http 502"):
            open_task(client)

    def test_unreachable_broker(self, identity: AgentIdentity) -> None:
        """A connection error becomes GatepassError."""

        def refuse(request: httpx.Request) -> httpx.Response:
            raise httpx.ConnectError("refused", request=request)

        http = httpx.Client(transport=httpx.MockTransport(refuse))
        with (
            GatepassClient(identity, http=http) as client,
            pytest.raises(GatepassError, match="unreachable"),
        ):
            open_task(client)

    def test_metadata_for_another_issuer_is_refused(
        self, client: GatepassClient, broker: FakeBroker
    ) -> None:
        """RFC 8414 §3.3: metadata naming another issuer is not trusted."""
        broker.issuer = "https://evil.example"
        with pytest.raises(ConfigurationError, match="another issuer"):
            open_task(client)

    def test_targets_must_be_a_list(self, client: GatepassClient) -> None:
        """A bare string is refused locally."""
        with pytest.raises(InvalidRequestError):
            client.open_task(intent="x", purpose="p", environment="dev", targets=TARGET)

    def test_broker_url_is_required(self, identity: AgentIdentity) -> None:
        """Without a broker URL anywhere, the client refuses to start."""
        bare = AgentIdentity(identity.agent_id, ec.generate_private_key(ec.SECP256R1()))
        with pytest.raises(ConfigurationError):
            GatepassClient(bare)

    def test_repr_and_url(self, client: GatepassClient) -> None:
        """The client shows its agent and broker."""
        assert client.broker_url == BROKER
        assert BROKER in repr(client)


class TestAccessTokens:
    """Getting and caching access tokens."""

    def test_token_is_cached_until_the_refresh_margin(
        self, client: GatepassClient, broker: FakeBroker, clock: FrozenClock
    ) -> None:
        """The same (target, actions) reuses a token until 30 s before expiry."""
        task = open_task(client)
        first = task.access_token(TARGET, ["write", "read"])
        assert task.access_token(TARGET, "read write") is first
        clock.advance(300 - REFRESH_MARGIN.total_seconds() - 1)
        assert task.access_token(TARGET, ["read", "write"]) is first
        clock.advance(1)
        assert task.access_token(TARGET, ["read", "write"]) is not first
        assert broker.issued == 2

    def test_scope_is_sent_and_returned(
        self, client: GatepassClient, broker: FakeBroker
    ) -> None:
        """The scope names the actions; the token reports lease and scope."""
        token = open_task(client).access_token(TARGET, "read")
        assert broker.forms()[-1]["scope"] == "read"
        assert broker.forms()[-1]["resource"] == TARGET
        assert token.scope == "read"
        assert token.actions == frozenset({"read"})
        assert token.lease_id == "lse_1"

    @pytest.mark.parametrize("actions", ["", [], ["read", ""], ["a b"]])
    def test_empty_actions_are_refused(
        self, client: GatepassClient, actions: list[str] | str
    ) -> None:
        """At least one well-formed action is needed."""
        with pytest.raises(InvalidScopeError):
            open_task(client).access_token(TARGET, actions)

    def test_repr_never_shows_the_token(self, client: GatepassClient) -> None:
        """Neither repr nor the value's repr shows the token."""
        token = open_task(client).access_token(TARGET, "read")
        assert "access-token" not in repr(token)
        assert "access-token" not in repr(token.value)
        assert "access-token" not in repr(token.auth())

    def test_headers_carry_a_bound_proof(
        self, client: GatepassClient, clock: FrozenClock
    ) -> None:
        """headers() gives a DPoP proof for that request, bound with ath."""
        token = open_task(client).access_token(TARGET, "read")
        url = TARGET + "tickets?page=1"
        headers = token.headers("get", url)
        assert headers["Authorization"] == "DPoP access-token-1"
        verifier = DPoPVerifier(clock=clock, replay=MemoryReplayCache(clock))
        verifier.verify(
            headers["DPoP"],
            method="GET",
            url=url,
            access_token=token.value.reveal(),
        )

    def test_headers_refuse_another_server(self, client: GatepassClient) -> None:
        """The token is never handed to a URL outside its target."""
        token = open_task(client).access_token(TARGET, "read")
        for url in ("https://evil.example/", "https://api.example.evil/x"):
            with pytest.raises(InvalidRequestError, match="outside"):
                token.headers("GET", url)

    def test_audience_comes_from_the_token(
        self, client: GatepassClient, broker: FakeBroker
    ) -> None:
        """A target given by name still pins the token to its aud URI."""
        task = open_task(client)
        at = jwt.encode({"aud": "https://api.example/v1"}, "k" * 32, algorithm="HS256")
        broker.errors = []
        original = broker._token

        def with_jwt(request: httpx.Request, proof: str | None) -> httpx.Response:
            response = original(request, proof)
            body = response.json()
            body["access_token"] = at
            return httpx.Response(200, json=body)

        broker._token = with_jwt  # type: ignore[method-assign]
        token = task.access_token("tickets", "read")
        assert token.audience == "https://api.example/v1"
        token.headers("GET", "https://api.example/v1/tickets")
        with pytest.raises(InvalidRequestError):
            token.headers("GET", "https://api.example/v10")

    def test_auth_signs_requests_and_answers_nonce(
        self, client: GatepassClient
    ) -> None:
        """auth() signs each request and retries once on a resource nonce."""
        token = open_task(client).access_token(TARGET, "read")
        seen: list[httpx.Request] = []

        def resource(request: httpx.Request) -> httpx.Response:
            seen.append(request)
            claims = jwt.decode(
                request.headers["dpop"], options={"verify_signature": False}
            )
            if "nonce" not in claims:
                return httpx.Response(
                    401,
                    headers={
                        "WWW-Authenticate": 'DPoP error="use_dpop_nonce"',
                        "DPoP-Nonce": "rs-nonce",
                    },
                )
            return httpx.Response(200, json={"ok": True})

        with httpx.Client(transport=httpx.MockTransport(resource)) as http:
            response = http.get(TARGET + "tickets", auth=token.auth())
            assert response.status_code == 200
            again = http.get(TARGET + "tickets", auth=token.auth())
            assert again.status_code == 200
        assert len(seen) == 3
        assert all(r.headers["authorization"] == "DPoP access-token-1" for r in seen)


class TestClose:
    """Closing a task."""

    def test_close_posts_with_the_task_token(
        self, client: GatepassClient, broker: FakeBroker
    ) -> None:
        """close() posts to the task's close URL with DPoP auth and ath."""
        task = open_task(client)
        task.close()
        last = broker.requests[-1]
        assert str(last.url) == f"{BROKER}/v1/tasks/{TASK_ID}/close"
        assert task.closed

    def test_close_is_idempotent(
        self, client: GatepassClient, broker: FakeBroker
    ) -> None:
        """A second close sends nothing."""
        task = open_task(client)
        task.close()
        count = len(broker.requests)
        task.close()
        assert len(broker.requests) == count

    def test_already_closed_is_fine(
        self, client: GatepassClient, broker: FakeBroker
    ) -> None:
        """A 409 from the broker means it is closed already."""
        broker.close_status = 409
        task = open_task(client)
        task.close()
        assert task.closed

    def test_expired_task_is_closed_locally(
        self, client: GatepassClient, broker: FakeBroker, clock: FrozenClock
    ) -> None:
        """A task past its expiry needs no request to close."""
        task = open_task(client)
        clock.advance(900)
        count = len(broker.requests)
        task.close()
        assert task.closed
        assert len(broker.requests) == count

    def test_closed_task_gives_no_tokens(self, client: GatepassClient) -> None:
        """After close, access_token raises invalid_grant without a request."""
        task = open_task(client)
        task.close()
        with pytest.raises(InvalidGrantError, match="closed"):
            task.access_token(TARGET, "read")

    def test_expired_task_gives_no_tokens(
        self, client: GatepassClient, clock: FrozenClock
    ) -> None:
        """After expiry, access_token raises invalid_grant."""
        task = open_task(client)
        clock.advance(900)
        with pytest.raises(InvalidGrantError, match="expired"):
            task.access_token(TARGET, "read")

    def test_context_manager_closes_on_exception(
        self, client: GatepassClient, broker: FakeBroker
    ) -> None:
        """The block's exception propagates and the task is closed."""
        with pytest.raises(KeyError), open_task(client) as task:
            raise KeyError("boom")
        assert task.closed
        assert broker.requests[-1].url.path.endswith("/close")

    def test_close_failure_never_masks_the_original(
        self,
        client: GatepassClient,
        broker: FakeBroker,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """A failed close on exit is logged and the block's exception wins."""
        task = open_task(client)
        broker.errors = [(503, {"error": "store_unavailable"})]
        with (
            caplog.at_level(logging.WARNING, "gatepass.sdk"),
            pytest.raises(KeyError),
            task,
        ):
            raise KeyError("boom")
        assert "store_unavailable" in caplog.text
        assert "task-token" not in caplog.text

    def test_close_failure_without_exception_is_raised(
        self, client: GatepassClient, broker: FakeBroker
    ) -> None:
        """A failed close after a clean block is raised."""
        task = open_task(client)
        broker.errors = [(503, {"error": "store_unavailable"})]
        with pytest.raises(GatepassError, match="store_unavailable"), task:
            pass
        assert not task.closed
