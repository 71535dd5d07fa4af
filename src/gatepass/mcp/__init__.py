"""
gatepass for MCP: per-task, DPoP-bound tokens for MCP servers and their agents.

Server side (an ``MCPServer`` of the official Python SDK)::

    verifier = ResourceVerifier.for_broker(issuer, "http://127.0.0.1:8402/mcp",
                                           api_token=read_introspect_token)
    app = protect(server, verifier, tool_scopes={"list_notes": "read",
                                                 "add_note": "write"})

and, in a tool, ``current_access(ctx)`` says which agent and task is calling.

Agent side::

    async with connect(task, "http://127.0.0.1:8402/mcp", scopes=["read"]) as mcp:
        await mcp.call_tool("list_notes", {})

Install with ``pip install 'gatepass[mcp]'``. The server side imports the
``mcp`` package only when a request is authorized; :class:`MCPAuth` and
:func:`connect` import it (and ``httpx2``) when first named, since ``mcp`` takes
over a second to import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gatepass.mcp.messages import (
    HEADER_MISMATCH,
    NAME_BEARING_METHODS,
    Call,
    decode_header_value,
    read_calls,
)
from gatepass.mcp.server import MCPGuard, current_access, protect

if TYPE_CHECKING:
    from gatepass.mcp.client import MCPAuth, connect

__all__ = [
    "HEADER_MISMATCH",
    "NAME_BEARING_METHODS",
    "Call",
    "MCPAuth",
    "MCPGuard",
    "connect",
    "current_access",
    "decode_header_value",
    "protect",
    "read_calls",
]

_LAZY = frozenset({"MCPAuth", "connect"})


def __getattr__(name: str) -> Any:  # noqa: ANN401
    """Import the client side on first use."""
    if name in _LAZY:
        from gatepass.mcp import client  # noqa: PLC0415

        return getattr(client, name)
    raise AttributeError(name)
