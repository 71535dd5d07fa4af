"""
The example MCP server behind gatepass, with the official ``mcp`` client, over HTTP.

A quickstart broker, the notes MCP server of ``examples/mcp/server.py`` and the
agent all meet on 127.0.0.1 only: the official ``mcp`` ``Client`` over its
streamable-HTTP transport, with :class:`gatepass.mcp.MCPAuth` as its auth hook.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import httpx
import jwt
import pytest
from mcp.shared.exceptions import MCPError

from gatepass.api import create_app
from gatepass.broker import Runtime, build_runtime
from gatepass.config import Settings
from gatepass.errors import AccessDeniedError, InvalidGrantError
from gatepass.mcp import MCPAuth, MCPGuard, connect
from gatepass.sdk import AgentIdentity, GatepassClient, Task, read_challenge
from gatepass.tokens import DPoPKey

from .conftest import RunningServer, free_port, quickstart_settings, start_server
from .deadline import poll

pytestmark = pytest.mark.slow

REPOSITORY = Path(__file__).resolve().parents[2]
EXAMPLE = REPOSITORY / "examples" / "mcp" / "server.py"


def load_example() -> ModuleType:
    """Import examples/mcp/server.py, the server `make run` starts."""
    spec = importlib.util.spec_from_file_location("gatepass_mcp_example", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class Stack:
    """A broker and the notes MCP server, both served on 127.0.0.1."""

    broker_url: str
    mcp_url: str
    tickets_url: str
    runtime: Runtime
    state_dir: Path
    guard: MCPGuard

    def identity(self) -> AgentIdentity:
        """Return the demo agent's identity."""
        return AgentIdentity.load(self.state_dir / "demo-agent.json")

    def open_task(self, client: GatepassClient, purpose: str) -> Task:
        """Open a task on the notes server (and the tickets API) for a purpose."""
        return client.open_task(
            intent="work with the team's notes",
            purpose=purpose,
            environment="dev",
            targets=[self.mcp_url, self.tickets_url],
        )


def _settings(state_dir: Path, port: int, mcp_port: int) -> Settings:
    base = quickstart_settings(state_dir, port=port, resource_port=free_port())
    raw = base.model_dump(mode="json")
    raw["targets"].append(
        {
            "name": "notes-mcp",
            "uri": f"http://127.0.0.1:{mcp_port}/mcp",
            "environment": "dev",
            "tenant": "acme",
            "risk": "low",
            "actions": ["read", "write"],
            "max_ttl_seconds": 600,
        }
    )
    return Settings.model_validate(raw)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The broker and the example MCP server, for the tests of this module."""
    state_dir = tmp_path_factory.mktemp("mcp") / "state"
    port, mcp_port = free_port(), free_port()
    settings = _settings(state_dir, port, mcp_port)
    runtime = build_runtime(settings)
    servers: list[RunningServer] = []
    try:
        servers.append(start_server(create_app(runtime, background_jobs=False), port))
        mcp_url = f"http://127.0.0.1:{mcp_port}/mcp"
        guard = load_example().create_app(
            issuer=settings.server.issuer,
            resource=mcp_url,
            token_file=state_dir / "introspect.token",
        )
        servers.append(start_server(guard, mcp_port))
        tickets = next(t for t in settings.targets if t.name == "tickets")
        yield Stack(
            broker_url=settings.server.issuer,
            mcp_url=mcp_url,
            tickets_url=tickets.uri,
            runtime=runtime,
            state_dir=state_dir,
            guard=guard,
        )
    finally:
        for server in reversed(servers):
            server.stop()
        runtime.database.dispose()


@pytest.fixture
def client(stack: Stack) -> Iterator[GatepassClient]:
    """The demo agent's connection to the broker."""
    with GatepassClient(stack.identity()) as agent:
        yield agent


def call_tool_body(name: str, arguments: dict[str, Any] | None = None) -> bytes:
    """A JSON-RPC tools/call body."""
    return json.dumps(
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {"name": name, "arguments": arguments or {}},
        }
    ).encode()


def post_raw(
    url: str, body: bytes, headers: dict[str, str] | None = None
) -> httpx.Response:
    """POST a body to the MCP endpoint with the given headers, no auth hook."""
    sent = {
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        **(headers or {}),
    }
    return httpx.post(url, content=body, headers=sent, timeout=10.0)


async def _call(
    task: Task,
    url: str,
    auth: MCPAuth,
    tool: str,
    arguments: dict[str, Any] | None = None,
) -> Any:
    async with connect(task, url, auth=auth) as mcp:
        return await mcp.call_tool(tool, arguments or {})


class TestDiscovery:
    """RFC 9728: a client that knows only the URL finds out the rest."""

    def test_401_names_the_metadata_and_the_first_scope(self, stack: Stack) -> None:
        """A request without a token is a DPoP challenge with resource_metadata."""
        response = post_raw(stack.mcp_url, call_tool_body("list_notes"))
        assert response.status_code == 401
        challenge = read_challenge(response.headers["www-authenticate"])
        assert challenge.scheme == "dpop"
        assert challenge.error is None
        assert challenge.scopes == {"read"}
        port = stack.mcp_url.split(":")[2].split("/")[0]
        assert challenge.resource_metadata == (
            f"http://127.0.0.1:{port}/.well-known/oauth-protected-resource/mcp"
        )

    def test_metadata_describes_the_resource(self, stack: Stack) -> None:
        """The document names the resource, the broker and the DPoP requirement."""
        response = httpx.get(
            stack.mcp_url.replace("/mcp", "/.well-known/oauth-protected-resource/mcp")
        )
        assert response.status_code == 200
        document = response.json()
        assert document["resource"] == stack.mcp_url
        assert document["authorization_servers"] == [stack.broker_url]
        assert document["dpop_bound_access_tokens_required"] is True
        assert document["bearer_methods_supported"] == ["header"]
        assert set(document["scopes_supported"]) == {"read", "write"}
        assert "ES256" in document["dpop_signing_alg_values_supported"]

    def test_official_client_discovers_and_reads(
        self, stack: Stack, client: GatepassClient
    ) -> None:
        """The mcp Client, told nothing but the URL, calls the read tool."""
        with stack.open_task(client, "notes-review") as task:
            auth = MCPAuth(task)
            result = anyio.run(_call, task, stack.mcp_url, auth, "list_notes")
            assert not result.is_error
            assert auth.resource == stack.mcp_url
            assert auth.scopes == {"read"}
            # Other tests of the module may have added notes: a list, read for us.
            notes = (result.structured_content or {})["result"]
            agent = stack.identity().agent_id
            assert all(note["read_by"] == agent for note in notes)


class TestToolScopes:
    """Per-tool scopes, step-up, and the end of a task."""

    def test_issue12_write_tool_refused_naming_the_scope(
        self, stack: Stack, client: GatepassClient
    ) -> None:
        """A read token calling the write tool gets 403 insufficient_scope write."""
        with stack.open_task(client, "notes-review") as task:
            token = task.access_token(stack.mcp_url, "read")
            response = post_raw(
                stack.mcp_url,
                call_tool_body("add_note", {"title": "t", "text": "x"}),
                token.headers("POST", stack.mcp_url),
            )
        assert response.status_code == 403
        challenge = read_challenge(response.headers["www-authenticate"])
        assert challenge.error == "insufficient_scope"
        assert challenge.scopes == {"write"}
        assert challenge.resource_metadata is not None

    def test_issue12_step_up_denied_by_policy_is_refused(
        self, stack: Stack, client: GatepassClient
    ) -> None:
        """A notes-review task asks for write, the policy says no, the call fails."""
        with stack.open_task(client, "notes-review") as task:
            auth = MCPAuth(task, scopes=["read"])

            async def go() -> None:
                async with connect(task, stack.mcp_url, auth=auth) as mcp:
                    with pytest.raises(MCPError):
                        await mcp.call_tool("add_note", {"title": "t", "text": "x"})
                    # The session survives the refusal: reads still work.
                    listed = await mcp.call_tool("list_notes", {})
                    assert not listed.is_error

            anyio.run(go)
        assert isinstance(auth.last_error, AccessDeniedError)
        assert auth.scopes == {"read"}

    def test_issue12_step_up_granted_where_policy_allows(
        self, stack: Stack, client: GatepassClient
    ) -> None:
        """A support-triage task steps up from read to read+write and writes."""
        with stack.open_task(client, "support-triage") as task:
            auth = MCPAuth(task, scopes=["read"])
            result = anyio.run(
                _call,
                task,
                stack.mcp_url,
                auth,
                "add_note",
                {"title": "t", "text": "x"},
            )
            assert not result.is_error
            note = result.structured_content
            assert note is not None
            assert note["agent"] == stack.identity().agent_id
            assert note["task"] == task.id
            assert auth.scopes == {"read", "write"}

    def test_issue12_refused_after_the_task_closes(
        self, stack: Stack, client: GatepassClient
    ) -> None:
        """Closing the task cuts the agent off, on the open MCP session too."""
        task = stack.open_task(client, "notes-review")
        auth = MCPAuth(task, scopes=["read"])

        async def go() -> None:
            async with connect(task, stack.mcp_url, auth=auth) as mcp:
                assert not (await mcp.call_tool("list_notes", {})).is_error
                await anyio.to_thread.run_sync(task.close)
                with pytest.raises(MCPError):
                    await mcp.call_tool("list_notes", {})

        anyio.run(go)
        assert isinstance(auth.last_error, InvalidGrantError)

    def test_revocation_arrives_by_the_push_stream(
        self, stack: Stack, client: GatepassClient
    ) -> None:
        """A closed task's token is refused without introspecting each request."""
        feed = stack.guard.verifier.revocations
        assert feed is not None
        assert poll(lambda: feed.healthy, within=10)
        with stack.open_task(client, "notes-review") as task:
            token = task.access_token(stack.mcp_url, "read")
            headers = token.headers("POST", stack.mcp_url)
        assert poll(lambda: feed.is_revoked(_jti(token.value.reveal())), within=10)
        response = post_raw(stack.mcp_url, call_tool_body("list_notes"), headers)
        assert response.status_code == 401
        assert read_challenge(response.headers["www-authenticate"]).error == (
            "invalid_token"
        )


def _jti(token: str) -> str:
    claims = jwt.decode(token, options={"verify_signature": False})
    return str(claims["jti"])


class TestRefusals:
    """Tokens and requests the guard must refuse."""

    def test_issue12_token_for_another_audience(
        self, stack: Stack, client: GatepassClient
    ) -> None:
        """A token for the tickets API is refused by the notes server."""
        with stack.open_task(client, "notes-review") as task:
            token = task.access_token(stack.tickets_url, "read")
            # Present it as if for this server: same key, a proof for this URL.
            headers = {
                "Authorization": f"DPoP {token.value.reveal()}",
                "DPoP": task._key.proof(
                    "POST", stack.mcp_url, access_token=token.value.reveal()
                ),
            }
            response = post_raw(stack.mcp_url, call_tool_body("list_notes"), headers)
        assert response.status_code == 401
        assert read_challenge(response.headers["www-authenticate"]).error == (
            "invalid_token"
        )

    def test_issue12_bearer_downgrade(
        self, stack: Stack, client: GatepassClient
    ) -> None:
        """A DPoP-bound token sent as Bearer is refused (RFC 9449 §7.1)."""
        with stack.open_task(client, "notes-review") as task:
            token = task.access_token(stack.mcp_url, "read")
            response = post_raw(
                stack.mcp_url,
                call_tool_body("list_notes"),
                {"Authorization": f"Bearer {token.value.reveal()}"},
            )
        assert response.status_code == 401

    def test_issue12_stolen_token_with_another_key(
        self, stack: Stack, client: GatepassClient
    ) -> None:
        """A thief's own proof does not match the token's cnf.jkt."""
        with stack.open_task(client, "notes-review") as task:
            token = task.access_token(stack.mcp_url, "read").value.reveal()
            thief = DPoPKey.generate()
            headers = {
                "Authorization": f"DPoP {token}",
                "DPoP": thief.proof("POST", stack.mcp_url, access_token=token),
            }
            response = post_raw(stack.mcp_url, call_tool_body("list_notes"), headers)
        assert response.status_code == 401
        assert read_challenge(response.headers["www-authenticate"]).error == (
            "invalid_dpop_proof"
        )

    def test_issue12_replayed_proof(self, stack: Stack, client: GatepassClient) -> None:
        """The same proof twice: the second request is refused."""
        with stack.open_task(client, "notes-review") as task:
            token = task.access_token(stack.mcp_url, "read")
            headers = token.headers("POST", stack.mcp_url)
            body = call_tool_body("add_note", {"title": "t", "text": "x"})
            first = post_raw(stack.mcp_url, body, headers)
            second = post_raw(stack.mcp_url, body, headers)
        # The first got as far as the scope check; the replay not even that.
        assert first.status_code == 403
        assert second.status_code == 401
        assert read_challenge(second.headers["www-authenticate"]).error == (
            "invalid_dpop_proof"
        )

    def test_issue12_mismatching_mcp_name_header(
        self, stack: Stack, client: GatepassClient
    ) -> None:
        """Mcp-Name says the read tool while the body calls the write tool: 400."""
        with stack.open_task(client, "support-triage") as task:
            token = task.access_token(stack.mcp_url, "read write")
            headers = {
                **token.headers("POST", stack.mcp_url),
                "Mcp-Method": "tools/call",
                "Mcp-Name": "list_notes",
            }
            response = post_raw(
                stack.mcp_url,
                call_tool_body("add_note", {"title": "t", "text": "x"}),
                headers,
            )
        assert response.status_code == 400
        assert response.json()["error"]["code"] == -32020

    def test_issue12_unmapped_tool_is_denied(
        self, stack: Stack, client: GatepassClient
    ) -> None:
        """A tool that is not in the mapping cannot be called at all."""
        with stack.open_task(client, "support-triage") as task:
            token = task.access_token(stack.mcp_url, "read write")
            response = post_raw(
                stack.mcp_url,
                call_tool_body("drop_all_notes"),
                token.headers("POST", stack.mcp_url),
            )
        assert response.status_code == 403
        assert response.json()["error"] == "access_denied"


class TestThirdPartyValidation:
    """RFC 9068: a generic JWT library accepts gatepass tokens as they are."""

    def test_issue12_pyjwt_validates_the_access_token(
        self, stack: Stack, client: GatepassClient
    ) -> None:
        """PyJWKClient and jwt.decode check signature, iss, aud, exp and typ."""
        with stack.open_task(client, "notes-review") as task:
            token = task.access_token(stack.mcp_url, "read").value.reveal()
            keys = jwt.PyJWKClient(f"{stack.broker_url}/jwks.json")
            signing_key = keys.get_signing_key_from_jwt(token)
            claims = jwt.decode(
                token,
                signing_key.key,
                algorithms=["ES256"],
                audience=stack.mcp_url,
                issuer=stack.broker_url,
                options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
            )
            assert jwt.get_unverified_header(token)["typ"] == "at+jwt"
            assert claims["sub"] == stack.identity().agent_id
            assert claims["cnf"]["jkt"]
            assert claims["client_id"]
