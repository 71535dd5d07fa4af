"""
Several proxy processes behind one address share replay protection (issue 16).

Two proxies with one ``public_url`` (as two processes behind one port or one load
balancer are) and ``replay = "redis"``: a proof accepted by one is refused by the
other, and a Redis that cannot answer refuses the request (fail closed).
"""

from __future__ import annotations

import functools
import os
import secrets
import subprocess
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from tests.conftest import require_service

from gatepass.api import create_app
from gatepass.broker import Runtime, build_runtime
from gatepass.config import Settings
from gatepass.proxy.app import ProxyApp, create_proxy_app
from gatepass.proxy.settings import ProxySettings, parse_proxy_settings
from gatepass.sdk import AgentIdentity, GatepassClient
from gatepass.sdk.access import AccessToken
from gatepass.verify import RevocationFeed

from .conftest import RunningServer, free_port, quickstart_settings, start_server
from .deadline import poll

GATEPASS = str(Path(sys.executable).with_name("gatepass"))
REDIS_URL = os.environ.get("GATEPASS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

pytestmark = [pytest.mark.slow, pytest.mark.redis]


def _upstream(key: str, calls: list[str]) -> Starlette:
    async def tickets(request: Request) -> Response:
        calls.append(request.url.path)
        if request.headers.get("x-api-key") != key:
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        return JSONResponse({"tickets": []})

    return Starlette(routes=[Route("/api/v1/tickets", tickets)])


def _proxy_settings(
    port: int, *, urls: dict[str, str], files: Path, prefix: str
) -> ProxySettings:
    return parse_proxy_settings(
        {
            "proxy": {
                "port": port,
                "public_url": urls["public"],
                "broker": urls["broker"],
                "api_token_file": str(files / "state" / "proxy.token"),
                "replay": "redis",
                "redis_url": urls["redis"],
                "redis_prefix": prefix,
            },
            "routes": [
                {
                    "name": "tickets",
                    "prefix": "/tickets/",
                    "upstream": urls["upstream"] + "/api",
                    "allow_plain_http": True,
                    "auth": {
                        "method": "header",
                        "name": "X-Api-Key",
                        "secret_file": str(files / "tickets.key"),
                    },
                    "rules": {"read": ["GET /v1/tickets"]},
                }
            ],
        },
        source="test",
    )


def _healthy(feed: RevocationFeed) -> bool:
    return feed.healthy


@dataclass
class Pair:
    """Two proxies behind one public URL, and an agent's token for them."""

    urls: list[str]
    public_url: str
    proxies: list[ProxyApp]
    token: AccessToken


def _start_pair(
    tmp_path: Path, redis_urls: tuple[str, str], calls: list[str]
) -> tuple[list[RunningServer], list[ProxyApp], str, list[str], Runtime]:
    key = "gp-key-" + secrets.token_hex(12)
    secret = tmp_path / "tickets.key"
    secret.write_text(key)
    secret.chmod(0o600)
    servers: list[RunningServer] = [start_server(_upstream(key, calls), free_port())]
    upstream = servers[0].url
    ports = [free_port(), free_port()]
    public_url = f"http://127.0.0.1:{ports[0]}"
    state = tmp_path / "state"
    broker_port = free_port()
    base = quickstart_settings(state, port=broker_port, resource_port=free_port())
    raw = base.model_dump()
    raw["targets"].append(
        {
            "name": "tickets-proxy",
            "uri": f"{public_url}/tickets/",
            "kind": "http",
            "environment": "dev",
            "tenant": "acme",
            "risk": "low",
            "actions": ["read"],
            "max_ttl_seconds": 600,
        }
    )
    runtime = build_runtime(Settings.model_validate(raw))
    servers.append(
        start_server(create_app(runtime, background_jobs=False), broker_port)
    )
    broker = f"http://127.0.0.1:{broker_port}"
    proxies: list[ProxyApp] = []
    # One deployment, one key prefix: what makes the two processes one ledger.
    prefix = f"gatepass-test:{uuid.uuid4().hex}:"
    for port, redis in zip(ports, redis_urls, strict=True):
        where = {
            "public": public_url,
            "broker": broker,
            "upstream": upstream,
            "redis": redis,
        }
        settings = _proxy_settings(port, urls=where, files=tmp_path, prefix=prefix)
        proxy = create_proxy_app(settings)
        proxies.append(proxy)
        servers.append(start_server(proxy, port))
    for proxy in proxies:
        feed = proxy.feed
        assert feed is not None
        assert poll(functools.partial(_healthy, feed), within=10.0)
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    return servers, proxies, public_url, urls, runtime


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    """Two proxies on one Redis ledger."""
    require_service("Redis", REDIS_URL, 6379)
    servers, proxies, public_url, urls, runtime = _start_pair(
        tmp_path, (REDIS_URL, REDIS_URL), []
    )
    client = GatepassClient(AgentIdentity.load(tmp_path / "state" / "demo-agent.json"))
    try:
        target = f"{public_url}/tickets/"
        with client.open_task(
            intent="replicas", purpose="test", environment="dev", targets=[target]
        ) as task:
            token = task.access_token(target, "read")
            yield Pair(urls=urls, public_url=public_url, proxies=proxies, token=token)
    finally:
        client.close()
        for server in reversed(servers):
            server.stop()
        runtime.database.dispose()


class TestSharedReplay:
    """``replay = "redis"``: one proof, one acceptance, whichever process."""

    def test_one_proof_sent_to_both_proxies_is_accepted_once(self, pair: Pair) -> None:
        """The same request and proof, to both at once: one 200, one 401."""
        path = "/tickets/v1/tickets"
        headers = pair.token.headers("GET", pair.public_url + path)

        def send(url: str) -> httpx.Response:
            return httpx.get(url + path, headers=headers, timeout=10)

        with ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(send, pair.urls))
        assert sorted(a.status_code for a in answers) == [200, 401], [
            a.text for a in answers
        ]
        refused = next(a for a in answers if a.status_code == 401)
        assert refused.json()["error"] == "invalid_dpop_proof"

    def test_a_proof_used_at_one_proxy_is_refused_at_the_other(
        self, pair: Pair
    ) -> None:
        """First one proxy, then the other, with the same proof: refused."""
        path = "/tickets/v1/tickets"
        headers = pair.token.headers("GET", pair.public_url + path)
        first, second = pair.urls
        assert httpx.get(first + path, headers=headers).status_code == 200
        again = httpx.get(second + path, headers=headers)
        assert again.status_code == 401
        assert again.json()["error"] == "invalid_dpop_proof"
        fresh = pair.token.headers("GET", pair.public_url + path)
        assert httpx.get(second + path, headers=fresh).status_code == 200


def test_an_unreachable_ledger_refuses_the_request(tmp_path: Path) -> None:
    """Redis down: 503 replay_unavailable, and the upstream is not called."""
    dead = f"redis://127.0.0.1:{free_port()}/0"
    calls: list[str] = []
    servers, _, public_url, urls, runtime = _start_pair(tmp_path, (dead, dead), calls)
    client = GatepassClient(AgentIdentity.load(tmp_path / "state" / "demo-agent.json"))
    try:
        target = f"{public_url}/tickets/"
        with client.open_task(
            intent="replicas", purpose="test", environment="dev", targets=[target]
        ) as task:
            token = task.access_token(target, "read")
            path = "/tickets/v1/tickets"
            answer = httpx.get(
                urls[0] + path, headers=token.headers("GET", public_url + path)
            )
        assert answer.status_code == 503
        assert answer.json()["error"] == "store_unavailable"
        assert calls == []
    finally:
        client.close()
        for server in reversed(servers):
            server.stop()
        runtime.database.dispose()


def _proxy_toml(port: int, urls: dict[str, str], files: Path, prefix: str) -> str:
    return f"""\
[proxy]
host = "127.0.0.1"
port = {port}
public_url = "{urls["public"]}"
broker = "{urls["broker"]}"
api_token_file = "{files / "state" / "proxy.token"}"
replay = "redis"
redis_url = "{urls["redis"]}"
redis_prefix = "{prefix}"
reuse_port = true

[[routes]]
name = "tickets"
prefix = "/tickets/"
upstream = "{urls["upstream"]}/api"
allow_plain_http = true

[routes.auth]
method = "header"
name = "X-Api-Key"
secret_file = "{files / "tickets.key"}"

[routes.rules]
read = ["GET /v1/tickets"]
"""


def _serving(url: str, process: subprocess.Popen[bytes]) -> bool:
    if process.poll() is not None:
        return True
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def test_two_proxy_processes_share_one_port(pair: Pair, tmp_path: Path) -> None:
    """reuse_port: two ``gatepass proxy`` processes on one port, one proof once."""
    port = free_port()
    public = pair.public_url
    broker = pair.proxies[0].settings.broker
    upstream = pair.proxies[0].settings.routes[0].upstream.removesuffix("/api")
    files = tmp_path
    config = tmp_path / "proxy.toml"
    where = {"public": public, "broker": broker, "upstream": upstream}
    config.write_text(
        _proxy_toml(
            port, {**where, "redis": REDIS_URL}, files, f"gp-t:{uuid.uuid4().hex}:"
        )
    )
    url = f"http://127.0.0.1:{port}"
    processes = [
        subprocess.Popen(  # noqa: S603 - our own entry point
            [GATEPASS, "proxy", "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(2)
    ]
    try:
        for process in processes:
            assert poll(functools.partial(_serving, url, process), within=30.0)
        # Both bound the port: neither exited with "address already in use".
        assert [process.poll() for process in processes] == [None, None]
        path = "/tickets/v1/tickets"
        # The public URL is the pair's: these processes sit behind it too.
        headers = pair.token.headers("GET", public + path)

        def send(_: int) -> httpx.Response:
            with httpx.Client() as client:  # a connection each: spread by the kernel
                return client.get(url + path, headers=headers, timeout=10)

        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(send, range(4)))
        assert sorted(a.status_code for a in answers) == [200, 401, 401, 401]
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=15)
