"""Reading MCP requests: JSON-RPC bodies against the Mcp-Method/Mcp-Name headers."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gatepass.errors import HeaderMismatchError, InvalidRequestError
from gatepass.mcp import decode_header_value, read_calls


def body(method: str = "tools/call", **params: Any) -> bytes:
    """A JSON-RPC request body."""
    return json.dumps(
        {"jsonrpc": "2.0", "id": 7, "method": method, "params": params}
    ).encode()


def headers(**values: str) -> list[tuple[bytes, bytes]]:
    """ASGI headers from keyword arguments (mcp_name -> mcp-name)."""
    return [
        (name.replace("_", "-").encode(), value.encode())
        for name, value in values.items()
    ]


def encode(value: str) -> str:
    """The MCP transport's base64 sentinel form of a header value."""
    return f"=?base64?{base64.b64encode(value.encode()).decode()}?="


class TestBodies:
    """What the guard learns from the body."""

    def test_tool_call(self) -> None:
        """A tools/call names its tool."""
        [call] = read_calls(body(name="add_note"), [])
        assert (call.method, call.name, call.request_id) == (
            "tools/call",
            "add_note",
            7,
        )

    def test_batch(self) -> None:
        """Every message of a batch is read."""
        raw = json.dumps(
            [
                {
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "tools/call",
                    "params": {"name": "a"},
                },
                {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
                "junk",
            ]
        ).encode()
        calls = read_calls(raw, [])
        assert [(c.method, c.name) for c in calls] == [
            ("tools/call", "a"),
            ("tools/list", None),
            ("", None),
        ]

    def test_resources_read_names_its_uri(self) -> None:
        """resources/read is named by its uri."""
        [call] = read_calls(body("resources/read", uri="notes://1"), [])
        assert call.name == "notes://1"

    @pytest.mark.parametrize("raw", [b"{", b"\xff", b'{"a": 1, "a": 2}'])
    def test_unreadable_or_ambiguous_bodies(self, raw: bytes) -> None:
        """Not JSON, or a repeated key that parsers resolve differently: refused."""
        with pytest.raises(InvalidRequestError):
            read_calls(raw, [])

    def test_repeated_key_deep_inside(self) -> None:
        """A repeated key anywhere (two tool names in params) is refused."""
        raw = b'{"method": "tools/call", "params": {"name": "a", "name": "b"}}'
        with pytest.raises(InvalidRequestError, match="repeats"):
            read_calls(raw, [])


class TestRoutingHeaders:
    """Mcp-Method and Mcp-Name must agree with the body."""

    def test_matching_headers(self) -> None:
        """Headers that mirror the body pass."""
        read_calls(
            body(name="add_note"), headers(mcp_method="tools/call", mcp_name="add_note")
        )

    def test_issue12_mcp_name_for_another_tool(self) -> None:
        """Mcp-Name says list_notes while the body calls add_note."""
        with pytest.raises(HeaderMismatchError, match="mcp-name"):
            read_calls(
                body(name="add_note"),
                headers(mcp_method="tools/call", mcp_name="list_notes"),
            )

    def test_method_mismatch(self) -> None:
        """Mcp-Method says tools/list while the body calls a tool."""
        with pytest.raises(HeaderMismatchError, match="mcp-method"):
            read_calls(body(name="a"), headers(mcp_method="tools/list"))

    def test_method_without_name_for_a_named_call(self) -> None:
        """Once routing headers are sent, a tools/call needs its Mcp-Name."""
        with pytest.raises(HeaderMismatchError):
            read_calls(body(name="a"), headers(mcp_method="tools/call"))

    def test_name_for_a_message_that_names_nothing(self) -> None:
        """Mcp-Name on tools/list is a contradiction."""
        with pytest.raises(HeaderMismatchError):
            read_calls(body("tools/list"), headers(mcp_name="a"))

    def test_repeated_header(self) -> None:
        """Two Mcp-Name headers: which one would a gateway read?"""
        with pytest.raises(HeaderMismatchError, match="more than once"):
            read_calls(body(name="a"), headers(mcp_name="a") + headers(mcp_name="a"))

    def test_headers_on_a_batch(self) -> None:
        """Routing headers cannot describe a batch."""
        raw = json.dumps([json.loads(body(name="a"))]).encode()
        with pytest.raises(HeaderMismatchError, match="batch"):
            read_calls(raw, headers(mcp_method="tools/call", mcp_name="a"))

    def test_no_headers_is_fine(self) -> None:
        """Clients of older revisions send no routing headers."""
        assert read_calls(body(name="a"), [])[0].name == "a"

    def test_base64_name(self) -> None:
        """A non-ASCII tool name travels base64-encoded and still matches."""
        name = (b"mcp-name", encode("notiz-ü").encode())
        read_calls(body(name="notiz-ü"), [*headers(mcp_method="tools/call"), name])


class TestHeaderValues:
    """The =?base64?…?= sentinel of the MCP transport."""

    @given(st.text(max_size=60))
    def test_round_trip(self, value: str) -> None:
        """Every string survives encoding."""
        assert decode_header_value(encode(value)) == value

    @given(st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E)))
    def test_plain_values_are_verbatim(self, value: str) -> None:
        """A value without the sentinel is itself, or None if it is a bad sentinel."""
        decoded = decode_header_value(value)
        assert decoded == value or value.startswith("=?base64?")

    @pytest.mark.parametrize(
        "value", ["=?base64?***?=", "=?base64?YQ=?=", "=?base64?/w==?="]
    )
    def test_malformed_sentinels_match_nothing(self, value: str) -> None:
        """Bad base64, non-canonical padding or bad UTF-8 decode to None."""
        assert decode_header_value(value) is None
