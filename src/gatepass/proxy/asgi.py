"""The ASGI types the proxy's modules share (the ASGI 3.0 specification)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["Header", "Message", "Receive", "Scope", "Send", "header_values"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Header = tuple[bytes, bytes]


def header_values(headers: list[Header], name: bytes) -> list[str]:
    """
    Return every value of one header, in order.

    Args:
        headers: the ASGI header list.
        name: the lower-case header name.

    Returns:
        The values, decoded as latin-1.
    """
    return [value.decode("latin-1") for key, value in headers if key.lower() == name]
