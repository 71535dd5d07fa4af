"""
The credential-injecting proxy between a real agent, broker and upstream.

Four servers run on 127.0.0.1: a quickstart broker, an upstream that requires an
API key and records what it received, and two proxies sharing one public URL (as
replicas behind one origin would): one follows the broker's revocation stream,
the other only polls introspection. The agent uses the SDK; malformed HTTP is sent
as raw bytes over a socket. A canary secret is checked against every response,
log record and metric the suite produces.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
import jwt
import pytest
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gatepass.api import create_app
from gatepass.broker import build_runtime
from gatepass.config import Settings
from gatepass.errors import ConfigurationError
from gatepass.proxy.app import ProxyApp, create_proxy_app
from gatepass.proxy.settings import ProxySettings, parse_proxy_settings
from gatepass.sdk import AgentIdentity, GatepassClient
from gatepass.sdk.access import AccessToken
from gatepass.sdk.task import Task

from .conftest import (
    LiveBroker,
    RunningServer,
    free_port,
    quickstart_settings,
    start_server,
)
from .proxy_attack import spellings

pytestmark = pytest.mark.slow

DEADLINE_SECONDS = 10.0
BILLING_ENV = "GATEPASS_TEST_PROXY_BILLING_SECRET"


# --------------------------------------------------------------------- upstream


@dataclass
class Upstream:
    """What the upstream received, shared with the test thread."""

    api_key: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def count(self) -> int:
        """Return how many requests reached the upstream."""
        with self.lock:
            return len(self.requests)

    def last(self) -> dict[str, Any]:
        """Return the last request received."""
        with self.lock:
            return self.requests[-1]


def upstream_app(upstream: Upstream, billing_secret: str) -> Starlette:
    """Build an upstream that requires its API key and echoes what it got."""

    async def handle(request: Request) -> Response:
        headers = [(k.decode(), v.decode()) for k, v in request.scope["headers"]]
        path = request.url.path
        record: dict[str, Any] = {
            "method": request.method,
            "path": path,
            "raw_path": request.scope["raw_path"].decode(),
            "query": request.scope["query_string"].decode(),
            "headers": headers,
            "body_length": 0,
        }
        # Counted on arrival, before the body: "reached the upstream" at all.
        with upstream.lock:
            upstream.requests.append(record)
        try:
            body = await request.body()
        except ClientDisconnect:
            return Response(status_code=400)
        record["body_length"] = len(body)
        names = {name for name, _ in headers}
        ok = request.headers.get("x-api-key") == upstream.api_key or (
            request.headers.get("authorization") == f"Bearer {billing_secret}"
        )
        if not ok:
            return JSONResponse({"error": "missing or wrong api key"}, status_code=401)
        if path.endswith("/leak-error"):
            return Response(f"bad request with key {upstream.api_key}", 500)
        if path.endswith("/leak-ok"):
            return Response(b"x" * 100_000 + upstream.api_key.encode(), 200)
        if path.endswith("/slow"):
            with anyio.move_on_after(2):
                await anyio.Event().wait()
        return JSONResponse(
            {
                "method": request.method,
                "path": path,
                "header_names": sorted(names),
                "body_length": len(body),
                "api_key_ok": True,
            },
            headers={"set-cookie": "session=upstream", "x-upstream": "1"},
        )

    methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
    return Starlette(routes=[Route("/{path:path}", handle, methods=methods)])


# ---------------------------------------------------------------------- stack


@dataclass
class Stack:
    """The broker, the upstream and both proxies."""

    broker: LiveBroker
    upstream: Upstream
    proxy_url: str
    poll_url: str
    proxy: ProxyApp
    poll_proxy: ProxyApp
    canary: str
    billing_secret: str
    state_dir: Path
    upstream_host: str

    def target(self, prefix: str) -> str:
        """Return the target URI (token audience) of a proxy route."""
        return f"{self.proxy_url}/{prefix}/"

    def url(self, path: str) -> str:
        """Return a public proxy URL."""
        return self.proxy_url + path

    def all_secrets(self) -> tuple[str, ...]:
        """Return every upstream secret the suite must never leak."""
        return (self.canary, self.billing_secret)


def _proxy_settings(
    *,
    public_url: str,
    port: int,
    broker: str,
    token_file: Path,
    secret_file: Path,
    upstream: str,
    revocation: str,
) -> ProxySettings:
    key_auth = {
        "method": "header",
        "name": "X-Api-Key",
        "secret_file": str(secret_file),
    }
    read_write = {
        "read": ["GET /v1/tickets", "GET /v1/tickets/**"],
        "write": ["POST /v1/tickets", "PUT /v1/tickets/*"],
    }
    raw = {
        "proxy": {
            "port": port,
            "public_url": public_url,
            "broker": broker,
            "api_token_file": str(token_file),
            "revocation": revocation,
            "poll_interval_seconds": 0.2,
        },
        "routes": [
            {
                "name": "tickets-saas",
                "prefix": "/tickets-saas/",
                "upstream": upstream + "/api",
                "allow_plain_http": True,
                "auth": key_auth,
                "rules": read_write,
                "allowed_headers": ["content-type", "accept", "x-request-id"],
                "max_body_bytes": 65_536,
                "timeout_seconds": 5,
            },
            {
                "name": "billing",
                "prefix": "/billing/",
                "upstream": upstream + "/billing-api",
                "allow_plain_http": True,
                "auth": {"method": "bearer", "secret_env": BILLING_ENV},
                "rules": {"read": ["GET /v1/invoices/**"]},
            },
            {
                "name": "slow",
                "prefix": "/slow/",
                "upstream": upstream,
                "allow_plain_http": True,
                "auth": key_auth,
                "rules": {"read": ["GET /**"]},
                "timeout_seconds": 0.3,
                "rate_per_lease": 0.01,
                "burst_per_lease": 3,
            },
            {
                "name": "gone",
                "prefix": "/gone/",
                "upstream": f"http://127.0.0.1:{free_port()}",
                "allow_plain_http": True,
                "auth": key_auth,
                "rules": {"read": ["GET /**"]},
            },
        ],
    }
    return parse_proxy_settings(raw, source="test")


def _broker_settings(state_dir: Path, broker_port: int, proxy_url: str) -> Settings:
    base = quickstart_settings(state_dir, port=broker_port, resource_port=free_port())
    raw = base.model_dump()
    for name in ("tickets-saas", "billing", "slow", "gone"):
        raw["targets"].append(
            {
                "name": name,
                "uri": f"{proxy_url}/{name}/",
                "kind": "http",
                "environment": "dev",
                "tenant": "acme",
                "risk": "low",
                "actions": ["read", "write"],
                "max_ttl_seconds": 600,
            }
        )
    return Settings.model_validate(raw)


def _wait_for(condition: Any, what: str, *, within: float = DEADLINE_SECONDS) -> float:
    """Poll ``condition`` until true, failing after ``within`` seconds."""
    started = time.monotonic()
    deadline = started + within
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {within}s")
        threading.Event().wait(0.005)
    return time.monotonic() - started


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Start the broker, the upstream and both proxies on free ports."""
    base = tmp_path_factory.mktemp("proxy")
    state_dir = base / "state"
    canary = "gp-canary-" + secrets.token_hex(16)
    billing_secret = "gp-billing-" + secrets.token_hex(16)
    secret_file = base / "tickets.key"
    secret_file.write_text(canary + "\n")
    secret_file.chmod(0o600)
    os.environ[BILLING_ENV] = billing_secret

    upstream = Upstream(api_key=canary)
    upstream_server = start_server(upstream_app(upstream, billing_secret), free_port())
    broker_port, proxy_port, poll_port = free_port(), free_port(), free_port()
    proxy_url = f"http://127.0.0.1:{proxy_port}"
    settings = _broker_settings(state_dir, broker_port, proxy_url)
    runtime = build_runtime(settings)
    servers: list[RunningServer] = [upstream_server]
    try:
        servers.append(
            start_server(create_app(runtime, background_jobs=False), broker_port)
        )
        broker = LiveBroker(
            url=f"http://127.0.0.1:{broker_port}", runtime=runtime, state_dir=state_dir
        )
        common: dict[str, Any] = {
            "public_url": proxy_url,
            "broker": broker.url,
            "token_file": state_dir / "proxy.token",
            "secret_file": secret_file,
            "upstream": upstream_server.url,
        }
        proxy = create_proxy_app(
            _proxy_settings(port=proxy_port, revocation="stream", **common)
        )
        poll_proxy = create_proxy_app(
            _proxy_settings(port=poll_port, revocation="poll", **common)
        )
        servers.append(start_server(proxy, proxy_port))
        servers.append(start_server(poll_proxy, poll_port))
        assert proxy.feed is not None
        feed = proxy.feed
        _wait_for(lambda: feed.healthy, "stream")
        yield Stack(
            broker=broker,
            upstream=upstream,
            proxy_url=proxy_url,
            poll_url=f"http://127.0.0.1:{poll_port}",
            proxy=proxy,
            poll_proxy=poll_proxy,
            canary=canary,
            billing_secret=billing_secret,
            state_dir=state_dir,
            upstream_host=upstream_server.url.removeprefix("http://"),
        )
    finally:
        for server in reversed(servers):
            server.stop()
        runtime.database.dispose()
        os.environ.pop(BILLING_ENV, None)


@pytest.fixture(autouse=True)
def _no_secret_in_logs(
    request: pytest.FixtureRequest,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[None]:
    """After each test, no log record or output line holds an upstream secret."""
    caplog.set_level(logging.DEBUG)
    yield
    if "stack" not in request.fixturenames:
        return
    stack: Stack = request.getfixturevalue("stack")
    captured = capsys.readouterr()
    texts = [captured.out, captured.err, caplog.text]
    texts += [str(record.__dict__) for record in caplog.records]
    for secret in stack.all_secrets():
        for spelling in spellings(secret.encode()):
            assert not any(spelling.decode() in text for text in texts)


@pytest.fixture
def agent(stack: Stack) -> Iterator[GatepassClient]:
    """An SDK client for the quickstart's demo agent."""
    identity = AgentIdentity.load(stack.state_dir / "demo-agent.json")
    with GatepassClient(identity) as client:
        yield client


@pytest.fixture
def task(agent: GatepassClient, stack: Stack) -> Iterator[Task]:
    """An open task on every proxy route."""
    opened = agent.open_task(
        intent="triage tickets through the proxy",
        purpose="support-triage",
        environment="dev",
        targets=[stack.target(name) for name in ("tickets-saas", "billing", "slow")],
    )
    with opened:
        yield opened


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    """A plain HTTP client for the agent's calls."""
    with httpx.Client(timeout=DEADLINE_SECONDS) as client:
        yield client


def assert_clean(stack: Stack, data: bytes | str | httpx.Response) -> None:
    """Assert that no upstream secret appears in a response or raw bytes."""
    if isinstance(data, httpx.Response):
        data = data.content + str(data.headers).encode()
    raw = data.encode() if isinstance(data, str) else data
    for secret in stack.all_secrets():
        assert not [form for form in spellings(secret.encode()) if form in raw]


def raw_request(port: int, data: bytes, *, read_timeout: float = 5.0) -> bytes:
    """Send raw bytes to 127.0.0.1:port and return everything read until close."""
    with socket.create_connection(("127.0.0.1", port), timeout=read_timeout) as sock:
        sock.sendall(data)
        chunks: list[bytes] = []
        try:
            while chunk := sock.recv(65_536):
                chunks.append(chunk)
                if _complete(b"".join(chunks)):
                    break
        except (TimeoutError, ConnectionResetError):
            pass
    return b"".join(chunks)


def _complete(data: bytes) -> bool:
    head, separator, body = data.partition(b"\r\n\r\n")
    if not separator:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value.strip())
    return False


def status_of(response: bytes) -> int | None:
    """Return the status code of a raw HTTP response, None when there was none."""
    if not response.startswith(b"HTTP/1.1 "):
        return None
    return int(response.split(b" ", 2)[1])


def proof_headers(token: AccessToken, method: str, url: str) -> dict[str, str]:
    """Sign a proof for exactly ``url`` (even one the SDK would refuse to build)."""
    value = token.value.reveal()
    proof = token._key.proof(method, url, access_token=value)
    return {"Authorization": f"DPoP {value}", "DPoP": proof}


def raw_get(stack: Stack, token: AccessToken, target: str, extra: bytes = b"") -> bytes:
    """Send a GET for a raw request target with a valid token and proof for it."""
    port = int(stack.proxy_url.rsplit(":", 1)[1])
    headers = proof_headers(token, "GET", stack.proxy_url + target)
    lines = [
        f"GET {target} HTTP/1.1".encode(),
        f"Host: 127.0.0.1:{port}".encode(),
        f"Authorization: {headers['Authorization']}".encode(),
        f"DPoP: {headers['DPoP']}".encode(),
        b"Connection: close",
    ]
    return b"\r\n".join(lines) + b"\r\n" + extra + b"\r\n"


def send_raw(stack: Stack, data: bytes) -> bytes:
    """Send raw bytes to the streaming proxy."""
    return raw_request(int(stack.proxy_url.rsplit(":", 1)[1]), data)


# ------------------------------------------------------------------------ tests


class TestReadThrough:
    """An agent reads through the proxy; the upstream sees only the route's key."""

    def test_read_injects_the_key_and_strips_the_agent_credentials(
        self, stack: Stack, task: Task, http: httpx.Client
    ) -> None:
        """The upstream gets the API key and never the agent's Authorization or DPoP."""
        token = task.access_token(stack.target("tickets-saas"), "read")
        url = stack.url("/tickets-saas/v1/tickets?status=open")
        before = stack.upstream.count
        response = http.get(url, headers=token.headers("GET", url))
        assert response.status_code == 200, response.text
        assert response.json()["api_key_ok"] is True
        assert stack.upstream.count == before + 1
        seen = stack.upstream.last()
        names = {name for name, _ in seen["headers"]}
        assert seen["path"] == "/api/v1/tickets"
        assert seen["query"] == "status=open"
        assert dict(seen["headers"])["x-api-key"] == stack.canary
        assert "authorization" not in names
        assert "dpop" not in names
        assert "set-cookie" not in response.headers
        assert response.headers["x-upstream"] == "1"
        assert_clean(stack, response)

    def test_write_streams_the_body(
        self, stack: Stack, task: Task, http: httpx.Client
    ) -> None:
        """A write token's POST reaches the upstream with its whole body."""
        token = task.access_token(stack.target("tickets-saas"), "write")
        url = stack.url("/tickets-saas/v1/tickets")
        body = json.dumps({"title": "printer on fire", "pad": "y" * 30_000})
        response = http.post(
            url,
            content=body,
            headers={**token.headers("POST", url), "content-type": "application/json"},
        )
        assert response.status_code == 200
        assert response.json()["body_length"] == len(body)
        assert stack.upstream.last()["body_length"] == len(body)

    def test_bearer_route_gets_its_own_secret_only(
        self, stack: Stack, task: Task, http: httpx.Client
    ) -> None:
        """A bearer route sends its own secret and never the other route's key."""
        token = task.access_token(stack.target("billing"), "read")
        url = stack.url("/billing/v1/invoices/7")
        response = http.get(url, headers=token.headers("GET", url))
        assert response.status_code == 200
        seen = dict(stack.upstream.last()["headers"])
        assert seen["authorization"] == f"Bearer {stack.billing_secret}"
        assert "x-api-key" not in seen
        assert_clean(stack, response)


class TestScope:
    """The token's scope and the route's rules decide, before the upstream is called."""

    def test_write_outside_scope_never_reaches_upstream(
        self, stack: Stack, task: Task, http: httpx.Client
    ) -> None:
        """A POST with a read-only token is a 403 and the upstream counts nothing."""
        token = task.access_token(stack.target("tickets-saas"), "read")
        url = stack.url("/tickets-saas/v1/tickets")
        before = stack.upstream.count
        response = http.post(url, json={"x": 1}, headers=token.headers("POST", url))
        assert response.status_code == 403
        assert response.json()["error"] == "insufficient_scope"
        assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
        assert stack.upstream.count == before

    def test_path_outside_every_rule_is_refused(
        self, stack: Stack, task: Task, http: httpx.Client
    ) -> None:
        """A GET under the prefix but outside the rules is a 403."""
        token = task.access_token(stack.target("tickets-saas"), "read write")
        url = stack.url("/tickets-saas/v1/admin/users")
        before = stack.upstream.count
        response = http.get(url, headers=token.headers("GET", url))
        assert response.status_code == 403
        assert stack.upstream.count == before

    def test_missing_token_gets_a_dpop_challenge(
        self, stack: Stack, http: httpx.Client
    ) -> None:
        """A request without a token is a 401 with a DPoP challenge."""
        response = http.get(stack.url("/tickets-saas/v1/tickets"))
        assert response.status_code == 401
        assert response.json()["error"] == "invalid_token"
        assert response.headers["www-authenticate"].startswith("DPoP ")

    def test_unknown_route_is_404(self, stack: Stack, http: httpx.Client) -> None:
        """A path under no route prefix is a 404 in the error shape."""
        response = http.get(stack.url("/nowhere/x"))
        assert response.status_code == 404
        assert set(response.json()) == {"error", "error_description"}


class TestRevocation:
    """Closing the task cuts the agent off at the proxy."""

    def test_close_task_is_pushed_by_the_stream(
        self, stack: Stack, agent: GatepassClient, http: httpx.Client
    ) -> None:
        """After close-task the stream pushes the revocation; the next call fails."""
        task = agent.open_task(
            intent="short task",
            purpose="support-triage",
            environment="dev",
            targets=[stack.target("tickets-saas")],
        )
        token = task.access_token(stack.target("tickets-saas"), "read")
        url = stack.url("/tickets-saas/v1/tickets")
        assert http.get(url, headers=token.headers("GET", url)).status_code == 200
        feed = stack.proxy.feed
        assert feed is not None
        jti = jwt.decode(token.value.reveal(), options={"verify_signature": False})[
            "jti"
        ]
        assert not feed.is_revoked(jti)
        task.close()
        # The push must arrive promptly: a deadline, not a timing assertion.
        _wait_for(lambda: feed.is_revoked(jti), "the stream's event", within=2.0)
        before = stack.upstream.count
        response = http.get(url, headers=token.headers("GET", url))
        assert response.status_code == 401
        assert response.json()["error"] == "invalid_token"
        assert stack.upstream.count == before

    def test_poll_fallback_refuses_after_close(
        self, stack: Stack, agent: GatepassClient, http: httpx.Client
    ) -> None:
        """Without the stream, introspection (cached briefly) refuses a closed task."""
        task = agent.open_task(
            intent="short task",
            purpose="support-triage",
            environment="dev",
            targets=[stack.target("tickets-saas")],
        )
        token = task.access_token(stack.target("tickets-saas"), "read")
        public = stack.url("/tickets-saas/v1/tickets")
        replica = stack.poll_url + "/tickets-saas/v1/tickets"
        assert stack.poll_proxy.feed is None
        first = http.get(replica, headers=token.headers("GET", public))
        assert first.status_code == 200
        task.close()

        def refused() -> bool:
            response = http.get(replica, headers=token.headers("GET", public))
            return response.status_code == 401

        assert _wait_for(refused, "revocation through introspection") < 2.0


class TestTokenAttacks:
    """Stolen, replayed or misdirected tokens and proofs are refused."""

    def test_token_for_another_audience(
        self, stack: Stack, task: Task, http: httpx.Client
    ) -> None:
        """A billing token with a valid proof for a tickets URL is a 401."""
        token = task.access_token(stack.target("billing"), "read")
        url = stack.url("/tickets-saas/v1/tickets")
        before = stack.upstream.count
        response = http.get(url, headers=proof_headers(token, "GET", url))
        assert response.status_code == 401
        assert response.json()["error"] == "invalid_token"
        assert stack.upstream.count == before

    def test_replayed_proof(self, stack: Stack, task: Task, http: httpx.Client) -> None:
        """The same proof sent twice is refused the second time."""
        token = task.access_token(stack.target("tickets-saas"), "read")
        url = stack.url("/tickets-saas/v1/tickets")
        headers = token.headers("GET", url)
        assert http.get(url, headers=headers).status_code == 200
        before = stack.upstream.count
        replay = http.get(url, headers=headers)
        assert replay.status_code == 401
        assert replay.json()["error"] == "invalid_dpop_proof"
        assert stack.upstream.count == before

    def test_proof_for_another_url(
        self, stack: Stack, task: Task, http: httpx.Client
    ) -> None:
        """A proof signed for one URL does not admit another."""
        token = task.access_token(stack.target("tickets-saas"), "read")
        signed_for = stack.url("/tickets-saas/v1/tickets/1")
        before = stack.upstream.count
        response = http.get(
            stack.url("/tickets-saas/v1/tickets/2"),
            headers=token.headers("GET", signed_for),
        )
        assert response.status_code == 401
        assert stack.upstream.count == before

    def test_proof_for_another_method(
        self, stack: Stack, task: Task, http: httpx.Client
    ) -> None:
        """A proof signed for GET does not admit a POST."""
        token = task.access_token(stack.target("tickets-saas"), "read write")
        url = stack.url("/tickets-saas/v1/tickets")
        before = stack.upstream.count
        response = http.post(url, json={}, headers=token.headers("GET", url))
        assert response.status_code == 401
        assert response.json()["error"] == "invalid_dpop_proof"
        assert stack.upstream.count == before

    def test_proof_for_a_spoofed_host(self, stack: Stack, task: Task) -> None:
        """A proof for the URL a spoofed Host names is refused: htu uses public_url."""
        token = task.access_token(stack.target("tickets-saas"), "read")
        headers = proof_headers(
            token, "GET", "http://evil.example/tickets-saas/v1/tickets"
        )
        before = stack.upstream.count
        request = (
            b"GET /tickets-saas/v1/tickets HTTP/1.1\r\nHost: evil.example\r\n"
            + f"Authorization: {headers['Authorization']}\r\n".encode()
            + f"DPoP: {headers['DPoP']}\r\nConnection: close\r\n\r\n".encode()
        )
        assert status_of(send_raw(stack, request)) == 401
        assert stack.upstream.count == before


PATH_TRICKS = [
    "/tickets-saas/v1/tickets/../admin",
    "/tickets-saas/v1/tickets/%2e%2e/admin",
    "/tickets-saas/v1/tickets/%2E%2E/%2e%2e/%2e%2e/billing/v1/invoices/1",
    "/tickets-saas/../billing/v1/invoices/1",
    "/tickets-saas//v1/tickets",
    "/tickets-saas/v1/tickets%2f..%2fadmin",
    "/tickets-saas/v1/tickets/..;/admin",
    "/tickets-saas/v1/tickets/%252e%252e/admin",
    "/tickets-saas/v1/tickets\\..\\admin",
]


class TestRequestAttacks:
    """Malformed, ambiguous or oversized requests never reach the upstream."""

    @pytest.mark.parametrize("target", PATH_TRICKS)
    def test_path_tricks(self, stack: Stack, task: Task, target: str) -> None:
        """A path that could escape its pattern or route is a 400."""
        token = task.access_token(stack.target("tickets-saas"), "read")
        before = stack.upstream.count
        response = send_raw(stack, raw_get(stack, token, target))
        assert status_of(response) == 400, response[:200]
        assert stack.upstream.count == before
        assert_clean(stack, response)

    @pytest.mark.parametrize(
        "header",
        [
            b"X-Request-Id: a\rX-Injected: b",
            b"X-Request-Id: a\nX-Injected: b",
            b"X-Request-Id: a\x00b",
            b"X-Request-Id: a\r\n X-Folded: b",
            b"Bad Name: x",
        ],
    )
    def test_crlf_and_malformed_headers(
        self, stack: Stack, task: Task, header: bytes
    ) -> None:
        """A bare CR, LF, NUL, folded line or bad name is refused (400-class)."""
        token = task.access_token(stack.target("tickets-saas"), "read")
        before = stack.upstream.count
        response = send_raw(
            stack, raw_get(stack, token, "/tickets-saas/v1/tickets", header + b"\r\n")
        )
        status = status_of(response)
        assert status is not None
        assert 400 <= status < 500
        assert stack.upstream.count == before

    def test_transfer_encoding_with_content_length(
        self, stack: Stack, task: Task
    ) -> None:
        """A request with both Transfer-Encoding and Content-Length is refused."""
        token = task.access_token(stack.target("tickets-saas"), "write")
        url = stack.url("/tickets-saas/v1/tickets")
        headers = proof_headers(token, "POST", url)
        smuggled = b"GET /tickets-saas/v1/tickets HTTP/1.1\r\nHost: x\r\n\r\n"
        body = b"0\r\n\r\n" + smuggled
        request = (
            b"POST /tickets-saas/v1/tickets HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            + f"Authorization: {headers['Authorization']}\r\n".encode()
            + f"DPoP: {headers['DPoP']}\r\n".encode()
            + b"Transfer-Encoding: chunked\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        before = stack.upstream.count
        response = send_raw(stack, request)
        status = status_of(response)
        assert status is not None
        assert 400 <= status < 500
        assert stack.upstream.count == before

    def test_duplicate_host_is_refused_by_the_proxy(
        self, stack: Stack, task: Task
    ) -> None:
        """Two Host headers (which the HTTP parser lets through) are a 400."""
        token = task.access_token(stack.target("tickets-saas"), "read")
        before = stack.upstream.count
        response = send_raw(
            stack,
            raw_get(
                stack, token, "/tickets-saas/v1/tickets", b"Host: evil.example\r\n"
            ),
        )
        assert status_of(response) == 400
        assert b"request headers rejected" in response
        assert stack.upstream.count == before

    @pytest.mark.parametrize(
        "headers",
        [
            [(b"transfer-encoding", b"chunked"), (b"content-length", b"5")],
            [(b"content-length", b"5"), (b"content-length", b"6")],
            [(b"x-request-id", b"a\r\nx-injected: b")],
            [(b"transfer-encoding", b"gzip, chunked")],
        ],
    )
    def test_framing_checked_even_behind_a_lenient_server(
        self, stack: Stack, headers: list[tuple[bytes, bytes]]
    ) -> None:
        """Headers a lenient HTTP server might pass are refused by the app itself."""
        app = create_proxy_app(stack.proxy.settings)
        sent: list[dict[str, Any]] = []
        scope = {
            "type": "http",
            "method": "POST",
            "path": "/tickets-saas/v1/tickets",
            "raw_path": b"/tickets-saas/v1/tickets",
            "query_string": b"",
            "headers": [(b"host", b"127.0.0.1"), *headers],
        }

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: MutableMapping[str, Any]) -> None:
            sent.append(dict(message))

        before = stack.upstream.count
        asyncio.run(app(scope, receive, send))
        assert sent[0]["status"] == 400
        assert json.loads(sent[1]["body"])["error"] == "invalid_request"
        assert stack.upstream.count == before

    def test_host_and_forwarded_headers_are_not_forwarded(
        self, stack: Stack, task: Task
    ) -> None:
        """Spoofed Host and X-Forwarded-* reach the upstream as nothing."""
        token = task.access_token(stack.target("tickets-saas"), "read")
        spoof = (
            b"X-Forwarded-Host: evil.example\r\nX-Forwarded-For: 6.6.6.6\r\n"
            b"X-Forwarded-Proto: https\r\nForwarded: for=6.6.6.6;host=evil\r\n"
            b"X-Real-IP: 6.6.6.6\r\nX-Original-URL: /v1/admin\r\n"
        )
        request = raw_get(stack, token, "/tickets-saas/v1/tickets", spoof)
        request = request.replace(b"Host: 127.0.0.1", b"Host: evil.example", 1)
        before = stack.upstream.count
        response = send_raw(stack, request)
        assert status_of(response) == 200
        assert stack.upstream.count == before + 1
        seen = dict(stack.upstream.last()["headers"])
        assert seen["host"] == stack.upstream_host
        for name in seen:
            assert not name.startswith("x-forwarded")
            assert name not in {"forwarded", "x-real-ip", "x-original-url"}

    def test_oversized_headers(self, stack: Stack, task: Task) -> None:
        """Headers past the limit are refused with a 4xx."""
        token = task.access_token(stack.target("tickets-saas"), "read")
        big = b"X-Request-Id: " + b"a" * 20_000 + b"\r\n"
        before = stack.upstream.count
        response = send_raw(
            stack, raw_get(stack, token, "/tickets-saas/v1/tickets", big)
        )
        status = status_of(response)
        assert status is not None
        assert 400 <= status < 500
        assert stack.upstream.count == before

    def test_declared_oversized_body(
        self, stack: Stack, task: Task, http: httpx.Client
    ) -> None:
        """A Content-Length past the route's limit is a 413 before any upstream call."""
        token = task.access_token(stack.target("tickets-saas"), "write")
        url = stack.url("/tickets-saas/v1/tickets")
        before = stack.upstream.count
        response = http.post(
            url, content=b"z" * 70_000, headers=token.headers("POST", url)
        )
        assert response.status_code == 413
        assert response.json()["error"] == "invalid_request"
        assert stack.upstream.count == before

    def test_chunked_oversized_body(
        self, stack: Stack, task: Task, http: httpx.Client
    ) -> None:
        """A chunked body over the limit is refused before the upstream is called."""
        token = task.access_token(stack.target("tickets-saas"), "write")
        url = stack.url("/tickets-saas/v1/tickets")
        before = stack.upstream.count

        def chunks() -> Iterator[bytes]:
            for _ in range(10):
                yield b"z" * 10_000

        response = http.post(url, content=chunks(), headers=token.headers("POST", url))
        assert response.status_code == 413
        assert stack.upstream.count == before

    def test_chunked_body_within_the_limit(
        self, stack: Stack, task: Task, http: httpx.Client
    ) -> None:
        """A chunked body within the limit is forwarded with its length."""
        token = task.access_token(stack.target("tickets-saas"), "write")
        url = stack.url("/tickets-saas/v1/tickets")

        def chunks() -> Iterator[bytes]:
            for _ in range(3):
                yield b'{"t": 1}'

        response = http.post(url, content=chunks(), headers=token.headers("POST", url))
        assert response.status_code < 400, response.text
        assert stack.upstream.requests[-1]["body_length"] == 24

    def test_slow_client_does_not_block_others(
        self, stack: Stack, task: Task, http: httpx.Client
    ) -> None:
        """A client that sends headers and stalls does not delay other requests."""
        token = task.access_token(stack.target("tickets-saas"), "write read")
        url = stack.url("/tickets-saas/v1/tickets")
        port = int(stack.proxy_url.rsplit(":", 1)[1])
        before = stack.upstream.count
        stalled = [socket.create_connection(("127.0.0.1", port)) for _ in range(5)]
        try:
            for sock in stalled:
                headers = proof_headers(token, "POST", url)
                sock.sendall(
                    b"POST /tickets-saas/v1/tickets HTTP/1.1\r\nHost: x\r\n"
                    + f"Authorization: {headers['Authorization']}\r\n".encode()
                    + f"DPoP: {headers['DPoP']}\r\n".encode()
                    + b"Content-Length: 1000\r\n\r\nonly-part"
                )
            partial = socket.create_connection(("127.0.0.1", port))
            stalled.append(partial)
            partial.sendall(b"GET /tickets-saas/v1/tick")
            started = time.monotonic()
            for _ in range(3):
                response = http.get(url, headers=token.headers("GET", url))
                assert response.status_code == 200
            assert time.monotonic() - started < 2.0
            # The stalled requests were forwarded (their bodies stream) and wait.
            _wait_for(lambda: stack.upstream.count >= before + 8, "stalled requests")
        finally:
            for sock in stalled:
                sock.close()

    def test_stalled_body_times_out(self, stack: Stack, task: Task) -> None:
        """A body that stops arriving is answered 408 after the route's timeout."""
        token = task.access_token(stack.target("slow"), "read")
        request = raw_get(stack, token, "/slow/fast", b"Content-Length: 10\r\n")
        response = send_raw(stack, request + b"abc")
        assert status_of(response) == 408
        assert b"request body was not received in time" in response


class TestUpstreamFailures:
    """Upstream failures become fixed errors, and the secret never leaks back."""

    def test_upstream_timeout_is_504(
        self, stack: Stack, task: Task, http: httpx.Client
    ) -> None:
        """An upstream slower than the route's timeout is a 504."""
        token = task.access_token(stack.target("slow"), "read")
        url = stack.url("/slow/api/v1/slow")
        response = http.get(url, headers=token.headers("GET", url))
        assert response.status_code == 504
        assert response.json()["error"] == "upstream_timeout"

    def test_unreachable_upstream_is_502(
        self, stack: Stack, agent: GatepassClient, http: httpx.Client
    ) -> None:
        """An upstream that refuses connections is a 502."""
        with agent.open_task(
            intent="x",
            purpose="support-triage",
            environment="dev",
            targets=[stack.target("gone")],
        ) as task:
            token = task.access_token(stack.target("gone"), "read")
            url = stack.url("/gone/anything")
            response = http.get(url, headers=token.headers("GET", url))
        assert response.status_code == 502
        assert response.json() == {
            "error": "bad_gateway",
            "error_description": "the upstream could not be reached",
        }

    def test_error_body_echoing_the_secret_is_replaced(
        self, stack: Stack, task: Task, http: httpx.Client
    ) -> None:
        """An upstream error that quotes the key becomes a fixed 502."""
        token = task.access_token(stack.target("tickets-saas"), "read")
        url = stack.url("/tickets-saas/v1/tickets/leak-error")
        response = http.get(url, headers=token.headers("GET", url))
        assert response.status_code == 502
        assert response.json()["error"] == "bad_gateway"
        assert_clean(stack, response)

    def test_success_body_echoing_the_secret_is_cut_off(
        self, stack: Stack, task: Task
    ) -> None:
        """A streamed answer that turns out to hold the key is truncated."""
        token = task.access_token(stack.target("tickets-saas"), "read")
        response = send_raw(
            stack, raw_get(stack, token, "/tickets-saas/v1/tickets/leak-ok")
        )
        assert status_of(response) == 200
        assert_clean(stack, response)
        assert len(response) < 100_000 + len(stack.canary)

    def test_rate_limit_per_lease(
        self, stack: Stack, task: Task, http: httpx.Client
    ) -> None:
        """Past the lease's burst the proxy answers 429 with Retry-After."""
        token = task.access_token(stack.target("slow"), "read")
        url = stack.url("/slow/fast")
        statuses = [
            http.get(url, headers=token.headers("GET", url)).status_code
            for _ in range(4)
        ]
        assert statuses[:3] == [200, 200, 200]
        assert statuses[3] == 429
        limited = http.get(url, headers=token.headers("GET", url))
        assert int(limited.headers["retry-after"]) >= 1


class TestAuditAndMetrics:
    """Calls are audited at the broker; nothing the suite produces holds a secret."""

    def test_calls_and_refusals_reach_the_audit_log(
        self, stack: Stack, task: Task, http: httpx.Client
    ) -> None:
        """A proxied call and a refusal become proxy.call audit records."""
        token = task.access_token(stack.target("tickets-saas"), "read")
        url = stack.url("/tickets-saas/v1/tickets/42")
        assert http.get(url, headers=token.headers("GET", url)).status_code == 200
        put = http.put(url, json={}, headers=token.headers("PUT", url))
        assert put.status_code == 403
        admin = {"Authorization": f"Bearer {stack.broker.admin_token}"}

        def audited() -> list[dict[str, Any]]:
            response = http.get(
                f"{stack.broker.url}/v1/audit/events",
                params={"last": 1000},
                headers=admin,
            )
            return [
                item
                for item in response.json()["items"]
                if item["kind"] == "proxy.call"
                and item["data"].get("task_id") == task.id
                and item["data"].get("path") == "/tickets-saas/v1/tickets/42"
            ]

        _wait_for(lambda: len(audited()) >= 2, "audit records at the broker")
        records = audited()
        outcomes = {record["data"]["outcome"] for record in records}
        assert {"ok", "deny"} <= outcomes
        denied = next(r for r in records if r["data"]["outcome"] == "deny")
        assert denied["data"]["status"] == 403
        assert denied["data"]["error"] == "insufficient_scope"
        assert (
            "error"
            not in next(r for r in records if r["data"]["outcome"] == "ok")["data"]
        )
        ok = next(r for r in records if r["data"]["outcome"] == "ok")
        assert ok["data"]["method"] == "GET"
        assert ok["data"]["status"] == 200
        assert ok["data"]["route"] == "tickets-saas"
        assert ok["data"]["bytes_out"] > 0
        text = json.dumps(records)
        assert_clean(stack, text)
        assert token.value.reveal() not in text

    def test_metrics_and_health_hold_no_secret(
        self, stack: Stack, http: httpx.Client
    ) -> None:
        """The proxies' metrics and health answers never carry a secret."""
        for base in (stack.proxy_url, stack.poll_url):
            metrics = http.get(base + "/metrics")
            assert metrics.status_code == 200
            assert "gatepass_proxy_requests" in metrics.text
            assert_clean(stack, metrics)
            assert http.get(base + "/healthz").status_code == 200
        assert http.get(stack.proxy_url + "/healthz").json()["revocation"] == "stream"
        assert http.get(stack.poll_url + "/healthz").json()["revocation"] == "poll"


class TestProxySettings:
    """The configuration is validated once, with located messages."""

    def _raw(self, **route: Any) -> dict[str, Any]:
        base = {
            "name": "a",
            "prefix": "/a/",
            "upstream": "http://127.0.0.1:1",
            "allow_plain_http": True,
            "auth": {"method": "bearer", "secret_env": "X"},
            "rules": {"read": ["GET /**"]},
        }
        return {
            "proxy": {"public_url": "http://p.example", "broker": "http://b.example"},
            "routes": [{**base, **route}],
        }

    def test_target_defaults_to_public_url_and_prefix(self) -> None:
        """A route without a target gets public_url + prefix."""
        settings = parse_proxy_settings(self._raw(), source="t")
        assert settings.routes[0].target == "http://p.example/a/"

    def test_overlapping_prefixes_are_refused(self) -> None:
        """Two routes whose prefixes nest are a configuration error."""
        raw = self._raw()
        raw["routes"].append({**raw["routes"][0], "name": "b", "prefix": "/a/b/"})
        with pytest.raises(ConfigurationError, match="overlap"):
            parse_proxy_settings(raw, source="t")

    @pytest.mark.parametrize("prefix", ["/", "/a", "a/", "/a//", "/../", "/%2e/"])
    def test_bad_prefixes_are_refused(self, prefix: str) -> None:
        """A prefix must be plain segments between slashes."""
        with pytest.raises(ConfigurationError, match=r"routes\[0\]\.prefix"):
            parse_proxy_settings(self._raw(prefix=prefix), source="t")

    def test_unknown_keys_are_refused(self) -> None:
        """A misspelt key is an error, not silently ignored."""
        with pytest.raises(ConfigurationError, match="max_body_byte"):
            parse_proxy_settings(self._raw(max_body_byte=1), source="t")
