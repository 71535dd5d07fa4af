"""
Reading what an MCP request asks for: its JSON-RPC body and its routing headers.

The guard decides per tool, so it reads the tool name from the body, where the
MCP server reads it, never from a header alone. Clients of the 2026-07-28
revision also send ``Mcp-Method`` and ``Mcp-Name``, so gateways can route without
parsing bodies; a request whose headers and body disagree is refused, because a
component that trusts the headers would decide about one tool while the server
runs another. The rules, in order::

    body not JSON, or an object with a repeated key   400 (parsers disagree on
                                                          which copy wins)
    Mcp-Method / Mcp-Name sent more than once          400
    a routing header, and a batch body                 400 (which message?)
    Mcp-Method differs from the body's method          400
    Mcp-Name absent or different, for tools/call,      400 (once any routing
      prompts/get, resources/read                           header was sent)
    Mcp-Name for a message that names nothing          400

Header values are compared after the ``=?base64?…?=`` decoding the MCP
transport specification defines for values that are not plain ASCII.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gatepass.errors import HeaderMismatchError, InvalidRequestError

__all__ = [
    "HEADER_MISMATCH",
    "NAME_BEARING_METHODS",
    "Call",
    "decode_header_value",
    "read_calls",
]

# The JSON-RPC error code of the MCP 2026-07-28 transport for "headers and body
# disagree" (mcp_types.jsonrpc.HEADER_MISMATCH); answered with HTTP 400.
HEADER_MISMATCH = -32020

# Methods whose target is mirrored in Mcp-Name, and the params key that holds it.
NAME_BEARING_METHODS: Mapping[str, str] = {
    "tools/call": "name",
    "prompts/get": "name",
    "resources/read": "uri",
}

_SENTINEL = re.compile(r"=\?base64\?(?P<payload>.*)\?=")


@dataclass(frozen=True, slots=True)
class Call:
    """
    One JSON-RPC message of a request.

    Attributes:
        method: the JSON-RPC method, empty for a response or a malformed message.
        name: the tool, prompt or resource it names, None when it names none.
        request_id: the message's id, echoed in an error answer.
    """

    method: str
    name: str | None
    request_id: Any


def decode_header_value(value: str) -> str | None:
    """
    Decode an MCP routing header value.

    Args:
        value: the header value as received.

    Returns:
        The value, or the UTF-8 text inside a ``=?base64?…?=`` sentinel; None for
        a malformed sentinel (bad or non-canonical base64, bad UTF-8), so a
        corrupt header never matches a body value.
    """
    found = _SENTINEL.fullmatch(value)
    if found is None:
        return value
    payload = found.group("payload")
    try:
        decoded = base64.b64decode(payload, validate=True)
        if base64.b64encode(decoded).decode("ascii") != payload:
            return None
        return decoded.decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise InvalidRequestError("json object repeats a key")
        found[key] = value
    return found


def _call(message: object) -> Call:
    if not isinstance(message, dict):
        return Call(method="", name=None, request_id=None)
    method = message.get("method")
    params = message.get("params")
    name: str | None = None
    key = NAME_BEARING_METHODS.get(method) if isinstance(method, str) else None
    if key is not None and isinstance(params, dict):
        value = params.get(key)
        name = value if isinstance(value, str) else None
    return Call(
        method=method if isinstance(method, str) else "",
        name=name,
        request_id=message.get("id"),
    )


def _single_header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> str | None:
    values = [value for key, value in headers if key.lower() == name]
    if len(values) > 1:
        raise HeaderMismatchError(f"{name.decode()} header sent more than once")
    return values[0].decode("latin-1") if values else None


def read_calls(body: bytes, headers: Iterable[tuple[bytes, bytes]]) -> list[Call]:
    """
    Read the JSON-RPC messages of a POST and check them against its headers.

    Args:
        body: the request body.
        headers: the request's ASGI headers.

    Returns:
        One :class:`Call` per message (a batch gives several).

    Raises:
        InvalidRequestError: the body is not JSON or repeats a key.
        HeaderMismatchError: the routing headers are repeated or contradict the
            body.
    """
    try:
        parsed = json.loads(body, object_pairs_hook=_unique_keys)
    except ValueError:
        raise InvalidRequestError("body is not json") from None
    pairs = list(headers)
    method_header = _single_header(pairs, b"mcp-method")
    name_header = _single_header(pairs, b"mcp-name")
    messages = parsed if isinstance(parsed, list) else [parsed]
    calls = [_call(message) for message in messages]
    if method_header is None and name_header is None:
        return calls
    if not isinstance(parsed, dict):
        raise HeaderMismatchError("routing headers on a batch")
    (call,) = calls
    if method_header is not None and method_header != call.method:
        raise HeaderMismatchError("mcp-method header does not match the body")
    if call.method in NAME_BEARING_METHODS and call.name is not None:
        decoded = decode_header_value(name_header) if name_header is not None else None
        if decoded != call.name:
            raise HeaderMismatchError("mcp-name header does not match the body")
    elif name_header is not None:
        raise HeaderMismatchError("mcp-name header without a named target")
    return calls
