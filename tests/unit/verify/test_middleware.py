"""Tests for GatepassMiddleware, driven through an in-process ASGI transport."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import anyio
import httpx
import pytest

from gatepass.clock import FrozenClock
from gatepass.errors import InsufficientScopeError, TokenError
from gatepass.tokens import (
    DPOP_ALGORITHMS,
    DPoPVerifier,
    KeyRing,
    MemoryReplayCache,
    NonceService,
)
from gatepass.verify import (
    GatepassMiddleware,
    ResourceVerifier,
    RevocationFeed,
    require_scope,
    verified_access,
)
from gatepass.verify.middleware import Receive, Scope, Send

from .conftest import (
    AUDIENCE,
    ISSUER,
    URL,
    FakeBroker,
    Presented,
    PresentFactory,
    TokenFactory,
)
from .grammar import parse_challenge


async def echo_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Answer with the verified agent id, or "public" when there is none."""
    if scope["type"] == "lifespan":
        return
    found = scope.get("state", {}).get("gatepass")
    agent = verified_access(scope).agent_id if found is not None else "public"
    body = json.dumps({"agent": agent, "path": scope["path"]}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


def scope_rule(method: str, path: str) -> str | None:
    """Reads need read, writes need write, /health needs any token."""
    if path == "/health":
        return None
    return "read" if method == "GET" else "write"


def call(
    middleware: GatepassMiddleware,
    method: str,
    url: str,
    headers: Iterable[tuple[str, str]] = (),
) -> httpx.Response:
    """Send one request through the middleware in-process."""

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=middleware)
        async with httpx.AsyncClient(transport=transport) as client:
            return await client.request(method, url, headers=list(headers))

    return anyio.run(go)


def call_presenting(
    middleware: GatepassMiddleware,
    presented: Presented,
    *,
    method: str = "GET",
    url: str = URL,
) -> httpx.Response:
    """Send one request that presents a token and its proof."""
    headers = [("Authorization", presented.authorization), ("DPoP", presented.dpop)]
    return call(middleware, method, url, headers)


@pytest.fixture
def middleware(verifier: ResourceVerifier) -> GatepassMiddleware:
    """The middleware around the echo app, with / public."""
    return GatepassMiddleware(
        echo_app, verifier, required_scope=scope_rule, public_paths=("/",)
    )


@pytest.fixture
def nonces(clock: FrozenClock) -> NonceService:
    """The resource server's nonce service."""
    return NonceService(b"n" * 32, clock=clock)


@pytest.fixture
def nonce_middleware(
    ring: KeyRing, clock: FrozenClock, nonces: NonceService
) -> GatepassMiddleware:
    """The middleware around the echo app, demanding a nonce in every proof."""
    dpop = DPoPVerifier(
        clock=clock, replay=MemoryReplayCache(clock), nonces=nonces, require_nonce=True
    )
    verifier = ResourceVerifier(
        issuer=ISSUER,
        audience=AUDIENCE,
        key_source=ring,
        clock=clock,
        dpop_verifier=dpop,
    )
    return GatepassMiddleware(echo_app, verifier)


def challenge_of(response: httpx.Response) -> str:
    """Return the WWW-Authenticate header."""
    return response.headers["www-authenticate"]


def params_of(response: httpx.Response) -> dict[str, str]:
    """Parse the DPoP challenge of a response back, strictly."""
    scheme, params = parse_challenge(challenge_of(response))
    assert scheme == "DPoP"
    return params


class TestGatepassMiddleware:
    """Admission of requests."""

    def test_valid_request_reaches_the_app_with_state(
        self,
        middleware: GatepassMiddleware,
        make_token: TokenFactory,
        present: PresentFactory,
    ) -> None:
        """A valid request passes and the app sees VerifiedAccess in its state."""
        token = make_token()
        headers = present(token)
        response = call(
            middleware,
            "GET",
            URL + "?page=2",
            [("Authorization", headers.authorization), ("DPoP", headers.dpop)],
        )
        assert response.status_code == 200
        assert response.json() == {"agent": "agt_demo", "path": "/tickets"}

    def test_public_path_needs_no_token(self, middleware: GatepassMiddleware) -> None:
        """A public path is served without credentials."""
        response = call(middleware, "GET", AUDIENCE)
        assert response.status_code == 200
        assert response.json()["agent"] == "public"

    def test_missing_token_is_a_bare_challenge(
        self, middleware: GatepassMiddleware
    ) -> None:
        """RFC 6750 §3.1: no credentials, a challenge without an error code."""
        response = call(middleware, "GET", URL)
        assert response.status_code == 401
        assert response.json()["error"] == "invalid_token"
        assert challenge_of(response).startswith("DPoP ")
        assert "error=" not in challenge_of(response)
        assert response.headers["cache-control"] == "no-store"

    def test_invalid_token_is_a_401_challenge(
        self, middleware: GatepassMiddleware, make_token: TokenFactory, present: Any
    ) -> None:
        """A token for another audience is answered 401 invalid_token."""
        token = make_token(aud="https://other.example/")
        headers = present(token)
        response = call_presenting(middleware, headers)
        assert response.status_code == 401
        assert response.json() == {
            "error": "invalid_token",
            "error_description": "token audience does not match",
        }
        assert 'error="invalid_token"' in challenge_of(response)

    def test_bad_proof_is_a_401(
        self,
        middleware: GatepassMiddleware,
        make_token: TokenFactory,
        present: PresentFactory,
    ) -> None:
        """RFC 9449 §7.1: a bad proof at a resource server is a 401."""
        token = make_token()
        headers = present(token, method="POST")
        response = call_presenting(middleware, headers)
        assert response.status_code == 401
        assert 'error="invalid_dpop_proof"' in challenge_of(response)

    def test_two_dpop_headers_are_refused(
        self,
        middleware: GatepassMiddleware,
        make_token: TokenFactory,
        present: PresentFactory,
    ) -> None:
        """RFC 9449 §4.3: exactly one DPoP header."""
        token = make_token()
        headers = present(token)
        response = call(
            middleware,
            "GET",
            URL,
            [
                ("Authorization", headers.authorization),
                ("DPoP", headers.dpop),
                ("DPoP", present(token).dpop),
            ],
        )
        assert response.status_code == 401
        assert response.json()["error_description"] == "more than one dpop header"

    def test_two_authorization_headers_are_refused(
        self,
        middleware: GatepassMiddleware,
        make_token: TokenFactory,
        present: PresentFactory,
    ) -> None:
        """An ambiguous request is a 400."""
        token = make_token()
        headers = present(token)
        response = call(
            middleware,
            "GET",
            URL,
            [
                ("Authorization", headers.authorization),
                ("Authorization", headers.authorization),
                ("DPoP", headers.dpop),
            ],
        )
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_request"

    def test_missing_scope_is_a_403(
        self,
        middleware: GatepassMiddleware,
        make_token: TokenFactory,
        present: PresentFactory,
    ) -> None:
        """A read token cannot POST: 403 insufficient_scope naming the scope."""
        token = make_token(scope="read")
        headers = present(token, method="POST")
        response = call_presenting(middleware, headers, method="POST")
        assert response.status_code == 403
        assert response.json()["error"] == "insufficient_scope"
        assert 'scope="write"' in challenge_of(response)
        params = params_of(response)
        assert params["error_description"] == response.json()["error_description"]

    def test_rule_returning_none_admits_any_valid_token(
        self,
        middleware: GatepassMiddleware,
        make_token: TokenFactory,
        present: PresentFactory,
    ) -> None:
        """A path without a required scope admits any valid token."""
        token = make_token(scope="")
        url = AUDIENCE + "health"
        headers = present(token, url=url)
        response = call_presenting(middleware, headers, url=url)
        assert response.status_code == 200

    def test_host_header_does_not_change_htu(
        self,
        middleware: GatepassMiddleware,
        make_token: TokenFactory,
        present: PresentFactory,
    ) -> None:
        """A proof for an attacker's host fails even with a matching Host header."""
        token = make_token()
        evil = "https://evil.example/tickets"
        headers = present(token, url=evil)
        response = call(
            middleware,
            "GET",
            evil,
            [
                ("Authorization", headers.authorization),
                ("DPoP", headers.dpop),
                ("X-Forwarded-Host", "evil.example"),
            ],
        )
        assert response.status_code == 401
        assert "htu" in response.json()["error_description"]

    def test_public_url_override(
        self,
        verifier: ResourceVerifier,
        make_token: TokenFactory,
        present: PresentFactory,
    ) -> None:
        """A middleware public_url behind a prefix-stripping proxy is honoured."""
        middleware = GatepassMiddleware(
            echo_app, verifier, public_url="https://api.example/prefix/"
        )
        token = make_token()
        headers = present(token, url="https://api.example/prefix/tickets")
        response = call_presenting(middleware, headers)
        assert response.status_code == 200

    def test_revoked_token_is_a_401(
        self,
        checked_verifier: ResourceVerifier,
        make_token: TokenFactory,
        present: PresentFactory,
        broker: FakeBroker,
    ) -> None:
        """A revoked token is answered 401 invalid_token."""
        middleware = GatepassMiddleware(echo_app, checked_verifier)
        token = make_token()
        broker.revoked.add(token)
        headers = present(token)
        response = call_presenting(middleware, headers)
        assert response.status_code == 401
        assert response.json()["error_description"] == "token is no longer active"

    def test_lifespan_passes_through(self, middleware: GatepassMiddleware) -> None:
        """Non-HTTP scopes such as lifespan reach the app untouched."""
        sent: list[Any] = []

        async def receive() -> dict[str, Any]:
            return {"type": "lifespan.startup"}

        async def send(message: Any) -> None:
            sent.append(message)

        anyio.run(middleware, {"type": "lifespan", "path": ""}, receive, send)
        assert sent == []

    def test_websocket_is_refused(self, middleware: GatepassMiddleware) -> None:
        """WebSocket upgrades are closed with policy violation."""
        sent: list[Any] = []

        async def receive() -> dict[str, Any]:
            return {"type": "websocket.connect"}

        async def send(message: Any) -> None:
            sent.append(message)

        anyio.run(middleware, {"type": "websocket", "path": "/ws"}, receive, send)
        assert sent == [{"type": "websocket.close", "code": 1008}]

    def test_verified_access_requires_the_middleware(self) -> None:
        """Reading the state of an unverified request raises."""
        with pytest.raises(TokenError):
            verified_access({"type": "http"})


class TestChallenges:
    """The challenges come from the one shared builder."""

    @pytest.mark.parametrize("value", ["", "   "])
    def test_issue8_empty_authorization_is_a_challenge_without_error(
        self, middleware: GatepassMiddleware, value: str
    ) -> None:
        """RFC 6750 §3.1: an empty Authorization header presents no credentials."""
        response = call(middleware, "GET", URL, [("Authorization", value)])
        assert response.status_code == 401
        params = params_of(response)
        # No error code; what the request needs and where the metadata is.
        assert set(params) == {"algs", "scope", "resource_metadata"}
        assert params["scope"] == "read"
        assert set(params["algs"].split(" ")) == DPOP_ALGORITHMS

    def test_issue8_nonce_demand_is_a_401_with_the_nonce(
        self,
        nonce_middleware: GatepassMiddleware,
        nonces: NonceService,
        make_token: TokenFactory,
        present: PresentFactory,
    ) -> None:
        """RFC 9449 §9: a resource server that wants a nonce sends one back."""
        headers = present(make_token())
        response = call_presenting(nonce_middleware, headers)
        assert response.status_code == 401
        assert params_of(response)["error"] == "use_dpop_nonce"
        assert nonces.is_valid(response.headers["dpop-nonce"])


METADATA_URL = "https://api.example/.well-known/oauth-protected-resource"


class TestProtectedResourceMetadata:
    """RFC 9728: the middleware publishes the resource's metadata."""

    def test_metadata_is_served_without_a_token(
        self, middleware: GatepassMiddleware
    ) -> None:
        """GET on the well-known path answers the document, publicly."""
        response = call(middleware, "GET", METADATA_URL)
        assert response.status_code == 200
        document = response.json()
        assert document["resource"] == AUDIENCE
        assert document["authorization_servers"] == [ISSUER]
        assert document["dpop_bound_access_tokens_required"] is True
        assert response.headers["access-control-allow-origin"] == "*"

    def test_head_has_no_body_and_post_is_not_allowed(
        self, middleware: GatepassMiddleware
    ) -> None:
        """HEAD answers the headers only; other methods get 405 with Allow."""
        head = call(middleware, "HEAD", METADATA_URL)
        assert head.status_code == 200
        assert head.content == b""
        post = call(middleware, "POST", METADATA_URL)
        assert post.status_code == 405
        assert post.headers["allow"] == "GET, HEAD"

    def test_every_challenge_names_the_metadata(
        self,
        middleware: GatepassMiddleware,
        make_token: TokenFactory,
        present: PresentFactory,
    ) -> None:
        """401s and 403s carry resource_metadata (RFC 9728 §5.1)."""
        missing = call(middleware, "GET", URL)
        headers = present(make_token(scope="read"), method="POST")
        short = call_presenting(middleware, headers, method="POST")
        assert short.status_code == 403
        for response in (missing, short):
            assert params_of(response)["resource_metadata"] == METADATA_URL
        assert params_of(short)["scope"] == "write"

    def test_metadata_can_be_left_to_the_application(
        self, verifier: ResourceVerifier
    ) -> None:
        """With serve_metadata=False the well-known path needs a token too."""
        quiet = GatepassMiddleware(echo_app, verifier, serve_metadata=False)
        assert call(quiet, "GET", METADATA_URL).status_code == 401


async def scope_checking_app(scope: Scope, receive: Receive, send: Send) -> None:
    """A handler that checks its own scope, as a FastAPI route would."""
    require_scope(verified_access(scope), "admin")
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


async def late_refusing_app(scope: Scope, receive: Receive, send: Send) -> None:
    """A handler that starts its answer and only then raises."""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    require_scope(verified_access(scope), "admin")


class TestHandlerScopes:
    """A handler that raises insufficient_scope gets the step-up challenge."""

    def test_handler_refusal_becomes_a_403_challenge(
        self,
        verifier: ResourceVerifier,
        make_token: TokenFactory,
        present: PresentFactory,
    ) -> None:
        """require_scope in a handler answers 403 with scope="admin"."""
        app = GatepassMiddleware(scope_checking_app, verifier)
        response = call_presenting(app, present(make_token(scope="read")))
        assert response.status_code == 403
        assert params_of(response)["error"] == "insufficient_scope"
        assert params_of(response)["scope"] == "admin"

    def test_refusal_after_the_answer_started_propagates(
        self,
        verifier: ResourceVerifier,
        make_token: TokenFactory,
        present: PresentFactory,
    ) -> None:
        """Once the handler has begun answering, its error is not swallowed."""
        app = GatepassMiddleware(late_refusing_app, verifier)
        with pytest.raises(InsufficientScopeError):
            call_presenting(app, present(make_token(scope="read")))


class RecordingVerifier(ResourceVerifier):
    """A verifier that records when the middleware starts and stops it."""

    events: list[str]

    async def start(self) -> None:
        """Record the start."""
        self.events.append("start")

    async def aclose(self) -> None:
        """Record the stop."""
        self.events.append("stop")


class TestLifespan:
    """The revocation stream starts and stops with the application."""

    def test_lifespan_starts_and_stops_the_verifier(
        self, ring: KeyRing, clock: FrozenClock
    ) -> None:
        """lifespan.startup starts the verifier once; shutdown stops it."""
        verifier = RecordingVerifier(
            issuer=ISSUER, audience=AUDIENCE, key_source=ring, clock=clock
        )
        verifier.events = []
        middleware = GatepassMiddleware(echo_app, verifier)
        messages = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]

        async def app_reading_lifespan(
            scope: Scope, receive: Receive, send: Send
        ) -> None:
            if scope["type"] == "lifespan":
                await receive()
                await receive()

        middleware.app = app_reading_lifespan

        async def receive() -> dict[str, Any]:
            return messages.pop(0)

        async def send(message: Any) -> None:
            return None

        anyio.run(middleware, {"type": "lifespan"}, receive, send)
        # A request after start does not start it again.
        call(middleware, "GET", URL)
        assert verifier.events == ["start", "stop"]

    def test_first_request_starts_the_verifier_without_lifespan(
        self, ring: KeyRing, clock: FrozenClock
    ) -> None:
        """A server that runs no lifespan still gets the stream followed."""
        verifier = RecordingVerifier(
            issuer=ISSUER, audience=AUDIENCE, key_source=ring, clock=clock
        )
        verifier.events = []
        middleware = GatepassMiddleware(echo_app, verifier)
        call(middleware, "GET", URL)
        call(middleware, "GET", URL)
        assert verifier.events == ["start"]


class _UnconnectedFeed(RevocationFeed):
    """A feed marked healthy by hand that never dials the broker."""

    async def start(self) -> None:
        """Stay offline: a real follower would mark the feed down at once here."""


class TestStreamsAreCut:
    """Revocation cuts live sessions: a streaming answer ends with its token."""

    @staticmethod
    def _streaming_app(before_waiting: Any) -> Any:
        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"text/event-stream; charset=utf-8")],
                }
            )
            await send(
                {
                    "type": "http.response.body",
                    "body": b"data: 1\n\n",
                    "more_body": True,
                }
            )
            before_waiting(scope)
            await anyio.Event().wait()  # a stream that would never end by itself

        return app

    def test_revoked_token_ends_the_stream(
        self,
        ring: KeyRing,
        clock: FrozenClock,
        make_token: TokenFactory,
        present: PresentFactory,
    ) -> None:
        """The broker revokes the token mid-stream: the answer ends there."""
        # The middleware starts the feed on the first request; a real follower
        # would fail to reach this made-up broker and mark the feed down.
        feed = _UnconnectedFeed(ISSUER, "api-token", clock=clock)
        feed._set_healthy(healthy=True)
        verifier = ResourceVerifier(
            issuer=ISSUER,
            audience=AUDIENCE,
            key_source=ring,
            clock=clock,
            revocations=feed,
        )
        app = self._streaming_app(lambda scope: feed.revoke(verified_access(scope).jti))
        middleware = GatepassMiddleware(app, verifier)
        response = call_presenting(middleware, present(make_token()))
        assert response.status_code == 200
        assert response.content == b"data: 1\n\n"

    def test_expired_token_ends_the_stream(
        self,
        ring: KeyRing,
        clock: FrozenClock,
        make_token: TokenFactory,
        present: PresentFactory,
    ) -> None:
        """Without a revocation feed, a stream still ends when its token expires."""
        verifier = ResourceVerifier(
            issuer=ISSUER, audience=AUDIENCE, key_source=ring, clock=clock
        )
        middleware = GatepassMiddleware(
            self._streaming_app(lambda _scope: None), verifier
        )
        # exp is now: still accepted (30 s of leeway), and due at once.
        token = make_token(exp=int(clock.now().timestamp()))
        response = call_presenting(middleware, present(token))
        assert response.content == b"data: 1\n\n"

    def test_plain_answers_are_not_watched(
        self,
        middleware: GatepassMiddleware,
        make_token: TokenFactory,
        present: PresentFactory,
    ) -> None:
        """A JSON answer is passed as it is, with no watcher left behind."""
        response = call_presenting(middleware, present(make_token()))
        assert response.status_code == 200
        assert response.json()["agent"] == "agt_demo"
