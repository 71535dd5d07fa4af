"""
``gatepass demo``: walk through the quickstart as an agent would, step by step.

The tour loads the demo agent's identity, opens a task for the tickets target, reads
and writes tickets with short-lived tokens, closes the task, and shows that the old
token is refused. Each step prints its HTTP status and a short reason; no token is
ever printed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import httpx
from rich.console import Console
from rich.markup import escape

from gatepass.clock import Clock, SystemClock
from gatepass.config import Settings
from gatepass.demo.resource import demo_target
from gatepass.errors import GatepassError
from gatepass.sdk import AccessToken, AgentIdentity, GatepassClient

__all__ = ["run_tour"]


@dataclass(slots=True)
class _Narrator:
    console: Console
    clock: Clock
    surprises: list[str] = field(default_factory=list)
    step: int = 0

    def say(self, title: str) -> None:
        self.step += 1
        self.console.print(f"\n[bold cyan]{self.step}.[/] [bold]{escape(title)}[/]")

    def detail(self, text: str) -> None:
        self.console.print(f"   {escape(text)}")

    def token(self, token: AccessToken) -> None:
        seconds = int((token.expires_at - self.clock.now()).total_seconds())
        self.detail(
            f"lease {token.lease_id}, scope {token.scope!r}, expires in ~{seconds}s"
        )

    def outcome(self, response: httpx.Response, expected: int, reason: str) -> None:
        good = response.status_code == expected
        mark = "[green]✓[/]" if good else "[red]✗[/]"
        self.console.print(
            f"   {mark} [bold]{response.status_code}[/] {escape(reason)}"
        )
        if not good:
            self.surprises.append(
                f"step {self.step}: expected {expected}, got {response.status_code}"
            )


def _reason(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.reason_phrase
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return f"{body['error']}: {body.get('error_description', '')}"
    return response.reason_phrase


def _walk(
    narrator: _Narrator,
    identity_file: Path,
    settings: Settings,
    http: httpx.Client,
) -> None:
    target = demo_target(settings)
    tickets_url = target.uri.rstrip("/") + "/tickets"

    narrator.say(f"Load the demo agent's identity from {identity_file}")
    identity = AgentIdentity.load(identity_file)
    narrator.detail(f"agent {identity.agent_id}; its private key stays in memory")

    client = GatepassClient(
        identity, settings.server.issuer, http=http, clock=narrator.clock
    )
    narrator.say(f"Open a task for the {target.name} target ({target.uri})")
    with client.open_task(
        intent="triage new support tickets",
        purpose="support-triage",
        environment=target.environment,
        tenant=target.tenant,
        targets=[target.uri],
    ) as task:
        narrator.detail(
            f"task {task.id}, open until {task.expires_at:%H:%M:%S} UTC, "
            "bound to a fresh in-memory DPoP key"
        )

        narrator.say("Get a read-only access token")
        read = task.access_token(target.uri, "read")
        narrator.token(read)

        narrator.say("GET /tickets with the read token")
        response = http.get(tickets_url, auth=read.auth())
        count = len(response.json().get("items", [])) if response.is_success else 0
        narrator.outcome(response, 200, f"{count} ticket(s) listed")

        narrator.say("POST /tickets with the same read-only token")
        response = http.post(
            tickets_url, json={"title": "printer on fire"}, auth=read.auth()
        )
        narrator.outcome(response, 403, _reason(response))

        narrator.say("Get a write token and POST /tickets")
        write = task.access_token(target.uri, "write")
        narrator.token(write)
        response = http.post(
            tickets_url, json={"title": "printer on fire"}, auth=write.auth()
        )
        created = (
            f"ticket #{response.json()['id']} created"
            if response.is_success
            else _reason(response)
        )
        narrator.outcome(response, 201, created)

        narrator.say("Close the task")
    narrator.detail("the broker revoked every lease of the task")

    narrator.say("GET /tickets again with the old read token")
    response = http.get(tickets_url, auth=read.auth())
    narrator.outcome(response, 401, _reason(response))


def run_tour(
    settings: Settings,
    *,
    console: Console | None = None,
    http: httpx.Client | None = None,
    clock: Clock | None = None,
) -> None:
    """
    Walk through the quickstart against a running broker and demo resource server.

    Args:
        settings: the broker's settings (``gatepass serve --with-demo`` must run).
        console: where to print; standard output when omitted.
        http: the HTTP client for the broker and the resource server.
        clock: the time source.

    Raises:
        GatepassError: a step failed, or a status was not the one expected.
    """
    out = console or Console()
    narrator = _Narrator(console=out, clock=clock or SystemClock())
    identity_file = settings.server.state_dir / "demo-agent.json"
    client_http = http or httpx.Client(timeout=10.0, follow_redirects=False)
    try:
        _walk(narrator, identity_file, settings, client_http)
    except GatepassError as error:
        out.print(f"   [red]✗ {escape(error.code)}[/]: {escape(error.detail)}")
        raise
    finally:
        if http is None:
            client_http.close()
    if narrator.surprises:
        raise GatepassError(
            "the tour went off script: " + "; ".join(narrator.surprises)
        )
    out.print("\n[bold green]Tour complete:[/] every step behaved as expected.")
