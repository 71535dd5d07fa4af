"""Tests for request-path normalization."""

from __future__ import annotations

import pytest

from gatepass.errors import InvalidRequestError
from gatepass.proxy import PathRejectedError, normalize_path
from gatepass.proxy.paths import MAX_PATH_BYTES


class TestCanonicalPaths:
    """Paths that are accepted, and their canonical spelling."""

    @pytest.mark.parametrize(
        ("raw", "canonical"),
        [
            (b"/", "/"),
            (b"/v1/tickets", "/v1/tickets"),
            (b"/v1/tickets/", "/v1/tickets/"),
            (b"/v1/tickets/42", "/v1/tickets/42"),
            (b"/v1/%7euser", "/v1/~user"),
            (b"/v1/%41%62%2D%5F%2e1", "/v1/Ab-_.1"),
            (b"/v1/a%2ab", "/v1/a%2Ab"),
            (b"/v1/a%3fb%23c", "/v1/a%3Fb%23c"),
            (b"/v1/caf%c3%a9", "/v1/caf%C3%A9"),
            (b"/v1/a;b=c/d:e@f!$&'()*+,=", "/v1/a;b=c/d:e@f!$&'()*+,="),
            (b"/v1/100%25", "/v1/100%25"),
            (b"/v1/.well-known/x", "/v1/.well-known/x"),
            (b"/v1/...", "/v1/..."),
            (b"/v1/a..b", "/v1/a..b"),
        ],
    )
    def test_canonical_form(self, raw: bytes, canonical: str) -> None:
        """Unreserved escapes are decoded, other escapes upper-cased, the rest kept."""
        assert normalize_path(raw) == canonical

    def test_path_at_the_length_limit_is_accepted(self) -> None:
        """A path of exactly 2,048 bytes is accepted."""
        raw = b"/" + b"a" * (MAX_PATH_BYTES - 1)
        assert normalize_path(raw) == raw.decode()

    def test_error_is_an_invalid_request(self) -> None:
        """A rejection renders as invalid_request (400)."""
        with pytest.raises(PathRejectedError) as caught:
            normalize_path(b"/a/../b")
        assert isinstance(caught.value, InvalidRequestError)
        assert caught.value.code == "invalid_request"
        assert caught.value.http_status == 400


REJECTIONS = [
    (b"", "does not start with a slash"),
    (b"v1/tickets", "does not start with a slash"),
    (b"*", "does not start with a slash"),
    (b"/" + b"a" * MAX_PATH_BYTES, "longer than 2048 bytes"),
    (b"/a\x00b", "nul byte"),
    (b"/a\rb", "control character"),
    (b"/a\nb", "control character"),
    (b"/a\tb", "control character"),
    (b"/a\x7fb", "control character"),
    (b"/caf\xc3\xa9", "raw non-ascii byte"),
    (b"/a\\b", "backslash"),
    (b"/a\\..\\b", "backslash"),
    (b"/a b", "must be percent-encoded"),
    (b"/a?b", "must be percent-encoded"),
    (b"/a#b", "must be percent-encoded"),
    (b'/a"b', "must be percent-encoded"),
    (b"/a%2fb", "encoded slash"),
    (b"/a%2Fb", "encoded slash"),
    (b"/a%5cb", "encoded backslash"),
    (b"/a%5Cb", "encoded backslash"),
    (b"/a%00b", "encoded nul byte"),
    (b"/a%0d%0ab", "encoded control character"),
    (b"/a%7fb", "encoded control character"),
    (b"/a%", "malformed percent escape"),
    (b"/a%2", "malformed percent escape"),
    (b"/a%zz", "malformed percent escape"),
    (b"/a%+1", "malformed percent escape"),
    (b"/a%252e%252e/b", "double percent escape"),
    (b"/a%25%32%65", "double percent escape"),
    (b"/a//b", "empty segment"),
    (b"//a", "empty segment"),
    (b"/a//", "empty segment"),
    (b"/.", "dot segment"),
    (b"/..", "dot segment"),
    (b"/a/./b", "dot segment"),
    (b"/a/../b", "dot segment"),
    (b"/a/..", "dot segment"),
    (b"/a/../", "dot segment"),
    (b"/a/%2e%2e/b", "dot segment"),
    (b"/a/%2E%2e/b", "dot segment"),
    (b"/a/.%2e/b", "dot segment"),
    (b"/a/%2e./b", "dot segment"),
    (b"/a/%2e/b", "dot segment"),
    (b"/a/..;/b", "dot segment"),
    (b"/a/..;jsessionid=1/b", "dot segment"),
    (b"/a/..%3b/b", "dot segment"),
    (b"/a/%ef%bc%8e%ef%bc%8e/b", "normalizes to a dot segment"),
    (b"/a/%EF%BC%8Fb", "normalizes to a slash"),
    (b"/a/%EF%BC%BCb", "normalizes to a slash"),
    # Issue 7 item 6: escapes must decode as strict UTF-8 (RFC 3629 §3).
    (b"/a/%c0%ae%c0%ae/b", "invalid or overlong utf-8"),
    (b"/a/%C0%AE", "invalid or overlong utf-8"),
    (b"/a/%e0%80%ae", "invalid or overlong utf-8"),
    (b"/a/%f0%80%80%ae", "invalid or overlong utf-8"),
    (b"/a/%ed%a0%80", "invalid or overlong utf-8"),
    (b"/a/%f4%90%80%80", "invalid or overlong utf-8"),
    (b"/a/%ff", "invalid or overlong utf-8"),
    (b"/a/%c3", "invalid or overlong utf-8"),
    (b"/a/%c3x", "invalid or overlong utf-8"),
    (b"/a/%c2%85", "encoded control character"),
]


class TestRejections:
    """Every spelling that could be read two ways is refused."""

    def test_issue7_6_overlong_dot_dot_is_refused(self) -> None:
        """The overlong %c0%ae%c0%ae, '..' to a lenient decoder, never normalizes."""
        with pytest.raises(PathRejectedError, match="overlong"):
            normalize_path(b"/v1/tickets/%c0%ae%c0%ae/admin")

    def test_valid_multibyte_escapes_pass(self) -> None:
        """Well-formed UTF-8 escapes of 2, 3 and 4 bytes are kept."""
        raw = b"/v1/%c3%a9/%e2%82%ac/%f0%9f%94%91"
        assert normalize_path(raw) == "/v1/%C3%A9/%E2%82%AC/%F0%9F%94%91"

    @pytest.mark.parametrize(("raw", "reason"), REJECTIONS)
    def test_rejected_with_its_reason(self, raw: bytes, reason: str) -> None:
        """The path is refused with PathRejectedError and a specific message."""
        with pytest.raises(PathRejectedError, match=reason):
            normalize_path(raw)

    @pytest.mark.parametrize("raw", [raw for raw, _ in REJECTIONS])
    def test_message_never_echoes_the_path(self, raw: bytes) -> None:
        """The message is lower case and never repeats the path."""
        marked = b"/canary-7f3a9c" + raw if raw.startswith(b"/") else raw + b"canary"
        with pytest.raises(PathRejectedError) as caught:
            normalize_path(marked)
        assert "canary" not in str(caught.value)
        assert str(caught.value) == str(caught.value).lower()
