"""Tests for request framing checks and header forwarding."""

from __future__ import annotations

import pytest

from gatepass.errors import InvalidRequestError
from gatepass.proxy import (
    HOP_BY_HOP,
    HeaderRejectedError,
    HeaderSectionTooLargeError,
    check_request_framing,
    forward_request_headers,
    forward_response_headers,
)

ALLOWED = frozenset(
    {"accept", "content-type", "user-agent", "accept-encoding", "content-length"}
)


class TestCheckRequestFraming:
    """Ambiguous, malformed or oversized headers are refused."""

    def test_ordinary_request_passes(self) -> None:
        """A normal request with one Content-Length passes."""
        check_request_framing(
            [
                (b"host", b"proxy.example"),
                (b"content-type", b"application/json"),
                (b"content-length", b"12"),
                (b"user-agent", b"agent/1.0\tbuild 7"),
            ]
        )

    def test_chunked_request_passes(self) -> None:
        """A chunked request without Content-Length passes."""
        check_request_framing([(b"Transfer-Encoding", b"Chunked")])

    @pytest.mark.parametrize(
        ("headers", "reason"),
        [
            (
                [(b"transfer-encoding", b"chunked"), (b"content-length", b"5")],
                "both transfer-encoding and content-length",
            ),
            (
                [(b"Content-Length", b"5"), (b"Transfer-Encoding", b"chunked")],
                "both transfer-encoding and content-length",
            ),
            (
                [(b"content-length", b"5"), (b"content-length", b"5")],
                "more than one content-length",
            ),
            ([(b"content-length", b"5, 5")], "not a plain decimal"),
            ([(b"content-length", b"+5")], "not a plain decimal"),
            ([(b"content-length", b"-1")], "not a plain decimal"),
            ([(b"content-length", b"0x10")], "not a plain decimal"),
            ([(b"content-length", b" 5")], "not a plain decimal"),
            ([(b"content-length", b"")], "not a plain decimal"),
            ([(b"content-length", b"9" * 20)], "not a plain decimal"),
            ([(b"transfer-encoding", b"gzip, chunked")], "other than chunked"),
            ([(b"transfer-encoding", b"chunked, chunked")], "other than chunked"),
            ([(b"transfer-encoding", b"identity")], "other than chunked"),
            ([(b"transfer-encoding", b" chunked")], "other than chunked"),
            (
                [
                    (b"transfer-encoding", b"chunked"),
                    (b"transfer-encoding", b"chunked"),
                ],
                "more than one transfer-encoding",
            ),
            ([(b"host", b"a"), (b"host", b"b")], "more than one host"),
            ([(b"x-a", b"1\r\nx-injected: 1")], "cr, lf or nul"),
            ([(b"x-a", b"1\nx-injected: 1")], "cr, lf or nul"),
            ([(b"x-a", b"1\rb")], "cr, lf or nul"),
            ([(b"x-a", b"1\x00")], "cr, lf or nul"),
            ([(b"x-a\r\nx-b", b"1")], "cr, lf or nul"),
            ([(b"x-a\x00", b"1")], "cr, lf or nul"),
            ([(b"x a", b"1")], "not a token"),
            ([(b"x-a:", b"1")], "not a token"),
            ([(b"", b"1")], "not a token"),
            ([(b"x-\xc3\xa9", b"1")], "not a token"),
            ([(b"x-a", b"1\x01")], "control character"),
            ([(b"x-a", b"1\x7f")], "control character"),
        ],
    )
    def test_refused(self, headers: list[tuple[bytes, bytes]], reason: str) -> None:
        """The request is refused with HeaderRejectedError and a specific message."""
        with pytest.raises(HeaderRejectedError, match=reason) as caught:
            check_request_framing(headers)
        assert isinstance(caught.value, InvalidRequestError)

    def test_too_many_headers(self) -> None:
        """More than 100 headers are refused; exactly 100 pass."""
        headers = [(b"x-h", b"1")] * 100
        check_request_framing(headers)
        with pytest.raises(HeaderRejectedError, match="more than 100 headers"):
            check_request_framing([*headers, (b"x-h", b"1")])

    def test_issue7_4_two_hundred_small_headers_are_431(self) -> None:
        """Too many fields is a 431 like too many bytes (RFC 6585 §5), not a 400."""
        with pytest.raises(HeaderSectionTooLargeError) as caught:
            check_request_framing([(b"x-h", b"1")] * 200)
        assert caught.value.http_status == 431

    def test_oversized_headers(self) -> None:
        """Headers over 16 kB in total are refused; exactly 16 kB pass."""
        fits = [(b"x-big", b"a" * (16_384 - len(b"x-big") - 4))]
        check_request_framing(fits)
        with pytest.raises(HeaderSectionTooLargeError, match="larger than 16384"):
            check_request_framing([(b"x-big", b"a" * 16_384)])

    def test_limits_are_keyword_arguments(self) -> None:
        """The header count and size limits can be changed per call."""
        headers = [(b"x-a", b"1"), (b"x-b", b"2")]
        with pytest.raises(HeaderRejectedError, match="more than 1 headers"):
            check_request_framing(headers, max_headers=1)
        with pytest.raises(HeaderRejectedError, match="larger than 10 bytes"):
            check_request_framing(headers, max_header_bytes=10)

    def test_message_never_echoes_the_header(self) -> None:
        """A rejected value never appears in the message."""
        with pytest.raises(HeaderRejectedError) as caught:
            check_request_framing([(b"x-a", b"canary-7f3a9c\r\n")])
        assert "canary" not in str(caught.value)


class TestForwardRequestHeaders:
    """Only allowed, non-sensitive headers reach the upstream."""

    def test_keeps_allowed_headers_lower_cased_in_order(self) -> None:
        """Allowed headers pass with lower-case names, in order; others are dropped."""
        headers = [
            (b"Accept", b"application/json"),
            (b"X-Custom", b"1"),
            (b"User-Agent", b"agent"),
            (b"Content-Type", b"text/plain"),
        ]
        assert forward_request_headers(headers, allowed=ALLOWED) == [
            (b"accept", b"application/json"),
            (b"user-agent", b"agent"),
            (b"content-type", b"text/plain"),
        ]

    def test_allow_list_is_case_insensitive(self) -> None:
        """An allow-list entry in mixed case still matches."""
        headers = [(b"x-request-id", b"r1")]
        assert forward_request_headers(
            headers, allowed=frozenset({"X-Request-Id"})
        ) == [(b"x-request-id", b"r1")]

    @pytest.mark.parametrize(
        "name",
        [
            b"Authorization",
            b"DPoP",
            b"Cookie",
            b"Host",
            b"Forwarded",
            b"X-Forwarded-For",
            b"X-Forwarded-Host",
            b"X-Forwarded-Proto",
            b"x-forwarded-anything",
            b"X-Real-IP",
            b"X-HTTP-Method-Override",
            b"X-Original-URL",
            b"Proxy-Authorization",
            b"Accept-Encoding",
            *(name.encode() for name in sorted(HOP_BY_HOP)),
        ],
    )
    def test_sensitive_headers_always_dropped(self, name: bytes) -> None:
        """Credentials, spoofable origin headers and hop-by-hop headers never pass."""
        allowed = ALLOWED | {name.decode().lower()}
        headers = [(name, b"spoofed"), (b"accept", b"*/*")]
        assert forward_request_headers(headers, allowed=allowed) == [
            (b"accept", b"*/*")
        ]

    def test_connection_listed_headers_dropped(self) -> None:
        """A header named in Connection is hop-by-hop and dropped even if allowed."""
        headers = [
            (b"connection", b"close, Accept-Encoding"),
            (b"connection", b" User-Agent ,"),
            (b"accept-encoding", b"gzip"),
            (b"user-agent", b"agent"),
            (b"accept", b"*/*"),
        ]
        assert forward_request_headers(headers, allowed=ALLOWED) == [
            (b"accept", b"*/*")
        ]

    def test_empty_allow_list_drops_everything(self) -> None:
        """With no allowed headers nothing is forwarded."""
        assert forward_request_headers([(b"accept", b"*/*")], allowed=frozenset()) == []


class TestForwardResponseHeaders:
    """Upstream hop-by-hop headers and sessions stop at the proxy."""

    def test_drops_hop_by_hop_and_cookies(self) -> None:
        """Hop-by-hop, Connection-listed and Set-Cookie headers are dropped."""
        headers = [
            (b"Content-Type", b"application/json"),
            (b"Connection", b"keep-alive, X-Upstream-Secret"),
            (b"Keep-Alive", b"timeout=5"),
            (b"Transfer-Encoding", b"chunked"),
            (b"X-Upstream-Secret", b"s"),
            (b"Set-Cookie", b"session=upstream"),
            (b"set-cookie2", b"session=upstream"),
            (b"ETag", b'"abc"'),
        ]
        assert forward_response_headers(headers) == [
            (b"content-type", b"application/json"),
            (b"etag", b'"abc"'),
        ]
