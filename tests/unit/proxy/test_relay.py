"""Relaying an upstream answer: decoded, scanned, replaced or cut off."""

from __future__ import annotations

import base64
import gzip
from collections.abc import AsyncIterator
from typing import Any

import anyio
import brotli
import httpx
import pytest

from gatepass.proxy.compartments import Compartment
from gatepass.proxy.metrics import Exchange
from gatepass.proxy.reasons import RefusalReason
from gatepass.proxy.refusals import AbortedError, RefusedError
from gatepass.proxy.relay import MAX_ERROR_BODY, relay
from gatepass.proxy.upstream import HttpxUpstream

from .conftest import CANARY, CompartmentFactory


class _Chunks(httpx.AsyncByteStream):
    def __init__(self, chunks: list[bytes], error: Exception | None = None) -> None:
        self._chunks = chunks
        self._error = error

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self._chunks:
            yield chunk
        if self._error is not None:
            raise self._error


def answer(
    compartment: Compartment,
    status: int,
    chunks: list[bytes],
    headers: dict[str, str] | None = None,
    *,
    error: Exception | None = None,
) -> tuple[list[dict[str, Any]], Exchange, BaseException | None]:
    """Relay a scripted upstream answer; return the ASGI messages sent."""
    sent: list[dict[str, Any]] = []
    exchange = Exchange(method="GET", raw_path="/t/x")
    raised: BaseException | None = None

    async def main() -> None:
        nonlocal raised

        def handler(request: httpx.Request) -> httpx.Response:
            del request
            return httpx.Response(
                status, headers=headers, stream=_Chunks(chunks, error)
            )

        async def send(message: Any) -> None:
            sent.append(dict(message))

        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
            response = await HttpxUpstream(http).send(
                "GET", "https://u/", [], None, timeout=5.0
            )
            try:
                await relay(
                    response,
                    send,
                    compartment=compartment,
                    route="t",
                    exchange=exchange,
                )
            except (RefusedError, AbortedError) as caught:
                raised = caught

    anyio.run(main)
    return sent, exchange, raised


def body_of(sent: list[dict[str, Any]]) -> bytes:
    """Join the body messages."""
    return b"".join(
        m.get("body", b"") for m in sent if m["type"] == "http.response.body"
    )


class TestDecodedAnswers:
    """Issue 7 item 1: the agent gets what the scanner read."""

    @pytest.mark.parametrize(
        ("coding", "encode"),
        [("gzip", gzip.compress), ("br", brotli.compress)],
    )
    def test_issue7_1_compressed_secret_is_cut_off(
        self, make_compartment: CompartmentFactory, coding: str, encode: Any
    ) -> None:
        """A compressed 200 holding the secret is decoded, found and cut."""
        body = encode(b"{" + b"x" * 5000 + CANARY.encode() + b"}")
        sent, exchange, raised = answer(
            make_compartment(),
            200,
            [body[:40], body[40:]],
            {"content-encoding": coding},
        )
        assert isinstance(raised, AbortedError)
        assert exchange.reason == RefusalReason.SECRET_IN_STREAM
        assert CANARY.encode() not in body_of(sent)
        assert sent[-1].get("more_body", False) is True

    def test_issue7_1_compressed_error_echo_is_replaced(
        self, make_compartment: CompartmentFactory
    ) -> None:
        """A gzip 500 quoting the secret becomes a fixed 502 before anything is sent."""
        body = gzip.compress(b"bad key " + CANARY.encode())
        sent, _, raised = answer(
            make_compartment(), 500, [body], {"content-encoding": "gzip"}
        )
        assert isinstance(raised, RefusedError)
        assert raised.status == 502
        assert raised.reason == RefusalReason.SECRET_IN_RESPONSE
        assert sent == []

    def test_clean_compressed_answer_is_sent_decoded(
        self, make_compartment: CompartmentFactory
    ) -> None:
        """Content-Encoding and Content-Length go; the decoded body arrives whole."""
        plain = b"hello " * 1000
        body = gzip.compress(plain)
        sent, exchange, raised = answer(
            make_compartment(),
            200,
            [body],
            {"content-encoding": "gzip", "content-length": str(len(body))},
        )
        assert raised is None
        names = {name for name, _ in sent[0]["headers"]}
        assert b"content-encoding" not in names
        assert b"content-length" not in names
        assert body_of(sent) == plain
        assert exchange.bytes_out == len(plain)

    def test_issue7_1_unknown_coding_is_refused(
        self, make_compartment: CompartmentFactory
    ) -> None:
        """An undecodable coding is a 502 and nothing is relayed."""
        sent, _, raised = answer(
            make_compartment(), 200, [b"???"], {"content-encoding": "zstd"}
        )
        assert isinstance(raised, RefusedError)
        assert raised.reason == RefusalReason.UPSTREAM_ENCODING
        assert sent == []

    def test_corrupt_stream_is_cut_off(
        self, make_compartment: CompartmentFactory
    ) -> None:
        """Bytes that do not decode end the answer as an upstream failure."""
        sent, exchange, raised = answer(
            make_compartment(), 200, [b"not gzip at all"], {"content-encoding": "gzip"}
        )
        assert isinstance(raised, AbortedError)
        assert exchange.reason == RefusalReason.UPSTREAM_ENCODING
        assert body_of(sent) == b""


class TestEncodedReflections:
    """Issue 7 item 2: encoded forms in headers, error bodies and streams."""

    @pytest.mark.parametrize("method", ["header", "bearer", "basic", "query"])
    def test_issue7_2_base64_in_a_header_is_replaced(
        self, make_compartment: CompartmentFactory, method: str
    ) -> None:
        """A header carrying base64 of the secret turns the answer into a 502."""
        compartment = make_compartment(
            method, username="svc" if method == "basic" else None
        )
        echo = base64.b64encode(b"Bearer " + CANARY.encode()).decode()
        _, _, raised = answer(compartment, 200, [b"ok"], {"x-echo": echo})
        assert isinstance(raised, RefusedError)
        assert raised.reason == RefusalReason.SECRET_IN_RESPONSE

    def test_issue7_2_hex_split_over_chunks_is_never_relayed(
        self, make_compartment: CompartmentFactory
    ) -> None:
        """Hex of the secret, one byte per chunk, is found before any of it goes."""
        encoded = CANARY.encode().hex().upper().encode()
        chunks = [b"prefix "] + [encoded[i : i + 1] for i in range(len(encoded))]
        sent, _, raised = answer(make_compartment(), 200, chunks)
        assert isinstance(raised, AbortedError)
        assert body_of(sent) == b"prefix "

    def test_error_body_too_large_is_refused(
        self, make_compartment: CompartmentFactory
    ) -> None:
        """An error body past the buffer limit is not relayed at all."""
        big = gzip.compress(b"\x00" * (MAX_ERROR_BODY + 1))
        _, _, raised = answer(
            make_compartment(), 500, [big], {"content-encoding": "gzip"}
        )
        assert isinstance(raised, RefusedError)
        assert raised.reason == RefusalReason.UPSTREAM_ANSWER_TOO_LARGE


class TestUpstreamFailures:
    """An upstream that fails while answering is recorded with its reason."""

    def test_clean_error_answer_is_relayed_decoded(
        self, make_compartment: CompartmentFactory
    ) -> None:
        """A 404 without the secret arrives decoded with its new length."""
        body = gzip.compress(b'{"error": "no such ticket"}')
        sent, exchange, raised = answer(
            make_compartment(), 404, [body], {"content-encoding": "gzip"}
        )
        assert raised is None
        assert sent[0]["status"] == 404
        assert (b"content-length", b"27") in sent[0]["headers"]
        assert body_of(sent) == b'{"error": "no such ticket"}'
        assert (exchange.status, exchange.reason) == (404, None)

    @pytest.mark.parametrize(
        ("error", "reason"),
        [
            (httpx.ReadTimeout("slow"), RefusalReason.UPSTREAM_TIMEOUT),
            (httpx.ReadError("reset"), RefusalReason.UPSTREAM_ABORTED),
        ],
    )
    def test_failure_mid_stream_cuts_the_answer(
        self,
        make_compartment: CompartmentFactory,
        error: Exception,
        reason: RefusalReason,
    ) -> None:
        """A stream that breaks after the 200 started is cut and recorded."""
        sent, exchange, raised = answer(
            make_compartment(), 200, [b"partial"], error=error
        )
        assert isinstance(raised, AbortedError)
        assert exchange.reason == reason
        assert body_of(sent) == b"partial"

    @pytest.mark.parametrize(
        ("error", "reason", "status"),
        [
            (httpx.ReadTimeout("slow"), RefusalReason.UPSTREAM_TIMEOUT, 504),
            (httpx.ReadError("reset"), RefusalReason.UPSTREAM_UNREACHABLE, 502),
        ],
    )
    def test_failure_while_reading_an_error_body(
        self,
        make_compartment: CompartmentFactory,
        error: Exception,
        reason: RefusalReason,
        status: int,
    ) -> None:
        """An error body that cannot be read whole becomes the proxy's own answer."""
        _, _, raised = answer(make_compartment(), 500, [b"par"], error=error)
        assert isinstance(raised, RefusedError)
        assert (raised.reason, raised.status) == (reason, status)

    def test_corrupt_error_body_is_refused(
        self, make_compartment: CompartmentFactory
    ) -> None:
        """An error body that does not decode is not relayed."""
        _, _, raised = answer(
            make_compartment(), 500, [b"not gzip"], {"content-encoding": "gzip"}
        )
        assert isinstance(raised, RefusedError)
        assert raised.reason == RefusalReason.UPSTREAM_ENCODING
