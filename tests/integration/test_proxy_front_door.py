"""
Issue 7, items 3 to 7, against the live ``gatepass proxy`` process.

What the attack suite sent from outside: raw request lines, odd methods, floods of
small headers, overlong UTF-8, WebSocket upgrades; and what it read: the proxy's
own output at its default level and at debug, and the broker's audit log.
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from gatepass.proxy.app import ProxyApp, create_proxy_app
from gatepass.proxy.reasons import RefusalReason
from gatepass.proxy.server import server_config
from gatepass.proxy.settings import parse_proxy_settings
from gatepass.sdk.access import AccessToken
from gatepass.sdk.task import Task

from .conftest import free_port
from .proxy_attack import (
    GATEPASS,
    AttackStack,
    attack_stack,
    audit_records,
    leaked,
    open_task,
    raw_exchange,
    raw_request,
    render_toml,
    route_table,
    status_of,
    wait_for,
)

pytestmark = pytest.mark.slow

REASONS = {reason.value for reason in RefusalReason}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AttackStack]:
    """The broker, the hostile upstream and the proxy processes."""
    yield from attack_stack(tmp_path_factory.mktemp("front-door"))


@pytest.fixture(scope="module")
def task(stack: AttackStack) -> Iterator[Task]:
    """One task on every route."""
    yield from open_task(stack)


@pytest.fixture(scope="module")
def token(stack: AttackStack, task: Task) -> AccessToken:
    """A read and write token for the header route."""
    return task.access_token(stack.proxy.target("hdr"), "read write")


def send(stack: AttackStack, data: bytes) -> bytes:
    """Send raw bytes to the attack proxy."""
    return raw_exchange(stack.proxy.port, data)


def refusals(stack: AttackStack, reason: str) -> list[dict[str, Any]]:
    """Return the audit records of one reason code."""
    return [r for r in audit_records(stack) if r["data"].get("error") == reason]


class TestIssue7Logs:
    """Item 3: no spelling of the query secret in any log line, at any level."""

    def test_issue7_3_query_secret_not_logged_at_default_level(
        self, stack: AttackStack, task: Task
    ) -> None:
        """At info, httpx logs nothing and no line holds a spelling of the key."""
        token = task.access_token(stack.quiet.target("query"), "read")
        url = f"{stack.quiet.url}/query/v1/items?page=2"
        assert httpx.get(url, headers=token.headers("GET", url)).status_code == 200
        records = stack.upstream.count
        wait_for(lambda: "proxied GET query -> 200" in stack.quiet.text(), "log")
        lines = [json.loads(line) for line in stack.quiet.text().splitlines()]
        assert records > 0
        assert not [line for line in lines if line["logger"].startswith("httpx")]
        assert not [line for line in lines if line["logger"].startswith("httpcore")]
        assert leaked(stack.quiet.text().encode(), stack.secret) == []

    def test_issue7_3_query_secret_redacted_at_debug(
        self, stack: AttackStack, task: Task
    ) -> None:
        """At debug, no line holds the key; a line naming the URL shows it redacted."""
        token = task.access_token(stack.proxy.target("query"), "read")
        url = f"{stack.proxy.url}/query/v1/items?page=3"
        before = stack.proxy.text().count("proxied GET query -> 200")
        assert httpx.get(url, headers=token.headers("GET", url)).status_code == 200
        wait_for(
            lambda: stack.proxy.text().count("proxied GET query -> 200") > before,
            "the request's log line",
        )
        # The upstream client (aiohttp) logs no URL; should any library log one,
        # the by-value redaction replaces every spelling of the key.
        naming_url = [
            line for line in stack.proxy.text().splitlines() if "page=3" in line
        ]
        assert all("key=[redacted]" in line for line in naming_url)
        assert leaked(stack.proxy.text().encode(), stack.secret) == []


class TestIssue7Methods:
    """Item 4: TRACE and CONNECT never go upstream; 405 with Allow; 431."""

    @pytest.mark.parametrize("method", ["TRACE", "PROPFIND"])
    def test_issue7_4_trace_is_405_and_never_forwarded(
        self, stack: AttackStack, token: AccessToken, method: str
    ) -> None:
        """A TRACE with a valid token under a * rule never reaches the upstream."""
        before = stack.upstream.count
        response = send(stack, raw_request(stack.proxy, token, method, "/hdr/v1/x"))
        assert status_of(response) == 405
        assert (
            b"\r\nallow: DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT" not in response
        )
        assert b"\r\nallow: GET, POST\r\n" in response
        assert stack.upstream.count == before

    def test_issue7_4_connect_is_refused(
        self, stack: AttackStack, token: AccessToken
    ) -> None:
        """CONNECT (authority form or not) never opens a tunnel."""
        before = stack.upstream.count
        for target in ("/hdr/v1/x", "127.0.0.1:1"):
            response = send(stack, raw_request(stack.proxy, token, "CONNECT", target))
            assert status_of(response) in {400, 404, 405}
        assert stack.upstream.count == before

    def test_issue7_4_method_outside_the_rules_is_405_with_allow(
        self, stack: AttackStack, token: AccessToken
    ) -> None:
        """DELETE on a path only GET and POST serve is 405, listing them."""
        before = stack.upstream.count
        response = send(
            stack, raw_request(stack.proxy, token, "DELETE", "/hdr/v1/items")
        )
        assert status_of(response) == 405
        assert b"\r\nallow: GET, POST\r\n" in response
        assert b'"error": "method_not_allowed"' in response
        assert stack.upstream.count == before

    def test_issue7_4_many_small_headers_are_431(
        self, stack: AttackStack, token: AccessToken
    ) -> None:
        """Two hundred small headers are a 431, not a 400."""
        extra = b"".join(f"X-H{index}: v\r\n".encode() for index in range(200))
        before = stack.upstream.count
        request = raw_request(stack.proxy, token, "GET", "/hdr/v1/items", extra=extra)
        assert status_of(send(stack, request)) == 431
        assert stack.upstream.count == before

    def test_issue7_4_trace_rule_refused_at_start(self, tmp_path: Path) -> None:
        """A configuration naming TRACE does not start (exit 78, route named)."""
        route = route_table("tracer", "https://api.example", kind="hdr")
        route["rules"] = {"read": ["TRACE /**"]}
        route["auth"]["secret_env"] = "UNUSED"
        result = _start(tmp_path, route)
        assert result.returncode == 78
        assert "never forwarded" in result.stderr


class TestIssue7PlainHttp:
    """Item 5: the secret never travels over plain http, except to loopback."""

    def test_issue7_5_plain_http_upstream_refused_at_start(
        self, tmp_path: Path
    ) -> None:
        """An http:// upstream without the opt-in stops the start, naming the route."""
        route = route_table("billing", "http://127.0.0.1:9", kind="bearer")
        del route["allow_plain_http"]
        route["auth"]["secret_env"] = "UNUSED"
        result = _start(tmp_path, route)
        assert result.returncode == 78
        assert "route 'billing'" in result.stderr
        assert "plain http" in result.stderr

    def test_issue7_5_opt_in_only_for_loopback(self, tmp_path: Path) -> None:
        """allow_plain_http is refused for an upstream that is not loopback."""
        route = route_table("billing", "http://api.example", kind="bearer")
        route["auth"]["secret_env"] = "UNUSED"
        result = _start(tmp_path, route)
        assert result.returncode == 78
        assert "loopback" in result.stderr


class TestIssue7Parsing:
    """Item 6: nothing lenient is forwarded."""

    @pytest.mark.parametrize("version", [b"", b" HTTP/0.9", b" HTTP/2.0"])
    def test_issue7_6_request_line_without_http_1_is_400(
        self, stack: AttackStack, token: AccessToken, version: bytes
    ) -> None:
        """A request line without a version (or not HTTP/1.x) is refused."""
        before = stack.upstream.count
        request = raw_request(
            stack.proxy, token, "GET", "/hdr/v1/items", version=version
        )
        response = send(stack, request)
        assert status_of(response) == 400
        assert b'"error": "invalid_request"' in response
        assert stack.upstream.count == before

    @pytest.mark.parametrize(
        "path",
        ["/hdr/v1/%c0%ae%c0%ae/admin", "/hdr/v1/%e0%80%ae", "/hdr/v1/%ed%a0%80",
         "/hdr/v1/%c2%85", "/hdr/v1/%ff"],
    )  # fmt: skip
    def test_issue7_6_overlong_utf8_is_400(
        self, stack: AttackStack, token: AccessToken, path: str
    ) -> None:
        """Overlong, surrogate, invalid and C1-control escapes never reach upstream."""
        before = stack.upstream.count
        response = send(stack, raw_request(stack.proxy, token, "GET", path))
        assert status_of(response) == 400
        assert b"request path rejected" in response
        assert stack.upstream.count == before

    def test_issue7_6_valid_utf8_escapes_pass(
        self, stack: AttackStack, token: AccessToken
    ) -> None:
        """A well-formed UTF-8 escape is still served."""
        response = send(stack, raw_request(stack.proxy, token, "GET", "/hdr/caf%C3%A9"))
        assert status_of(response) == 200


class TestIssue7Audit:
    """Item 7: every refusal is audited with a reason code from the closed set."""

    @pytest.mark.parametrize(
        ("data", "reason"),
        [
            (b"GET /hdr/v1/items\r\n\r\n", "http_version"),
            (b"FOO /hdr/v1/items HTTP/1.1\r\nHost: x\r\n\r\n", "invalid_method"),
            (b"GET /hdr/ HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n",
             "malformed_request"),
            ((b"POST /hdr/ HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n"
              b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), "malformed_request"),
        ],
    )  # fmt: skip
    def test_issue7_7_server_layer_refusals_are_audited(
        self, stack: AttackStack, data: bytes, reason: str
    ) -> None:
        """What the HTTP server refuses before the app runs lands in the audit log."""
        before = len(refusals(stack, reason))
        response = send(stack, data)
        assert status_of(response) == 400
        assert b'"error": "invalid_request"' in response
        wait_for(lambda: len(refusals(stack, reason)) > before, "the audit record")
        record = refusals(stack, reason)[-1]
        assert record["outcome"] == "deny"
        assert record["data"]["status"] == 400

    def test_issue7_7_websocket_upgrade_is_audited(
        self, stack: AttackStack, token: AccessToken
    ) -> None:
        """A WebSocket upgrade is refused and audited as upgrade_refused."""
        before = len(refusals(stack, "upgrade_refused"))
        upgrade = (
            b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Version: 13\r\n"
        )
        request = raw_request(stack.proxy, token, "GET", "/hdr/ws", extra=upgrade)
        request = request.replace(b"Connection: close\r\n", b"")
        response = send(stack, request)
        assert status_of(response) in {400, 403}
        wait_for(
            lambda: len(refusals(stack, "upgrade_refused")) > before, "the audit record"
        )

    def test_issue7_7_every_proxy_deny_carries_a_reason(
        self, stack: AttackStack, token: AccessToken
    ) -> None:
        """401, 404, 405 and 403 refusals each have a reason code of the enum."""
        url = stack.proxy.url
        assert httpx.get(f"{url}/hdr/v1/deny-check").status_code == 401
        assert httpx.get(f"{url}/nowhere/deny-check").status_code == 404
        send(stack, raw_request(stack.proxy, token, "PUT", "/hdr/v1/deny-check"))

        def denied() -> list[dict[str, Any]]:
            return [
                record
                for record in audit_records(stack)
                if record["data"].get("path", "").endswith("deny-check")
            ]

        wait_for(lambda: len(denied()) >= 3, "the deny records")
        errors = {record["data"]["error"] for record in denied()}
        assert errors >= {"token_missing", "no_route", "method_not_allowed"}
        for record in audit_records(stack):
            if record["outcome"] != "ok":
                assert record["data"].get("error") in REASONS

    def test_issue7_7_server_refusals_are_counted(self, stack: AttackStack) -> None:
        """The metrics count server-layer refusals by reason."""
        send(stack, b"GET /hdr/v1/items\r\n\r\n")
        metrics = httpx.get(f"{stack.proxy.url}/metrics").text
        assert (
            'gatepass_proxy_requests_total{outcome="http_version",route="-"}' in metrics
        )


@pytest.fixture(scope="module")
def served(stack: AttackStack) -> Iterator[tuple[ProxyApp, int]]:
    """The proxy app under uvicorn with the guarded protocol, in a thread."""
    port = free_port()
    route = route_table("hdr", "http://127.0.0.1:9")
    route["auth"]["secret_file"] = str(stack.state_dir.parent / "upstream.key")
    settings = parse_proxy_settings(
        {
            "proxy": {
                "port": port,
                "public_url": f"http://127.0.0.1:{port}",
                "broker": stack.broker.url,
                "api_token_file": str(stack.state_dir / "proxy.token"),
            },
            "routes": [route],
        },
        source="test",
    )
    app = create_proxy_app(settings)
    server = uvicorn.Server(server_config(app, settings.proxy))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, "the in-process proxy")
    try:
        yield app, port
    finally:
        server.should_exit = True
        thread.join(timeout=10)


class TestIssue7GuardedServerInProcess:
    """The guarded server protocol, run in this process (as gatepass proxy runs it)."""

    @pytest.mark.parametrize(
        ("data", "reason"),
        [
            (b"GET /hdr/x\r\n\r\n", "http_version"),
            (b"GET /hdr/x HTTP/2.0\r\nHost: x\r\n\r\n", "http_version"),
            (b"BREW /hdr/x HTTP/1.1\r\nHost: x\r\n\r\n", "invalid_method"),
            (b"GET /hdr/x HTTP/1.1\r\nHost: x\r\nA\x01: b\r\n\r\n",
             "malformed_request"),
        ],
    )  # fmt: skip
    def test_issue7_7_server_refusal_reaches_the_app(
        self, served: tuple[ProxyApp, int], data: bytes, reason: str
    ) -> None:
        """Each server-layer refusal is answered in the proxy's shape and counted."""
        app, port = served
        labels = {"route": "-", "outcome": reason}
        name = "gatepass_proxy_requests_total"
        before = app.metrics.registry.get_sample_value(name, labels) or 0
        response = raw_exchange(port, data)
        assert status_of(response) == 400
        assert b"content-type: application/json" in response
        assert b"cache-control: no-store" in response
        after = app.metrics.registry.get_sample_value(name, labels)
        assert after == before + 1


def _start(tmp_path: Path, route: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    """Run ``gatepass proxy`` on a configuration that must not start."""
    config = tmp_path / "proxy.toml"
    proxy = {"public_url": "http://127.0.0.1:9", "broker": "http://127.0.0.1:9"}
    config.write_text(render_toml(proxy, [route]))
    return subprocess.run(  # noqa: S603 - our own console script
        [GATEPASS, "proxy", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
