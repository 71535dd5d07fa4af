"""Fixtures for the MCP guard: keys, tokens, and a recording app behind the guard."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from cryptography.fernet import Fernet

from gatepass.clock import FrozenClock, to_epoch
from gatepass.mcp import MCPGuard
from gatepass.sealing import Sealer
from gatepass.tokens import DPoPKey, JWTIssuer, KeyRing, rotate
from gatepass.verify import Receive, ResourceVerifier, Scope, Send, verified_access

ISSUER = "https://broker.example"
RESOURCE = "https://mcp.example/mcp"
TOOL_SCOPES = {"list_notes": "read", "add_note": "write"}

TokenFactory = Callable[..., str]


@dataclass
class RecordingApp:
    """Stands for the MCP SDK: records what reached it and answers 200."""

    seen: list[dict[str, Any]] = field(default_factory=list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Read the whole body, record it with the verified agent, answer."""
        if scope["type"] != "http":
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        self.seen.append(
            {
                "body": b"".join(chunks),
                "agent": verified_access(scope).agent_id,
                "user": scope.get("user"),
            }
        )
        payload = json.dumps({"jsonrpc": "2.0", "id": 1, "result": {}}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": payload})


@pytest.fixture
def clock() -> FrozenClock:
    """A clock that moves only when told to."""
    return FrozenClock()


@pytest.fixture
def ring(clock: FrozenClock) -> KeyRing:
    """A fresh ES256 key ring."""
    sealer = Sealer([Fernet.generate_key()])
    records = rotate(
        [],
        algorithm="ES256",
        sealer=sealer,
        now=clock.now(),
        retire_after=dt.timedelta(hours=1),
    )
    return KeyRing(records, sealer)


@pytest.fixture
def dpop_key() -> DPoPKey:
    """The agent's task key."""
    return DPoPKey.generate()


@pytest.fixture
def make_token(ring: KeyRing, clock: FrozenClock, dpop_key: DPoPKey) -> TokenFactory:
    """Sign an access token for the MCP server with the given scope."""
    signer = JWTIssuer(ring, issuer=ISSUER)

    def build(scope: str = "read", **overrides: Any) -> str:
        now = to_epoch(clock.now())
        claims: dict[str, Any] = {
            "sub": "agt_demo",
            "aud": RESOURCE,
            "client_id": "agt_demo",
            "iat": now,
            "exp": now + 300,
            "jti": "lease-1",
            "scope": scope,
            "txn": "tsk_demo",
            "cnf": {"jkt": dpop_key.jkt},
            **overrides,
        }
        return signer.sign(claims, typ="at+jwt")

    return build


@pytest.fixture
def inner() -> RecordingApp:
    """The app behind the guard."""
    return RecordingApp()


@pytest.fixture
def guard(ring: KeyRing, clock: FrozenClock, inner: RecordingApp) -> MCPGuard:
    """The guard around the recording app, read needed on every request."""
    verifier = ResourceVerifier(
        issuer=ISSUER, audience=RESOURCE, key_source=ring, clock=clock
    )
    return MCPGuard(inner, verifier, tool_scopes=TOOL_SCOPES, base_scope="read")
