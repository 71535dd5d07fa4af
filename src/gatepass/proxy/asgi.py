"""The ASGI types the proxy's modules share (the ASGI 3.0 specification)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

# One header reader for the proxy and the resource-server middleware.
from gatepass.verify import Header, header_values

__all__ = ["Header", "Message", "Receive", "Scope", "Send", "header_values"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
