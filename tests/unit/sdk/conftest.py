"""A fake broker behind httpx.MockTransport, checking the SDK's proofs for real."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from gatepass.clock import FrozenClock
from gatepass.errors import DPoPProofError
from gatepass.sdk import AgentIdentity, GatepassClient
from gatepass.tokens import (
    DPoPKey,
    DPoPVerifier,
    MemoryReplayCache,
    private_jwk,
)

BROKER = "https://broker.example"
TARGET = "https://api.example/"
AGENT_ID = "agt_" + "a" * 26
TASK_ID = "tsk_" + "b" * 26


@dataclass
class FakeBroker:
    """Answers discovery, token exchange and close like the real broker would."""

    clock: FrozenClock
    require_nonce: bool = False
    issuer: str = BROKER
    errors: list[tuple[int, Any]] = field(default_factory=list)
    close_status: int = 200
    requests: list[httpx.Request] = field(default_factory=list)
    issued: int = 0
    nonce: str = "nonce-1"

    def __post_init__(self) -> None:
        """Build the proof verifier."""
        self.dpop = DPoPVerifier(clock=self.clock, replay=MemoryReplayCache(self.clock))

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Route one request."""
        self.requests.append(request)
        path = request.url.path
        if path == "/.well-known/oauth-authorization-server":
            return httpx.Response(
                200,
                json={"issuer": self.issuer, "token_endpoint": f"{BROKER}/token"},
            )
        if self.errors:
            status, body = self.errors.pop(0)
            content = json.dumps(body).encode() if body is not None else b"<html>"
            return httpx.Response(status, content=content)
        proof = request.headers.get("dpop")
        if self.require_nonce and (proof is None or "nonce" not in _claims(proof)):
            return httpx.Response(
                400,
                json={"error": "use_dpop_nonce", "error_description": "nonce"},
                headers={"DPoP-Nonce": self.nonce},
            )
        try:
            if path == "/token":
                return self._token(request, proof)
            return self._close(request, proof)
        except DPoPProofError as error:
            return httpx.Response(
                400,
                json={"error": error.code, "error_description": error.detail},
            )

    def _token(self, request: httpx.Request, proof: str | None) -> httpx.Response:
        self.dpop.verify(proof, method="POST", url=f"{BROKER}/token")
        form = httpx.QueryParams(request.content.decode())
        delegation = _delegation_answer(form)
        if delegation is not None:
            return delegation
        if form["subject_token_type"].endswith(":jwt"):
            return httpx.Response(
                200,
                json={
                    "access_token": "task-token",
                    "token_type": "DPoP",
                    "expires_in": 900,
                    "task_id": TASK_ID,
                },
            )
        self.issued += 1
        return httpx.Response(
            200,
            json={
                "access_token": f"access-token-{self.issued}",
                "token_type": "DPoP",
                "expires_in": 300,
                "scope": form["scope"],
                "lease_id": f"lse_{self.issued}",
            },
        )

    def _close(self, request: httpx.Request, proof: str | None) -> httpx.Response:
        assert request.headers["authorization"] == "DPoP task-token"
        self.dpop.verify(
            proof,
            method="POST",
            url=str(request.url),
            access_token="task-token",
        )
        if self.close_status != 200:
            return httpx.Response(
                self.close_status,
                json={"error": "conflict", "error_description": "task is closed"},
            )
        return httpx.Response(200, json={"id": TASK_ID, "state": "closed"})

    def forms(self) -> list[httpx.QueryParams]:
        """Return the form bodies of the token requests."""
        return [
            httpx.QueryParams(r.content.decode())
            for r in self.requests
            if r.url.path == "/token"
        ]


CHILD_TASK_ID = "tsk_" + "c" * 26


def _delegation_answer(form: httpx.QueryParams) -> httpx.Response | None:
    """Answer a delegation grant or its acceptance; None for other exchanges."""
    if form.get("requested_token_type", "").endswith(":delegation"):
        [sub_task] = json.loads(form["authorization_details"])
        return httpx.Response(
            200,
            json={
                "access_token": "delegation-token",
                "issued_token_type": form["requested_token_type"],
                "token_type": "N_A",
                "expires_in": 120,
                "authorization_details": [
                    {
                        **sub_task,
                        "max_ttl_seconds": sub_task.get("max_ttl_seconds", 600),
                    }
                ],
            },
        )
    if form["subject_token_type"].endswith(":delegation"):
        return httpx.Response(
            200,
            json={
                "access_token": "child-task-token",
                "token_type": "DPoP",
                "expires_in": 300,
                "task_id": CHILD_TASK_ID,
                "parent_task_id": TASK_ID,
                "authorization_details": [
                    {"type": "agent_task", "environment": "dev", "targets": ["db"]}
                ],
            },
        )
    return None


def _claims(proof: str) -> dict[str, Any]:
    import jwt  # noqa: PLC0415 - only the fake needs it

    claims: dict[str, Any] = jwt.decode(proof, options={"verify_signature": False})
    return claims


ClientFactory = Callable[..., GatepassClient]


@pytest.fixture
def clock() -> FrozenClock:
    """A clock that moves only when told to."""
    return FrozenClock()


@pytest.fixture
def broker(clock: FrozenClock) -> FakeBroker:
    """The fake broker."""
    return FakeBroker(clock=clock)


@pytest.fixture
def identity() -> AgentIdentity:
    """A fresh agent identity."""
    key = DPoPKey.generate()
    return AgentIdentity(AGENT_ID, private_jwk(key.private_key), BROKER)


@pytest.fixture
def client(
    broker: FakeBroker, identity: AgentIdentity, clock: FrozenClock
) -> GatepassClient:
    """An SDK client talking to the fake broker."""
    http = httpx.Client(transport=httpx.MockTransport(broker.handle))
    return GatepassClient(identity, http=http, clock=clock)


def open_task(client: GatepassClient) -> Any:
    """Open a task on the fake broker's one target."""
    return client.open_task(
        intent="triage", purpose="support-triage", environment="dev", targets=[TARGET]
    )
