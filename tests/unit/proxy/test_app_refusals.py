"""The proxy app's own refusals, in process: reason codes, statuses, audit records."""

from __future__ import annotations

import json
from typing import Any

import anyio
import httpx
import pytest
from tests.unit.verify.grammar import parse_challenge

from gatepass.api.errors import error_response
from gatepass.errors import TokenError, TokenSignatureError
from gatepass.proxy.app import ProxyApp, create_proxy_app
from gatepass.proxy.audit import AuditShipper, ProxyAuditEvent
from gatepass.proxy.reasons import RefusalReason
from gatepass.proxy.settings import parse_proxy_settings
from gatepass.tokens import DPOP_ALGORITHMS
from gatepass.verify import GatepassMiddleware, ResourceVerifier

SECRET_ENV = "GATEPASS_TEST_APP_REFUSALS_SECRET"


class _NoKeys:
    def key_for(self, kid: str) -> tuple[object, str]:
        del kid
        raise TokenSignatureError("unknown key")


class _RecordingShipper(AuditShipper):
    """An audit shipper that keeps what it is given instead of posting it."""

    def __init__(self) -> None:
        super().__init__("https://broker.test", lambda: "unused")
        self.events: list[ProxyAuditEvent] = []

    def submit(self, event: ProxyAuditEvent) -> None:
        self.events.append(event)


def _never_called(request: httpx.Request) -> httpx.Response:
    pytest.fail(f"the upstream was called: {request.method}")


async def _never_called_app(scope: Any, receive: Any, send: Any) -> None:
    del receive, send
    pytest.fail(f"the protected app was called: {scope['path']}")


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch) -> ProxyApp:
    """A proxy app whose upstream must never be reached."""
    monkeypatch.setenv(SECRET_ENV, "app-refusals-secret-value")
    settings = parse_proxy_settings(
        {
            "proxy": {
                "public_url": "https://proxy.test",
                "broker": "https://broker.test",
                "revocation": "poll",
            },
            "routes": [
                {
                    "name": "tickets",
                    "prefix": "/tickets/",
                    "upstream": "https://api.test",
                    "auth": {"method": "bearer", "secret_env": SECRET_ENV},
                    "rules": {"read": ["GET /v1/**"], "write": ["POST /v1/items"]},
                }
            ],
        },
        source="test",
    )
    return create_proxy_app(
        settings,
        http=httpx.AsyncClient(transport=httpx.MockTransport(_never_called)),
        key_source=_NoKeys(),
        shipper=_RecordingShipper(),
    )


def call(app: Any, scope: dict[str, Any]) -> list[dict[str, Any]]:
    """Run one scope through the app and return the messages it sent."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(dict(message))

    anyio.run(app, scope, receive, send)
    return sent


def http_scope(
    method: str = "GET", path: bytes = b"/tickets/v1/x", **extra: Any
) -> dict[str, Any]:
    """An HTTP scope as uvicorn builds it."""
    return {
        "type": "http",
        "http_version": "1.1",
        "method": method,
        "path": path.decode(),
        "raw_path": path,
        "query_string": b"",
        "headers": [(b"host", b"proxy.test")],
        **extra,
    }


def last_event(app: ProxyApp) -> ProxyAuditEvent:
    """The audit event of the last request."""
    assert isinstance(app.shipper, _RecordingShipper)
    return app.shipper.events[-1]


class TestRefusals:
    """Each refusal has its status, its reason code and its audit record."""

    @pytest.mark.parametrize("version", ["0.9", "2", "2.0"])
    def test_issue7_6_http_version_other_than_1x_is_400(
        self, app: ProxyApp, version: str
    ) -> None:
        """A request that is not HTTP/1.0 or 1.1 is refused by the app too."""
        sent = call(app, http_scope(http_version=version))
        assert sent[0]["status"] == 400
        assert last_event(app).error == "http_version"

    @pytest.mark.parametrize("method", ["TRACE", "CONNECT", "PROPFIND", "get"])
    def test_issue7_4_unforwardable_method_is_405_with_allow(
        self, app: ProxyApp, method: str
    ) -> None:
        """TRACE, CONNECT and methods no rule can name are 405 before any check."""
        sent = call(app, http_scope(method))
        assert sent[0]["status"] == 405
        assert (b"allow", b"GET, POST") in sent[0]["headers"]
        event = last_event(app)
        assert (event.error, event.outcome) == ("method_not_allowed", "deny")

    def test_issue7_4_many_small_headers_are_431(self, app: ProxyApp) -> None:
        """A header section of 200 small fields is a 431."""
        headers = [(b"host", b"proxy.test")] + [(b"x-h", b"v")] * 200
        sent = call(app, http_scope(headers=headers))
        assert sent[0]["status"] == 431
        assert last_event(app).error == "headers_too_large"

    def test_upgrade_request_is_refused(self, app: ProxyApp) -> None:
        """A plain HTTP request asking to switch protocols is refused."""
        headers = [(b"host", b"proxy.test"), (b"upgrade", b"h2c")]
        sent = call(app, http_scope(headers=headers))
        assert sent[0]["status"] == 400
        assert last_event(app).error == "upgrade_refused"

    def test_issue7_7_missing_token_has_a_reason(self, app: ProxyApp) -> None:
        """A 401 for a missing token is audited as token_missing."""
        sent = call(app, http_scope())
        assert sent[0]["status"] == 401
        assert last_event(app).error == "token_missing"

    def test_issue7_7_websocket_is_closed_and_audited(self, app: ProxyApp) -> None:
        """A WebSocket scope is closed before accept and audited."""
        sent = call(
            app,
            {"type": "websocket", "path": "/tickets/ws", "raw_path": b"/tickets/ws"},
        )
        assert sent == [{"type": "websocket.close", "code": 1008}]
        event = last_event(app)
        assert (event.error, event.status) == ("upgrade_refused", 403)

    def test_issue7_7_server_layer_refusal_is_audited_and_counted(
        self, app: ProxyApp
    ) -> None:
        """A refusal the server layer reports is audited and counted."""
        app.record_server_refusal(RefusalReason.INVALID_METHOD, method="-", raw_path="")
        event = last_event(app)
        assert event.to_json() == {
            "route": "-",
            "method": "-",
            "status": 400,
            "bytes_in": 0,
            "bytes_out": 0,
            "latency_ms": event.latency_ms,
            "outcome": "deny",
            "error": "invalid_method",
        }
        sample = app.metrics.registry.get_sample_value(
            "gatepass_proxy_requests_total", {"route": "-", "outcome": "invalid_method"}
        )
        assert sample == 1


def token_scope(*headers: tuple[bytes, bytes]) -> dict[str, Any]:
    """An HTTP scope that presents the given credential headers."""
    return http_scope(headers=[(b"host", b"proxy.test"), *headers])


def answer_headers(sent: list[dict[str, Any]]) -> dict[bytes, bytes]:
    """The headers of the answer the app sent."""
    return dict(sent[0]["headers"])


def challenge_params(value: bytes | str) -> dict[str, str]:
    """Parse a DPoP challenge back, strictly."""
    text = value.decode("ascii") if isinstance(value, bytes) else value
    scheme, params = parse_challenge(text)
    assert scheme == "DPoP"
    return params


class TestAccessRefusals:
    """Steps 6 and 7: the credential headers, read by the one shared reader."""

    def test_issue8_missing_token_is_a_challenge_without_error(
        self, app: ProxyApp
    ) -> None:
        """RFC 6750 §3.1: no token, a challenge naming no error code."""
        sent = call(app, http_scope())
        assert set(challenge_params(answer_headers(sent)[b"www-authenticate"])) == {
            "algs"
        }

    def test_issue8_two_authorization_headers_are_400_header_rejected(
        self, app: ProxyApp
    ) -> None:
        """RFC 6750 §3.1: a repeated Authorization header is invalid_request."""
        credential = (b"authorization", b"DPoP abc")
        sent = call(app, token_scope(credential, credential))
        body = json.loads(sent[1]["body"])
        assert (sent[0]["status"], body["error"]) == (400, "invalid_request")
        assert last_event(app).error == "header_rejected"
        params = challenge_params(answer_headers(sent)[b"www-authenticate"])
        assert params["error"] == "invalid_request"

    def test_issue8_two_dpop_headers_are_401_proof_invalid(self, app: ProxyApp) -> None:
        """RFC 9449 §4.3 item 1: a repeated DPoP header is an invalid proof."""
        sent = call(
            app,
            token_scope(
                (b"authorization", b"DPoP abc"), (b"dpop", b"p1"), (b"dpop", b"p2")
            ),
        )
        body = json.loads(sent[1]["body"])
        assert (sent[0]["status"], body["error"]) == (401, "invalid_dpop_proof")
        assert body["error_description"] == "more than one dpop header"
        assert last_event(app).error == "proof_invalid"

    def test_issue8_bearer_token_is_401_token_invalid(self, app: ProxyApp) -> None:
        """RFC 9449 §7.1: a DPoP-bound token sent as Bearer is refused."""
        sent = call(app, token_scope((b"authorization", b"Bearer abc")))
        params = challenge_params(answer_headers(sent)[b"www-authenticate"])
        assert (sent[0]["status"], params["error"]) == (401, "invalid_token")
        assert "bearer" in params["error_description"]
        assert last_event(app).error == "token_invalid"

    def test_issue8_challenge_description_is_the_body_description(
        self, app: ProxyApp
    ) -> None:
        """The challenge and the JSON body describe the refusal alike."""
        sent = call(app, token_scope((b"authorization", b"DPoP abc")))
        body = json.loads(sent[1]["body"])
        params = challenge_params(answer_headers(sent)[b"www-authenticate"])
        assert params["error"] == body["error"]
        assert params["error_description"] == body["error_description"]

    def test_issue8_broker_verifier_and_proxy_name_the_same_algs(
        self, app: ProxyApp
    ) -> None:
        """The broker's, the verifier's and the proxy's challenges list one algs."""
        proxy = call(app, token_scope((b"authorization", b"DPoP abc")))
        verifier = ResourceVerifier(
            issuer="https://broker.test",
            audience="https://api.test/",
            key_source=_NoKeys(),
        )
        middleware = call(
            GatepassMiddleware(_never_called_app, verifier),
            token_scope((b"authorization", b"DPoP abc")),
        )
        broker = error_response(TokenError("token is no longer active"))
        challenges: list[bytes | str] = [
            answer_headers(proxy)[b"www-authenticate"],
            answer_headers(middleware)[b"www-authenticate"],
            broker.headers["www-authenticate"],
        ]
        algs = {challenge_params(value)["algs"] for value in challenges}
        assert len(algs) == 1
        assert set(algs.pop().split(" ")) == DPOP_ALGORITHMS
