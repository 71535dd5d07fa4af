"""
Real servers on 127.0.0.1 for HTTP tests.

``start_server`` runs any ASGI app under uvicorn in a background thread on a free
port and waits (polling with a deadline) until it accepts connections.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from gatepass.api import create_app
from gatepass.broker import Runtime, build_runtime
from gatepass.config import Settings

REPO = Path(__file__).resolve().parents[2]
QUICKSTART_POLICIES = REPO / "examples" / "quickstart" / "policies"


def free_port() -> int:
    """Return a port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningServer:
    """A uvicorn server in a thread."""

    server: uvicorn.Server
    thread: threading.Thread
    url: str

    def stop(self) -> None:
        """Ask the server to exit and wait for its thread."""
        self.server.should_exit = True
        self.thread.join(timeout=10)


def start_server(app: Any, port: int, **options: Any) -> RunningServer:
    """
    Start ``app`` on 127.0.0.1:``port`` and wait until it is serving.

    ``options`` are more uvicorn options (TLS, say); with ``ssl_certfile`` the URL
    is ``https``.
    """
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_config=None,
        access_log=False,
        lifespan="on",
        **options,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            msg = f"server on port {port} did not start"
            raise RuntimeError(msg)
        thread.join(timeout=0.02)
    scheme = "https" if "ssl_certfile" in options else "http"
    return RunningServer(
        server=server, thread=thread, url=f"{scheme}://127.0.0.1:{port}"
    )


def quickstart_settings(
    state_dir: Path, *, port: int, resource_port: int, **overrides: Any
) -> Settings:
    """Return quickstart-like settings for a broker on ``port``."""
    raw: dict[str, Any] = {
        "server": {
            "issuer": f"http://127.0.0.1:{port}",
            "port": port,
            "state_dir": str(state_dir),
        },
        "policy": {"directory": str(QUICKSTART_POLICIES), "reload_interval_seconds": 0},
        "targets": [
            {
                "name": "tickets",
                "uri": f"http://127.0.0.1:{resource_port}/",
                "environment": "dev",
                "tenant": "acme",
                "risk": "low",
                "actions": ["read", "write"],
                "max_ttl_seconds": 600,
            },
            {
                "name": "tickets-prod",
                "uri": "https://tickets.example.internal/",
                "environment": "prod",
                "tenant": "acme",
                "risk": "high",
                "actions": ["read", "write", "admin"],
                "max_ttl_seconds": 300,
            },
            {
                "name": "bastion",
                "uri": "ssh://bastion.example.internal/",
                "kind": "ssh",
                "environment": "dev",
                "tenant": "acme",
                "risk": "low",
                "actions": ["read"],
                "max_ttl_seconds": 600,
                "engine": {"principals": {"read": ["readonly"]}},
            },
            {
                "name": "globex-dev",
                "uri": "https://globex.example.internal/",
                "environment": "dev",
                "tenant": "globex",
                "risk": "low",
                "actions": ["read"],
            },
        ],
        "demo": {
            "enabled": True,
            "tenant": "acme",
            "labels": {"team": "support"},
            "resource_port": resource_port,
        },
    }
    for section, values in overrides.items():
        raw.setdefault(section, {}).update(values)
    return Settings.model_validate(raw)


@dataclass
class LiveBroker:
    """A broker served over HTTP, with the quickstart's secrets at hand."""

    url: str
    runtime: Runtime
    state_dir: Path

    @property
    def admin_token(self) -> str:
        """Return the bootstrap admin token."""
        return (self.state_dir / "admin.token").read_text().strip()

    @property
    def introspect_token(self) -> str:
        """Return the bootstrap introspection token."""
        return (self.state_dir / "introspect.token").read_text().strip()

    @property
    def demo_identity(self) -> dict[str, Any]:
        """Return the demo agent's identity file."""
        data: dict[str, Any] = json.loads(
            (self.state_dir / "demo-agent.json").read_text()
        )
        return data


@pytest.fixture(scope="module")
def live_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveBroker]:
    """A quickstart broker on a free port, shared by the tests of a module."""
    state_dir = tmp_path_factory.mktemp("broker") / "state"
    port = free_port()
    settings = quickstart_settings(state_dir, port=port, resource_port=free_port())
    runtime = build_runtime(settings)
    running = start_server(create_app(runtime, background_jobs=False), port)
    try:
        yield LiveBroker(url=running.url, runtime=runtime, state_dir=state_dir)
    finally:
        running.stop()
        runtime.database.dispose()
