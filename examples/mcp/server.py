"""
A small MCP server protected by gatepass: notes, one tool to read, one to write.

Run it beside the quickstart broker (``make run`` starts both)::

    .venv/bin/python examples/mcp/server.py

Every request needs a DPoP-bound gatepass token whose audience is this server
(``http://127.0.0.1:8402/mcp``, the ``notes-mcp`` target of
``examples/quickstart/gatepass.toml``). ``list_notes`` needs the ``read`` action,
``add_note`` needs ``write``; a token short of it is answered ``403
insufficient_scope`` with ``scope="write"``, which the agent's auth hook turns
into a request to the broker. Revocations are pushed by the broker, so closing a
task cuts its agent off at once.
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

import uvicorn
from mcp.server import MCPServer
from mcp.server.mcpserver import Context

from gatepass.errors import ConfigurationError
from gatepass.mcp import MCPGuard, current_access, protect
from gatepass.secret import Secret
from gatepass.verify import ResourceVerifier

ISSUER = "http://127.0.0.1:8400"
RESOURCE = "http://127.0.0.1:8402/mcp"
TOKEN_FILE = Path(".gatepass/introspect.token")
TOOL_SCOPES = {"list_notes": "read", "add_note": "write"}


def _reader(path: Path) -> Secret:
    try:
        return Secret(path.read_text(encoding="utf-8").strip())
    except OSError:
        raise ConfigurationError("introspection token file is not readable") from None


def create_app(
    *,
    issuer: str = ISSUER,
    resource: str = RESOURCE,
    token_file: Path = TOKEN_FILE,
) -> MCPGuard:
    """Build the notes server and protect it with gatepass."""
    server = MCPServer("gatepass notes")
    notes: list[dict[str, str]] = []

    @server.tool()
    def list_notes(ctx: Context) -> list[dict[str, str]]:
        """List every note, newest last."""
        access = current_access(ctx)
        return [{**note, "read_by": access.agent_id} for note in notes]

    @server.tool()
    def add_note(title: str, text: str, ctx: Context) -> dict[str, str]:
        """Add a note; it records which agent and task wrote it."""
        access = current_access(ctx)
        note = {
            "title": title[:200],
            "text": text[:2000],
            "agent": access.agent_id,
            "task": access.task_id,
        }
        notes.append(note)
        return note

    verifier = ResourceVerifier.for_broker(
        issuer,
        resource,
        api_token=lambda: _reader(token_file),
        scopes=sorted(set(TOOL_SCOPES.values())),
        resource_name="gatepass notes (MCP example)",
        # While the stream is still connecting (the broker may start after this
        # server), ask the broker on every request, so the tour's cut-off is exact.
        introspection_cache_ttl=dt.timedelta(0),
    )
    return protect(server, verifier, tool_scopes=TOOL_SCOPES, base_scope="read")


def main() -> None:
    """Serve the example on 127.0.0.1."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--issuer", default=ISSUER)
    parser.add_argument("--resource", default=RESOURCE)
    parser.add_argument("--token-file", type=Path, default=TOKEN_FILE)
    parser.add_argument("--port", type=int, default=8402)
    args = parser.parse_args()
    app = create_app(
        issuer=args.issuer, resource=args.resource, token_file=args.token_file
    )
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
