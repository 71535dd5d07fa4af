"""
The SDK against a real broker and the demo resource server, over HTTP on 127.0.0.1.

Both servers run in background threads (uvicorn on pre-bound sockets, so there is
no port race); the SDK, the verifier middleware and the broker meet only over HTTP.
"""

from __future__ import annotations

import io
import socket
import threading
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from rich.console import Console

from gatepass.api import create_app
from gatepass.broker import build_runtime
from gatepass.clock import SystemClock
from gatepass.config import Settings
from gatepass.demo import create_resource_app, run_tour
from gatepass.errors import (
    AccessDeniedError,
    ApprovalPendingError,
    InvalidGrantError,
    InvalidScopeError,
    InvalidTargetError,
)
from gatepass.sdk import AgentIdentity, GatepassClient

pytestmark = pytest.mark.slow

REPOSITORY = Path(__file__).resolve().parents[2]
QUICKSTART = REPOSITORY / "examples" / "quickstart"
READY_DEADLINE_SECONDS = 20.0


def _listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


@dataclass
class Served:
    """One uvicorn server running in a background thread."""

    server: uvicorn.Server
    thread: threading.Thread
    sock: socket.socket

    def stop(self) -> None:
        """Ask the server to exit and wait for its thread."""
        self.server.should_exit = True
        self.thread.join(timeout=15)
        self.sock.close()


def _serve(app: Any, sock: socket.socket) -> Served:
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, daemon=True
    )
    thread.start()
    return Served(server=server, thread=thread, sock=sock)


def _wait_until_ready(url: str, served: Served) -> None:
    """Poll url until 200; the bound socket queues connections until uvicorn runs."""
    clock = SystemClock()
    deadline = clock.now().timestamp() + READY_DEADLINE_SECONDS
    with httpx.Client(timeout=READY_DEADLINE_SECONDS) as client:
        while clock.now().timestamp() < deadline:
            if not served.thread.is_alive():
                pytest.fail(f"server for {url} stopped during start")
            try:
                if client.get(url).status_code == 200:
                    return
            except httpx.TransportError:
                continue
    pytest.fail(f"{url} was not ready within {READY_DEADLINE_SECONDS}s")


@dataclass
class Stack:
    """A broker and the demo resource server, both live."""

    settings: Settings
    issuer: str
    tickets_uri: str

    @property
    def tickets_url(self) -> str:
        """Return the tickets collection URL."""
        return self.tickets_uri + "tickets"

    def identity(self) -> AgentIdentity:
        """Return the demo agent the broker wrote on first start."""
        return AgentIdentity.load(self.settings.server.state_dir / "demo-agent.json")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Start a broker and the demo resource server on free ports."""
    broker_sock = _listening_socket()
    resource_sock = _listening_socket()
    issuer = f"http://127.0.0.1:{broker_sock.getsockname()[1]}"
    resource_port = resource_sock.getsockname()[1]
    tickets_uri = f"http://127.0.0.1:{resource_port}/"
    raw = tomllib.loads((QUICKSTART / "gatepass.toml").read_text(encoding="utf-8"))
    raw["server"].update(
        issuer=issuer,
        port=broker_sock.getsockname()[1],
        state_dir=str(tmp_path_factory.mktemp("state")),
    )
    raw["policy"]["directory"] = str(QUICKSTART / "policies")
    raw["targets"][0]["uri"] = tickets_uri
    raw["demo"]["resource_port"] = resource_port
    settings = Settings.model_validate(raw)
    broker = _serve(create_app(build_runtime(settings)), broker_sock)
    resource: Served | None = None
    try:
        _wait_until_ready(f"{issuer}/readyz", broker)
        resource = _serve(create_resource_app(settings), resource_sock)
        _wait_until_ready(tickets_uri, resource)
        yield Stack(settings=settings, issuer=issuer, tickets_uri=tickets_uri)
    finally:
        if resource is not None:
            resource.stop()
        broker.stop()


@pytest.fixture
def client(stack: Stack) -> Iterator[GatepassClient]:
    """An SDK client for the demo agent."""
    with GatepassClient(stack.identity()) as sdk:
        yield sdk


def open_triage(client: GatepassClient, stack: Stack) -> Any:
    """Open the quickstart's triage task on the tickets target."""
    return client.open_task(
        intent="triage new support tickets",
        purpose="support-triage",
        environment="dev",
        targets=[stack.tickets_uri],
    )


class TestSDKFlow:
    """An agent's whole task, end to end."""

    def test_task_lifecycle(self, client: GatepassClient, stack: Stack) -> None:
        """Read, be refused a write, write, close, and the old token dies."""
        with httpx.Client(timeout=10) as http:
            with open_triage(client, stack) as task:
                read = task.access_token(stack.tickets_uri, "read")
                assert task.access_token(stack.tickets_uri, ["read"]) is read
                listed = http.get(stack.tickets_url, auth=read.auth())
                assert listed.status_code == 200
                assert listed.json() == {"items": []} or "items" in listed.json()

                refused = http.post(
                    stack.tickets_url, json={"title": "x"}, auth=read.auth()
                )
                assert refused.status_code == 403
                assert refused.json()["error"] == "insufficient_scope"

                write = task.access_token(stack.tickets_uri, "write")
                created = http.post(
                    stack.tickets_url, json={"title": "printer"}, auth=write.auth()
                )
                assert created.status_code == 201
                assert created.json()["task_id"] == task.id
            assert task.closed
            after = http.get(stack.tickets_url, auth=read.auth())
            assert after.status_code == 401
            assert after.json()["error"] == "invalid_token"
            assert "DPoP" in after.headers["www-authenticate"]

    def test_headers_work_without_httpx_auth(
        self, client: GatepassClient, stack: Stack
    ) -> None:
        """headers() gives a request the two headers it needs."""
        with httpx.Client(timeout=10) as http, open_triage(client, stack) as task:
            token = task.access_token(stack.tickets_uri, "read")
            response = http.get(
                stack.tickets_url, headers=token.headers("GET", stack.tickets_url)
            )
            assert response.status_code == 200

    def test_task_closes_when_the_block_raises(
        self, client: GatepassClient, stack: Stack
    ) -> None:
        """An exception in the block still closes the task, and propagates."""
        task = open_triage(client, stack)
        with pytest.raises(RuntimeError, match="agent crashed"), task:
            raise RuntimeError("agent crashed")
        assert task.closed
        with pytest.raises(InvalidGrantError):
            task.access_token(stack.tickets_uri, "read")

    def test_closing_twice_is_fine(self, client: GatepassClient, stack: Stack) -> None:
        """A second close is a no-op."""
        task = open_triage(client, stack)
        task.close()
        task.close()
        assert task.closed


class TestSDKErrors:
    """Broker refusals come back as gatepass errors."""

    def test_unknown_target_is_invalid_target(self, client: GatepassClient) -> None:
        """A target the broker does not know raises InvalidTargetError."""
        with pytest.raises(InvalidTargetError):
            client.open_task(
                intent="x",
                purpose="support-triage",
                environment="dev",
                targets=["https://unknown.example/"],
            )

    def test_other_tenant_is_access_denied(
        self, client: GatepassClient, stack: Stack
    ) -> None:
        """A task in another tenant is denied by policy."""
        with pytest.raises(AccessDeniedError, match="policy denied"):
            client.open_task(
                intent="x",
                purpose="support-triage",
                environment="dev",
                tenant="globex",
                targets=[stack.tickets_uri],
            )

    def test_issue9_prod_write_waits_for_approval(self, client: GatepassClient) -> None:
        """A prod write needs an approver: the SDK raises the pending answer."""
        prod = "https://tickets.example.internal/"
        task = client.open_task(
            intent="x",
            purpose="support-triage",
            environment="prod",
            targets=[prod],
        )
        with task, pytest.raises(ApprovalPendingError) as waiting:
            task.access_token(prod, "write")
        assert waiting.value.approval_id.startswith("apr_")
        assert waiting.value.interval > 0

    def test_action_the_target_lacks_is_invalid_scope(
        self, client: GatepassClient, stack: Stack
    ) -> None:
        """An action the target does not offer raises InvalidScopeError."""
        with open_triage(client, stack) as task, pytest.raises(InvalidScopeError):
            task.access_token(stack.tickets_uri, "delete")


class TestTour:
    """The `gatepass demo` tour."""

    def test_tour_runs_and_prints_no_token(self, stack: Stack) -> None:
        """The tour completes against live servers and never prints a token."""
        output = io.StringIO()
        run_tour(stack.settings, console=Console(file=output, width=200))
        text = output.getvalue()
        assert "Tour complete" in text
        for status in ("200", "403", "201", "401"):
            assert status in text
        assert "eyJ" not in text
