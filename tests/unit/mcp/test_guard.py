"""The MCP guard in-process: token, per-tool scopes, routing headers, identity."""

from __future__ import annotations

import json
from typing import Any

import anyio
import httpx
import pytest

from gatepass.clock import FrozenClock
from gatepass.errors import ConfigurationError, TokenError
from gatepass.mcp import MCPGuard, current_access, protect
from gatepass.sdk import read_challenge
from gatepass.tokens import DPoPKey, KeyRing
from gatepass.verify import ResourceVerifier

from .conftest import ISSUER, RESOURCE, TOOL_SCOPES, RecordingApp, TokenFactory


def tool_call(name: str) -> bytes:
    """A tools/call body."""
    return json.dumps(
        {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": name}}
    ).encode()


def post(
    guard: MCPGuard,
    body: bytes,
    *,
    token: str | None = None,
    key: DPoPKey | None = None,
    clock: FrozenClock | None = None,
    extra: dict[str, str] | None = None,
    url: str = RESOURCE,
) -> httpx.Response:
    """POST a body through the guard in-process, presenting a token if given."""
    headers = dict(extra or {})
    if token is not None and key is not None and clock is not None:
        headers["Authorization"] = f"DPoP {token}"
        headers["DPoP"] = key.proof("POST", url, access_token=token, now=clock.now())

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=guard)
        async with httpx.AsyncClient(transport=transport) as client:
            return await client.post(url, content=body, headers=headers)

    return anyio.run(go)


class TestToolScopes:
    """Per-tool scopes on every tools/call."""

    def test_read_tool_with_a_read_token(
        self,
        guard: MCPGuard,
        inner: RecordingApp,
        make_token: TokenFactory,
        dpop_key: DPoPKey,
        clock: FrozenClock,
    ) -> None:
        """The call reaches the server with its body intact and the agent known."""
        body = tool_call("list_notes")
        response = post(guard, body, token=make_token(), key=dpop_key, clock=clock)
        assert response.status_code == 200
        assert inner.seen[0]["body"] == body
        assert inner.seen[0]["agent"] == "agt_demo"

    def test_issue12_write_tool_names_the_missing_scope(
        self,
        guard: MCPGuard,
        inner: RecordingApp,
        make_token: TokenFactory,
        dpop_key: DPoPKey,
        clock: FrozenClock,
    ) -> None:
        """A read token calling the write tool: 403, scope="write", no call made."""
        response = post(
            guard, tool_call("add_note"), token=make_token(), key=dpop_key, clock=clock
        )
        assert response.status_code == 403
        challenge = read_challenge(response.headers["www-authenticate"])
        assert challenge.error == "insufficient_scope"
        assert challenge.scopes == {"write"}
        assert challenge.resource_metadata == (
            "https://mcp.example/.well-known/oauth-protected-resource/mcp"
        )
        assert inner.seen == []

    def test_batch_with_one_forbidden_call_is_refused_whole(
        self,
        guard: MCPGuard,
        inner: RecordingApp,
        make_token: TokenFactory,
        dpop_key: DPoPKey,
        clock: FrozenClock,
    ) -> None:
        """A batch cannot smuggle a write call behind a read call."""
        batch = json.dumps(
            [json.loads(tool_call("list_notes")), json.loads(tool_call("add_note"))]
        ).encode()
        response = post(guard, batch, token=make_token(), key=dpop_key, clock=clock)
        assert response.status_code == 403
        assert inner.seen == []

    def test_unmapped_tool_is_denied(
        self,
        guard: MCPGuard,
        make_token: TokenFactory,
        dpop_key: DPoPKey,
        clock: FrozenClock,
    ) -> None:
        """Deny by default: no mapping, no call, whatever the scope."""
        token = make_token("read write admin")
        response = post(
            guard, tool_call("rm_rf"), token=token, key=dpop_key, clock=clock
        )
        assert response.status_code == 403
        assert response.json()["error"] == "access_denied"

    def test_base_scope_is_needed_for_everything(
        self,
        guard: MCPGuard,
        make_token: TokenFactory,
        dpop_key: DPoPKey,
        clock: FrozenClock,
    ) -> None:
        """A write-only token may not even list tools when read is the base."""
        listing = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
        response = post(
            guard,
            listing.encode(),
            token=make_token("write"),
            key=dpop_key,
            clock=clock,
        )
        assert response.status_code == 403
        assert read_challenge(response.headers["www-authenticate"]).scopes == {"read"}

    def test_no_token_names_the_base_scope(self, guard: MCPGuard) -> None:
        """The first 401 says what to ask for, and where the metadata is."""
        response = post(guard, tool_call("list_notes"))
        assert response.status_code == 401
        challenge = read_challenge(response.headers["www-authenticate"])
        assert challenge.error is None
        assert challenge.scopes == {"read"}


class TestRequests:
    """Bodies and headers the guard refuses before the server sees them."""

    def test_issue12_mismatching_headers(
        self,
        guard: MCPGuard,
        inner: RecordingApp,
        make_token: TokenFactory,
        dpop_key: DPoPKey,
        clock: FrozenClock,
    ) -> None:
        """Mcp-Name for the read tool on a write call: 400, JSON-RPC -32020."""
        response = post(
            guard,
            tool_call("add_note"),
            token=make_token("read write"),
            key=dpop_key,
            clock=clock,
            extra={"Mcp-Method": "tools/call", "Mcp-Name": "list_notes"},
        )
        assert response.status_code == 400
        assert response.json()["error"]["code"] == -32020
        assert inner.seen == []

    def test_unparsable_body(
        self,
        guard: MCPGuard,
        make_token: TokenFactory,
        dpop_key: DPoPKey,
        clock: FrozenClock,
    ) -> None:
        """Not JSON: a JSON-RPC parse error."""
        response = post(guard, b"{", token=make_token(), key=dpop_key, clock=clock)
        assert response.status_code == 400
        assert response.json()["error"]["code"] == -32700

    def test_body_too_large(
        self,
        ring: KeyRing,
        clock: FrozenClock,
        inner: RecordingApp,
        make_token: TokenFactory,
        dpop_key: DPoPKey,
    ) -> None:
        """A body over the limit is refused with 413."""
        verifier = ResourceVerifier(
            issuer=ISSUER, audience=RESOURCE, key_source=ring, clock=clock
        )
        small = MCPGuard(inner, verifier, tool_scopes=TOOL_SCOPES, max_body=64)
        response = post(
            small, b"x" * 200, token=make_token(), key=dpop_key, clock=clock
        )
        assert response.status_code == 413

    def test_other_paths_need_a_token_but_no_body_check(
        self,
        guard: MCPGuard,
        inner: RecordingApp,
        make_token: TokenFactory,
        dpop_key: DPoPKey,
        clock: FrozenClock,
    ) -> None:
        """Outside the MCP path the token is checked and the body passed as is."""
        url = "https://mcp.example/other"
        assert post(guard, b"raw", url=url).status_code == 401
        response = post(
            guard, b"raw", token=make_token(), key=dpop_key, clock=clock, url=url
        )
        assert response.status_code == 200
        assert inner.seen[0]["body"] == b"raw"


class TestIdentity:
    """What tool handlers learn about the caller."""

    def test_sdk_user_is_set(
        self,
        guard: MCPGuard,
        inner: RecordingApp,
        make_token: TokenFactory,
        dpop_key: DPoPKey,
        clock: FrozenClock,
    ) -> None:
        """The SDK's AuthenticatedUser carries the agent, never the token."""
        token = make_token()
        post(guard, tool_call("list_notes"), token=token, key=dpop_key, clock=clock)
        user: Any = inner.seen[0]["user"]
        assert user.access_token.client_id == "agt_demo"
        assert user.access_token.token == "lease-1"
        assert user.access_token.claims["txn"] == "tsk_demo"
        assert token not in repr(user.access_token)

    def test_current_access_from_context_like_objects(self) -> None:
        """current_access walks ctx.request_context.request.scope."""

        class Request:
            def __init__(self) -> None:
                self.scope: dict[str, Any] = {"state": {}}

        class RequestContext:
            request = Request()

        class Context:
            request_context = RequestContext()

        with pytest.raises(TokenError):
            current_access(Context())
        with pytest.raises(TokenError):
            current_access(object())


class TestConfiguration:
    """Building a guard."""

    def test_tool_must_map_to_one_action(
        self, ring: KeyRing, inner: RecordingApp
    ) -> None:
        """A mapping to several actions, or to none, is refused."""
        verifier = ResourceVerifier(issuer=ISSUER, audience=RESOURCE, key_source=ring)
        for scopes in ({"a": "read write"}, {"a": ""}, {"": "read"}):
            with pytest.raises(ConfigurationError):
                MCPGuard(inner, verifier, tool_scopes=scopes)

    def test_protect_builds_the_sdk_app(self, ring: KeyRing) -> None:
        """protect() takes an MCPServer and builds its streamable-HTTP app."""
        from mcp.server import MCPServer  # noqa: PLC0415 - heavy, only here

        verifier = ResourceVerifier(issuer=ISSUER, audience=RESOURCE, key_source=ring)
        guard = protect(MCPServer("t"), verifier, tool_scopes=TOOL_SCOPES)
        assert isinstance(guard, MCPGuard)
        assert "list_notes" in repr(guard)
