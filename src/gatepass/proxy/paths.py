"""
Request-path normalization: one canonical spelling per path, or a refusal.

The proxy authorizes a request by matching its path against the route's rules, then
forwards that same path upstream. If the proxy and the upstream could disagree on
what a path means (``/v1/tickets/../admin``, ``/v1/tickets/%2e%2e/admin``,
``/v1/tickets%2fadmin``, a backslash read as a slash), the rule check would be
bypassed. So every spelling an upstream might read in two ways is refused rather than
repaired, and the canonical path that was checked is exactly the path sent upstream.

Normalization follows RFC 3986 §6.2.2: percent-encoded unreserved characters are
decoded (§6.2.2.2) and the hex digits of the other escapes are upper-cased
(§6.2.2.1). Dot segments are refused instead of being removed (§5.2.4), because
removing them would authorize a path the client did not write. The escapes must
decode as strict UTF-8 (RFC 3629): an overlong ``%c0%ae`` is ``.`` to a lenient
decoder, so it is refused, like every other invalid sequence.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import unquote, unquote_to_bytes

from gatepass.errors import InvalidRequestError

__all__ = ["MAX_PATH_BYTES", "PathRejectedError", "normalize_path"]

MAX_PATH_BYTES = 2048

_HEX_DIGITS = frozenset(b"0123456789abcdefABCDEF")
# RFC 3986 §2.3: ALPHA / DIGIT / "-" / "." / "_" / "~".
_UNRESERVED = frozenset(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
)
# RFC 3986 §3.3: pchar = unreserved / pct-encoded / sub-delims / ":" / "@", plus the
# "/" that separates segments. Anything else ("?", "#", space, quotes, brackets,
# braces, "|", "^", "`") must arrive percent-encoded.
_PATH_CHARACTERS = _UNRESERVED | frozenset(b"!$&'()*+,;=:@/")
_SLASH = 0x2F
_BACKSLASH = 0x5C
_PERCENT = 0x25
_DELETE = 0x7F
# "%252e" is "%2e" to an upstream that decodes twice; refuse it rather than hope that
# every upstream decodes exactly once. Checked on the canonical spelling, so that
# "%25%32e" is caught too and normalizing stays idempotent.
_DOUBLE_ESCAPE = re.compile(r"%25[0-9A-Fa-f]{2}")
_C1_CONTROL = re.compile("[\u0080-\u009f]")


class PathRejectedError(InvalidRequestError):
    """The request path is malformed or could be read two ways; it is never echoed."""


def _reject(reason: str) -> PathRejectedError:
    return PathRejectedError(f"request path rejected: {reason}")


def _check_raw_byte(byte: int) -> None:
    if byte == 0:
        raise _reject("it contains a nul byte")
    if byte < 0x20 or byte == _DELETE:
        raise _reject("it contains a control character")
    if byte > _DELETE:
        raise _reject("it contains a raw non-ascii byte")
    if byte == _BACKSLASH:
        raise _reject("it contains a backslash")
    if byte not in _PATH_CHARACTERS:
        raise _reject("it contains a character that must be percent-encoded")


def _decode_escape(raw_path: bytes, index: int) -> int:
    digits = raw_path[index + 1 : index + 3]
    if len(digits) != 2 or not all(digit in _HEX_DIGITS for digit in digits):
        raise _reject("it contains a malformed percent escape")
    value = int(digits, 16)
    if value == _SLASH:
        raise _reject("it contains an encoded slash")
    if value == _BACKSLASH:
        raise _reject("it contains an encoded backslash")
    if value == 0:
        raise _reject("it contains an encoded nul byte")
    if value < 0x20 or value == _DELETE:
        raise _reject("it contains an encoded control character")
    return value


def _canonical_spelling(raw_path: bytes) -> str:
    out: list[str] = []
    index = 0
    while index < len(raw_path):
        byte = raw_path[index]
        if byte == _PERCENT:
            value = _decode_escape(raw_path, index)
            # RFC 3986 §6.2.2.2: decode unreserved; §6.2.2.1: upper-case the rest.
            out.append(chr(value) if value in _UNRESERVED else f"%{value:02X}")
            index += 3
        else:
            _check_raw_byte(byte)
            out.append(chr(byte))
            index += 1
    return "".join(out)


def _check_utf8(path: str) -> None:
    # RFC 3629 §3 and §10: a decoder must refuse overlong forms, surrogates and
    # code points past U+10FFFF. An upstream with a lenient decoder reads the
    # overlong "%c0%ae%c0%ae" as "..", so every escape sequence must decode as
    # strict UTF-8 (Python's codec is strict) or the path is refused.
    try:
        text = unquote_to_bytes(path).decode("utf-8", "strict")
    except UnicodeDecodeError:
        raise _reject("it contains an invalid or overlong utf-8 escape") from None
    # The C1 controls (U+0080 to U+009F) are control characters too; NEL (U+0085)
    # is a line break to some parsers.
    if _C1_CONTROL.search(text):
        raise _reject("it contains an encoded control character")


def _is_dot_segment(segment: str) -> bool:
    # Servlet containers drop ";parameters" before resolving dot segments, so
    # "..;x" is ".." to them (the Tomcat "..;/" bypass), and ";x" is an empty
    # segment: "/v1/tickets/;x" would reach the collection "/v1/tickets/".
    name = segment.split(";", 1)[0]
    return name in {".", ".."} or (not name and ";" in segment)


def _check_segments(path: str) -> None:
    segments = path[1:].split("/")
    last = len(segments) - 1
    for position, segment in enumerate(segments):
        if not segment and position != last:
            raise _reject("it contains an empty segment")
        if _is_dot_segment(segment):
            raise _reject("it contains a dot segment")
        if "%" in segment:
            # Upstreams that apply Unicode compatibility normalization read the
            # encoded fullwidth "\uff0e\uff0e" as ".." and "\uff0f" as "/".
            folded = unicodedata.normalize("NFKC", unquote(segment, errors="strict"))
            if "/" in folded or "\\" in folded:
                raise _reject(
                    "it contains a character that normalizes to a slash or backslash"
                )
            if _is_dot_segment(folded):
                raise _reject("it contains a segment that normalizes to a dot segment")


def normalize_path(raw_path: bytes) -> str:
    """
    Return the canonical form of an ASGI ``raw_path``, or refuse it.

    Args:
        raw_path: the request target's path as received (percent-encoded, without
            the query string).

    Returns:
        The path with percent-encoded unreserved characters decoded and other
        escapes upper-cased. It starts with ``/``, has no dot segment and no empty
        segment except a single trailing slash, and normalizing it again returns it
        unchanged.

    Raises:
        PathRejectedError: the path is too long, does not start with ``/``, contains
            a control character, backslash, raw non-ASCII byte or unencoded
            delimiter, an encoded slash, backslash, nul or control character, a
            malformed or double percent escape, escapes that are not strict UTF-8
            (overlong forms such as ``%c0%ae``, surrogates, truncated sequences), a
            dot segment (however spelled) or an empty segment. The message never
            repeats the path.
    """
    if len(raw_path) > MAX_PATH_BYTES:
        raise _reject(f"it is longer than {MAX_PATH_BYTES} bytes")
    if not raw_path.startswith(b"/"):
        raise _reject("it does not start with a slash")
    path = _canonical_spelling(raw_path)
    if _DOUBLE_ESCAPE.search(path):
        raise _reject("it contains a double percent escape")
    _check_utf8(path)
    _check_segments(path)
    return path
