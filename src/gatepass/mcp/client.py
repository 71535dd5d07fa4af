"""
An agent's MCP calls with gatepass tokens, and no auth code of its own.

The official SDK speaks HTTP through ``httpx2``; :class:`MCPAuth` is the gatepass
auth hook for it (and for plain ``httpx``, since it is a
:class:`~gatepass.sdk.ResourceAuth`): the first request's ``401`` leads to the
server's RFC 9728 metadata, the task asks its broker for a token whose audience
is that server, every request carries a fresh DPoP proof, and an
``insufficient_scope`` answer is met by asking the broker for the scope named
(merged with those held, once per request)::

    async with connect(task, "http://127.0.0.1:8402/mcp", scopes=["read"]) as mcp:
        result = await mcp.call_tool("list_notes", {})
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Any

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from gatepass.sdk import ResourceAuth, Task

__all__ = ["MCPAuth", "connect"]

# The SDK's own defaults (mcp.shared._httpx_utils): streams may stay open long.
_TIMEOUT = httpx2.Timeout(30.0, read=300.0)


# The two bases type their flows with their own Request classes (httpx and
# httpx2); the flow itself only reads and sets headers, so it serves both.
class MCPAuth(ResourceAuth, httpx2.Auth):  # type: ignore[misc]
    """
    The gatepass auth hook for the MCP SDK's HTTP client (``httpx2``).

    Args:
        task: the open task whose key and broker grant the tokens.
        resource: the MCP server's target URI; discovered from its first
            ``401`` when omitted.
        scopes: the actions to ask for first; the challenge's ``scope`` when
            omitted.
    """

    async def async_auth_flow(  # type: ignore[override]
        self, request: httpx2.Request
    ) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        """Drive the flow for ``httpx2.AsyncClient``, broker calls in a thread."""
        await request.aread()
        flow = self.drive_async(request)
        sent = await anext(flow)
        while True:
            response = yield sent
            try:
                sent = await flow.asend(response)
            except StopAsyncIteration:
                return


@contextlib.asynccontextmanager
async def connect(
    task: Task,
    url: str,
    *,
    scopes: Sequence[str] | str = (),
    resource: str | None = None,
    auth: MCPAuth | None = None,
    **client_options: Any,  # noqa: ANN401
) -> AsyncIterator[Client]:
    """
    Open an MCP client session to a gatepass-protected server.

    Args:
        task: the open task the calls belong to.
        url: the server's MCP endpoint.
        scopes: the actions to ask for first (see :class:`MCPAuth`).
        resource: the server's target URI, when known.
        auth: an auth hook to use (keep it to read ``last_error`` after a
            refusal); one is made from ``task``, ``scopes`` and ``resource``
            when omitted.
        client_options: passed to ``mcp.Client``.

    Yields:
        The connected ``mcp.Client``.
    """
    hook = auth or MCPAuth(task, resource=resource, scopes=scopes)
    async with (
        httpx2.AsyncClient(auth=hook, timeout=_TIMEOUT, follow_redirects=False) as http,
        Client(
            streamable_http_client(url, http_client=http), **client_options
        ) as client,
    ):
        yield client
