"""
A live attack harness for the proxy: real processes, real sockets.

A quickstart broker and a hostile upstream run in threads on 127.0.0.1; the proxy
is the real ``gatepass proxy`` command in its own process, whose output is kept in
a file. The upstream reflects the credential it received in any spelling
(``/reflect/{what}/{form}/{coding}/{status}``), compresses whatever the request
asked for, and records the ``Accept-Encoding`` it was sent.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import brotli
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from gatepass.api import create_app
from gatepass.broker import build_runtime
from gatepass.config import Settings
from gatepass.sdk import AgentIdentity, GatepassClient
from gatepass.sdk.access import AccessToken
from gatepass.sdk.task import Task

from .conftest import LiveBroker, RunningServer, free_port, quickstart_settings
from .conftest import start_server as start_thread_server

DEADLINE = 15.0
USERNAME = "svc"
ROUTES = ("hdr", "bearer", "basic", "query", "enc")
GATEPASS = str(Path(sys.executable).with_name("gatepass"))


# ------------------------------------------------------------------ spellings


def spellings(plaintext: bytes) -> set[bytes]:
    """
    Return spellings of a plaintext, derived independently of the proxy's scanner.

    Base64 of a plaintext inside a longer string is found by encoding it after 0, 1
    and 2 filler bytes and dropping the first and last 4-character groups, which
    depend on the neighbours: a conservative core that is always present.
    """
    forms = {plaintext, plaintext.hex().encode(), plaintext.hex().upper().encode()}
    forms.add(quote(plaintext, safe="").encode())
    for offset in range(3):
        encoded = base64.b64encode(b"#" * offset + plaintext + b"#")
        core = encoded[4:-4]
        forms.add(core)
        forms.add(core.replace(b"+", b"-").replace(b"/", b"_"))
    return forms


def leaked(data: bytes, secret: str) -> list[bytes]:
    """Return the spellings of the secret (and its injected forms) found in data."""
    raw = secret.encode()
    plaintexts = [raw, f"Bearer {secret}".encode(), f"{USERNAME}:{secret}".encode()]
    basic = base64.b64encode(f"{USERNAME}:{secret}".encode())
    plaintexts.append(basic)
    found: list[bytes] = []
    for plaintext in plaintexts:
        found.extend(form for form in spellings(plaintext) if form in data)
    return found


def encode_as(form: str, plaintext: bytes) -> bytes:
    """Spell a plaintext the way a reflecting upstream might."""
    pad = secrets.token_bytes(int(form[-1])) if form.startswith("embedded") else b""
    encoders = {
        "raw": lambda: plaintext,
        "b64": lambda: base64.b64encode(plaintext),
        "b64url": lambda: base64.urlsafe_b64encode(plaintext).rstrip(b"="),
        "hex": lambda: plaintext.hex().encode(),
        "HEX": lambda: plaintext.hex().upper().encode(),
        # Lower-case hex digits, as some encoders write them.
        "percent": lambda: re.sub(
            "%[0-9A-F]{2}", lambda m: m[0].lower(), quote(plaintext, safe="")
        ).encode(),
        "json": lambda: json.dumps(plaintext.decode()).encode(),
    }
    if form.startswith("embedded"):
        return base64.b64encode(pad + b"user=" + plaintext + b";trailer")
    return encoders[form]()


def compress(coding: str, body: bytes) -> bytes:
    """Apply one content coding."""
    if coding == "gzip":
        return gzip.compress(body)
    if coding == "deflate":
        return zlib.compress(body)
    if coding == "br":
        compressed: bytes = brotli.compress(body)
        return compressed
    if coding == "zstd":
        return b"(\xb5/\xfd" + body  # not decodable by the proxy: refused unread
    return body


# ------------------------------------------------------------------- upstream


@dataclass
class Upstream:
    """What the hostile upstream saw."""

    secret: str
    accept_encodings: list[str] = field(default_factory=list)
    count: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def seen(self, accept_encoding: str) -> None:
        """Count one request and remember its Accept-Encoding."""
        with self.lock:
            self.count += 1
            self.accept_encodings.append(accept_encoding)


def _injected(request: Request) -> str:
    return (
        request.headers.get("x-api-key")
        or request.headers.get("authorization")
        or request.query_params.get("key")
        or ""
    )


def upstream_app(upstream: Upstream) -> Starlette:
    """Build the hostile upstream."""

    async def reflect(request: Request) -> Response:
        upstream.seen(request.headers.get("accept-encoding", ""))
        params = request.path_params
        plaintext = {
            "secret": upstream.secret,
            "injected": _injected(request),
            "userpass": f"{USERNAME}:{upstream.secret}",
        }[params["what"]].encode()
        body = b'{"note": "' + b"x" * 300 + b'", "echo": "'
        body += encode_as(params["form"], plaintext) + b'"}'
        coding = params["coding"]
        headers = {} if coding == "identity" else {"content-encoding": coding}
        payload = compress(coding, body)
        status = int(params["status"])
        if status >= 400:
            return Response(payload, status, headers=headers)

        async def pieces() -> AsyncIterator[bytes]:
            for start in range(0, len(payload), 7):
                yield payload[start : start + 7]

        return StreamingResponse(pieces(), status, headers=headers)

    async def in_header(request: Request) -> Response:
        upstream.seen(request.headers.get("accept-encoding", ""))
        echo = encode_as(request.path_params["form"], _injected(request).encode())
        return Response(b"ok", headers={"x-debug-echo": echo.decode()})

    async def clean(request: Request) -> Response:
        accept = request.headers.get("accept-encoding", "")
        upstream.seen(accept)
        body = b"hello from the upstream " * 200
        coding = request.path_params["coding"]
        if coding == "honour":
            # Compress only when asked, as nginx with gzip on does.
            coding = next(
                (c for c in ("br", "gzip") if c in accept.replace(" ", "").split(",")),
                "identity",
            )
        headers = {} if coding == "identity" else {"content-encoding": coding}
        return Response(compress(coding, body), headers=headers)

    methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
    return Starlette(
        routes=[
            Route("/reflect/{what}/{form}/{coding}/{status}", reflect, methods=methods),
            Route("/in-header/{form}", in_header, methods=methods),
            Route("/clean/{coding}", clean, methods=methods),
            Route("/{path:path}", clean_any(upstream), methods=methods),
        ]
    )


def clean_any(upstream: Upstream) -> Any:
    """Answer anything else with a small JSON body."""

    async def answer(request: Request) -> Response:
        upstream.seen(request.headers.get("accept-encoding", ""))
        return Response(b'{"ok": true}', media_type="application/json")

    return answer


# ------------------------------------------------------------- proxy process


def route_table(name: str, upstream: str, *, kind: str = "") -> dict[str, Any]:
    """Return one route of the attack proxy's configuration (``kind``: its auth)."""
    auth: dict[str, Any] = {
        "hdr": {"method": "header", "name": "X-Api-Key"},
        "enc": {"method": "header", "name": "X-Api-Key"},
        "bearer": {"method": "bearer"},
        "basic": {"method": "basic", "username": USERNAME},
        "query": {"method": "query", "name": "key"},
    }[kind or name]
    table: dict[str, Any] = {
        "name": name,
        "prefix": f"/{name}/",
        "upstream": upstream,
        "allow_plain_http": True,
        "rules": {"read": ["GET /**"], "write": ["POST /v1/items"]},
        "rate_per_lease": 10_000,
        "burst_per_lease": 10_000,
        "rate_per_route": 10_000,
        "burst_per_route": 10_000,
        "auth": auth,
    }
    if name == "enc":
        table["accept_encoding"] = ["gzip", "br"]
    return table


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    return str(value)


def render_toml(proxy: dict[str, Any], routes: list[dict[str, Any]]) -> str:
    """Render a proxy configuration (flat tables only) as TOML."""
    lines = ["[proxy]", *(f"{k} = {_toml_value(v)}" for k, v in proxy.items())]
    for route in routes:
        lines += ["", "[[routes]]"]
        tables = {k: v for k, v in route.items() if isinstance(v, dict)}
        lines += [
            f"{k} = {_toml_value(v)}" for k, v in route.items() if k not in tables
        ]
        for key, table in tables.items():
            lines.append(f"[routes.{key}]")
            lines += [f"{k} = {_toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


@dataclass
class ProxyProcess:
    """A ``gatepass proxy`` process and the file its output goes to."""

    process: subprocess.Popen[bytes]
    port: int
    output: Path

    @property
    def url(self) -> str:
        """The proxy's public URL."""
        return f"http://127.0.0.1:{self.port}"

    def target(self, route: str) -> str:
        """The token audience of a route."""
        return f"{self.url}/{route}/"

    def text(self) -> str:
        """Everything the process wrote so far."""
        return self.output.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        """Ask the process to stop and wait for it."""
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def run_proxy(config: Path, output: Path) -> subprocess.Popen[bytes]:
    """Start ``gatepass proxy -c config`` with its output in a file."""
    with output.open("wb") as sink:
        return subprocess.Popen(  # noqa: S603 - our own console script
            [GATEPASS, "proxy", "-c", str(config)],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )


def start_proxy(
    workdir: Path,
    name: str,
    *,
    port: int,
    broker: LiveBroker,
    routes: list[dict[str, Any]],
    log_level: str,
) -> ProxyProcess:
    """Start a proxy process and wait until it answers /healthz."""
    config = workdir / f"{name}.toml"
    proxy = {
        "host": "127.0.0.1",
        "port": port,
        "public_url": f"http://127.0.0.1:{port}",
        "broker": broker.url,
        "api_token_file": str(broker.state_dir / "proxy.token"),
        "log_level": log_level,
    }
    config.write_text(render_toml(proxy, routes))
    output = workdir / f"{name}.log"
    process = run_proxy(config, output)
    running = ProxyProcess(process=process, port=port, output=output)
    deadline = time.monotonic() + DEADLINE
    while True:
        if process.poll() is not None:
            pytest.fail(f"proxy {name} exited: {running.text()[-2000:]}")
        try:
            if httpx.get(f"{running.url}/healthz", timeout=1).status_code == 200:
                return running
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            running.stop()
            pytest.fail(f"proxy {name} did not start")
        threading.Event().wait(0.05)


# ---------------------------------------------------------------------- stack


@dataclass
class AttackStack:
    """The broker, the hostile upstream and two proxy processes."""

    broker: LiveBroker
    upstream: Upstream
    proxy: ProxyProcess
    quiet: ProxyProcess
    secret: str
    state_dir: Path


def _broker_settings(state_dir: Path, port: int, targets: list[str]) -> Settings:
    base = quickstart_settings(state_dir, port=port, resource_port=free_port())
    raw = base.model_dump()
    for index, uri in enumerate(targets):
        raw["targets"].append(
            {
                "name": f"attack-{index}",
                "uri": uri,
                "kind": "http",
                "environment": "dev",
                "tenant": "acme",
                "risk": "low",
                "actions": ["read", "write"],
                "max_ttl_seconds": 600,
            }
        )
    return Settings.model_validate(raw)


def attack_stack(workdir: Path) -> Iterator[AttackStack]:
    """Run the whole stack; the proxy logs at debug, the quiet one at info."""
    secret = "gp-attack-" + secrets.token_urlsafe(24)
    secret_file = workdir / "upstream.key"
    secret_file.write_text(secret + "\n")
    secret_file.chmod(0o600)
    upstream = Upstream(secret=secret)
    servers: list[RunningServer] = [
        start_thread_server(upstream_app(upstream), free_port())
    ]
    broker_port, proxy_port, quiet_port = free_port(), free_port(), free_port()
    targets = [f"http://127.0.0.1:{proxy_port}/{name}/" for name in ROUTES]
    targets.append(f"http://127.0.0.1:{quiet_port}/query/")
    state_dir = workdir / "state"
    runtime = build_runtime(_broker_settings(state_dir, broker_port, targets))
    processes: list[ProxyProcess] = []
    try:
        servers.append(
            start_thread_server(create_app(runtime, background_jobs=False), broker_port)
        )
        broker = LiveBroker(
            url=f"http://127.0.0.1:{broker_port}", runtime=runtime, state_dir=state_dir
        )
        routes = [route_table(name, servers[0].url) for name in ROUTES]
        for route in routes:
            route["auth"]["secret_file"] = str(secret_file)
        processes.append(
            start_proxy(
                workdir,
                "attack",
                port=proxy_port,
                broker=broker,
                routes=routes,
                log_level="debug",
            )
        )
        processes.append(
            start_proxy(
                workdir,
                "quiet",
                port=quiet_port,
                broker=broker,
                routes=[routes[ROUTES.index("query")]],
                log_level="info",
            )
        )
        yield AttackStack(
            broker=broker,
            upstream=upstream,
            proxy=processes[0],
            quiet=processes[1],
            secret=secret,
            state_dir=state_dir,
        )
    finally:
        for process in processes:
            process.stop()
        for server in reversed(servers):
            server.stop()
        runtime.database.dispose()


def open_task(stack: AttackStack) -> Iterator[Task]:
    """Open a task on every route of both proxies."""
    identity = AgentIdentity.load(stack.state_dir / "demo-agent.json")
    targets = [stack.proxy.target(name) for name in ROUTES]
    targets.append(stack.quiet.target("query"))
    with (
        GatepassClient(identity) as client,
        client.open_task(
            intent="attack the proxy",
            purpose="support-triage",
            environment="dev",
            targets=targets,
        ) as task,
    ):
        yield task


# ---------------------------------------------------------------- raw sockets


def proof_headers(token: AccessToken, method: str, url: str) -> dict[str, str]:
    """Sign a proof for exactly ``url`` (even one the SDK would refuse to build)."""
    value = token.value.reveal()
    proof = token._key.proof(method, url, access_token=value)
    return {"Authorization": f"DPoP {value}", "DPoP": proof}


def raw_exchange(port: int, data: bytes, *, timeout: float = 5.0) -> bytes:
    """Send raw bytes and read until the server closes (or the timeout)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks: list[bytes] = []
        try:
            while chunk := sock.recv(65_536):
                chunks.append(chunk)
        except (TimeoutError, ConnectionResetError):
            pass
    return b"".join(chunks)


def raw_request(
    proxy: ProxyProcess,
    token: AccessToken | None,
    method: str,
    target: str,
    *,
    version: bytes = b" HTTP/1.1",
    extra: bytes = b"",
) -> bytes:
    """Build a request with a valid token and proof for exactly this target."""
    lines = [
        f"{method} {target}".encode() + version,
        f"Host: 127.0.0.1:{proxy.port}".encode(),
    ]
    if token is not None:
        headers = proof_headers(token, method, proxy.url + target)
        lines.append(f"Authorization: {headers['Authorization']}".encode())
        lines.append(f"DPoP: {headers['DPoP']}".encode())
    lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n" + extra + b"\r\n"


def status_of(response: bytes) -> int | None:
    """Return the status of a raw HTTP response, None when there was none."""
    if not response.startswith(b"HTTP/1.1 "):
        return None
    return int(response.split(b" ", 2)[1])


def audit_records(stack: AttackStack) -> list[dict[str, Any]]:
    """Return the broker's recent proxy.call audit records."""
    response = httpx.get(
        f"{stack.broker.url}/v1/audit/events",
        params={"last": 1000},
        headers={"Authorization": f"Bearer {stack.broker.admin_token}"},
        timeout=DEADLINE,
    )
    return [item for item in response.json()["items"] if item["kind"] == "proxy.call"]


def wait_for(condition: Any, what: str, *, within: float = DEADLINE) -> None:
    """Poll until ``condition()`` is true, failing after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {within}s")
        threading.Event().wait(0.02)
