"""
Header hygiene: refuse ambiguous framing, forward only what the route allows.

Two kinds of check live here. :func:`check_request_framing` refuses requests whose
framing or syntax two HTTP parsers could read differently (request smuggling,
RFC 9112 §6.3 and §11.2) or that are too large. The ``forward_*`` functions decide
which headers cross the proxy: the client's credentials, its claims about where the
request came from (``Host``, ``Forwarded``, ``X-Forwarded-*``) and every hop-by-hop
header (RFC 9110 §7.6.1) stop at the proxy.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from gatepass.errors import HeadersTooLargeError, InvalidRequestError

__all__ = [
    "ALWAYS_DROPPED_REQUEST_HEADERS",
    "DROPPED_RESPONSE_HEADERS",
    "HOP_BY_HOP",
    "MAX_HEADERS",
    "MAX_HEADER_BYTES",
    "HeaderRejectedError",
    "HeaderSectionTooLargeError",
    "check_request_framing",
    "forward_request_headers",
    "forward_response_headers",
]

Header = tuple[bytes, bytes]

MAX_HEADERS = 100
MAX_HEADER_BYTES = 16_384

# RFC 9110 §7.6.1 (plus the non-standard but widely honoured Proxy-Connection and
# Keep-Alive), which apply to one connection only and are never forwarded.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)

# Dropped from every request even if a route allows them: the agent's own
# credentials (its gatepass token and proof), its cookies, and every header an
# upstream might trust to learn the client's address, host, URL or method. The
# method and URL overrides would otherwise let an allowed "POST /x" act as another
# method or path upstream, past the rule check.
#
# Accept-Encoding is the proxy's choice, not the agent's: the proxy must read every
# answer to scan it for the secret, so it asks the upstream for the encodings it can
# decode (see proxy/encodings.py) whatever the agent sent.
ALWAYS_DROPPED_REQUEST_HEADERS = HOP_BY_HOP | frozenset(
    {
        "accept-encoding",
        "authorization",
        "cf-connecting-ip",
        "client-ip",
        "cookie",
        "dpop",
        "forwarded",
        "host",
        "true-client-ip",
        "via",
        "x-client-ip",
        "x-cluster-client-ip",
        "x-host",
        "x-http-method",
        "x-http-method-override",
        "x-method-override",
        "x-original-url",
        "x-real-ip",
        "x-rewrite-url",
    }
)
_ALWAYS_DROPPED_PREFIXES = ("x-forwarded-",)

# An upstream session must not reach the agent, who would then hold a credential
# that outlives its lease.
DROPPED_RESPONSE_HEADERS = HOP_BY_HOP | frozenset({"set-cookie", "set-cookie2"})

# RFC 9110 §5.6.2: token = 1*tchar.
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_DECIMAL = re.compile(rb"[0-9]{1,19}")
_LINE_BREAK_OR_NUL = re.compile(rb"[\r\n\x00]")
# RFC 9110 §5.5: field values may carry HTAB but no other control character.
_CONTROL = re.compile(rb"[\x01-\x08\x0a-\x1f\x7f]")
# Name, value, ": " and CRLF, as on the wire in HTTP/1.1.
_LINE_OVERHEAD = 4


class HeaderRejectedError(InvalidRequestError):
    """A request header is malformed, ambiguous or too large; it is never echoed."""


class HeaderSectionTooLargeError(HeaderRejectedError, HeadersTooLargeError):
    """The header section has too many fields or bytes: a 431 (RFC 6585 §5)."""


def _reject(reason: str) -> HeaderRejectedError:
    return HeaderRejectedError(f"request headers rejected: {reason}")


def _check_size(
    headers: Sequence[Header], *, max_headers: int, max_header_bytes: int
) -> None:
    # RFC 6585 §5: 431 covers too many fields as well as too many bytes.
    if len(headers) > max_headers:
        raise HeaderSectionTooLargeError(
            f"request headers rejected: more than {max_headers} headers"
        )
    total = sum(len(name) + len(value) + _LINE_OVERHEAD for name, value in headers)
    if total > max_header_bytes:
        raise HeaderSectionTooLargeError(
            f"request headers rejected: headers larger than {max_header_bytes} bytes"
        )


def _check_syntax(name: bytes, value: bytes) -> None:
    if _LINE_BREAK_OR_NUL.search(name) or _LINE_BREAK_OR_NUL.search(value):
        raise _reject("a header contains cr, lf or nul")
    if not _TOKEN.fullmatch(name):
        raise _reject("a header name is not a token")
    if _CONTROL.search(value):
        raise _reject("a header value contains a control character")


def _check_framing(
    content_lengths: list[bytes], transfer_encodings: list[bytes], hosts: int
) -> None:
    # RFC 9112 §6.3: a message with both is a smuggling attempt or a broken client.
    if content_lengths and transfer_encodings:
        raise _reject("both transfer-encoding and content-length")
    if len(content_lengths) > 1:
        raise _reject("more than one content-length")
    if content_lengths and not _DECIMAL.fullmatch(content_lengths[0]):
        raise _reject("content-length is not a plain decimal")
    if len(transfer_encodings) > 1:
        raise _reject("more than one transfer-encoding")
    if transfer_encodings and transfer_encodings[0].lower() != b"chunked":
        raise _reject("transfer-encoding other than chunked")
    # RFC 9112 §3.2: a server must reject a request with more than one Host.
    if hosts > 1:
        raise _reject("more than one host")


def check_request_framing(
    headers: Sequence[Header],
    *,
    max_headers: int = MAX_HEADERS,
    max_header_bytes: int = MAX_HEADER_BYTES,
) -> None:
    """
    Refuse a request whose headers are malformed, ambiguous or too large.

    Args:
        headers: the ASGI request headers, as ``(name, value)`` byte pairs.
        max_headers: the most headers a request may carry.
        max_header_bytes: the most bytes all headers may take, counting each as
            ``name: value`` plus CRLF.

    Raises:
        HeaderRejectedError: too many or too large headers (as
            :class:`HeaderSectionTooLargeError`, a 431); a name or value with
            CR, LF or NUL; a name that is not an RFC 9110 token; a value with another
            control character; both Transfer-Encoding and Content-Length; more than
            one Content-Length, Transfer-Encoding or Host; a Content-Length that is
            not a plain decimal; a Transfer-Encoding other than ``chunked``.
    """
    _check_size(headers, max_headers=max_headers, max_header_bytes=max_header_bytes)
    content_lengths: list[bytes] = []
    transfer_encodings: list[bytes] = []
    hosts = 0
    for name, value in headers:
        _check_syntax(name, value)
        lowered = name.lower()
        if lowered == b"content-length":
            content_lengths.append(value)
        elif lowered == b"transfer-encoding":
            transfer_encodings.append(value)
        elif lowered == b"host":
            hosts += 1
    _check_framing(content_lengths, transfer_encodings, hosts)


def _connection_options(headers: Iterable[Header]) -> frozenset[str]:
    # RFC 9110 §7.6.1: names listed in Connection are hop-by-hop for this message.
    options: set[str] = set()
    for name, value in headers:
        if name.lower() == b"connection":
            options.update(
                option.strip().lower()
                for option in value.decode("latin-1").split(",")
                if option.strip()
            )
    return frozenset(options)


def _always_dropped(name: str, connection_options: frozenset[str]) -> bool:
    return (
        name in ALWAYS_DROPPED_REQUEST_HEADERS
        or name.startswith(_ALWAYS_DROPPED_PREFIXES)
        or name in connection_options
    )


def forward_request_headers(
    headers: Sequence[Header], *, allowed: frozenset[str]
) -> list[Header]:
    """
    Return the request headers that may reach the upstream.

    Args:
        headers: the ASGI request headers.
        allowed: the route's allow-list of header names (case-insensitive).

    Returns:
        The allowed headers with lower-case names, in their original order, minus
        credentials, cookies, Host, Forwarded, X-Forwarded-* and similar
        client-address headers, method and URL overrides, hop-by-hop headers and
        any header named in Connection, whatever the allow-list says.
    """
    allowed_names = frozenset(name.lower() for name in allowed)
    options = _connection_options(headers)
    forwarded: list[Header] = []
    for name, value in headers:
        lowered = name.decode("latin-1").lower()
        if lowered in allowed_names and not _always_dropped(lowered, options):
            forwarded.append((lowered.encode("latin-1"), value))
    return forwarded


def forward_response_headers(headers: Sequence[Header]) -> list[Header]:
    """
    Return the upstream response headers that may reach the agent.

    Args:
        headers: the upstream's response headers.

    Returns:
        The headers with lower-case names, in their original order, minus hop-by-hop
        headers, any header named in Connection, and ``Set-Cookie``.
    """
    options = _connection_options(headers)
    forwarded: list[Header] = []
    for name, value in headers:
        lowered = name.decode("latin-1").lower()
        if lowered not in DROPPED_RESPONSE_HEADERS and lowered not in options:
            forwarded.append((lowered.encode("latin-1"), value))
    return forwarded
