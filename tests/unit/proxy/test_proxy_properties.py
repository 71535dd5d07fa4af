"""Property tests: hostile paths never escape a rule, limits and injection hold."""

from __future__ import annotations

import posixpath
import unicodedata
from urllib.parse import parse_qsl, unquote, unquote_to_bytes

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gatepass.clock import FrozenClock
from gatepass.proxy import (
    Compartment,
    PathRejectedError,
    PathRule,
    RuleSet,
    TokenBucket,
    UpstreamAuth,
    forward_request_headers,
    normalize_path,
)
from gatepass.proxy.headers import ALWAYS_DROPPED_REQUEST_HEADERS
from gatepass.secret import Secret

from .conftest import CANARY

EXAMPLES = settings(max_examples=100, deadline=None)

# Pieces an attacker splices together to confuse path handling.
HOSTILE_PIECES = [
    b"/", b"//", b".", b"..", b"...", b"%2e", b"%2E", b"%2e%2e", b"%2E%2e", b".%2e",
    b"%2e.", b"%2f", b"%2F", b"%5c", b"%5C", b"\\", b"%00", b"%0a", b"%0D", b"%",
    b"%%", b"%2", b"%zz", b"%25", b"%252e", b"%252f", b"%7e", b"%7E", b"~", b";",
    b"..;", b";x=1", b"%3b", b"?", b"#", b"%3f", b"%23", b" ", b"%20", b"\t",
    b"%ef%bc%8e", b"%EF%BC%8F", b"%c0%ae", b"\xc0\xae", b"\xef\xbc\x8e",
    b"v1", b"V1", b"tickets", b"Tickets", b"tickets-admin", b"admin", b"a", b"1",
    b"%41", b"%61dmin", b"%74ickets",
]  # fmt: skip
PREFIXES = [b"", b"/", b"/v1/tickets/", b"/v1/tickets", b"/v1/", b"/v1/tickets/1/"]


@st.composite
def hostile_paths(draw: st.DrawFn) -> bytes:
    """Draw a raw path spliced from hostile pieces, often under the allowed prefix."""
    prefix = draw(st.sampled_from(PREFIXES))
    pieces = draw(st.lists(st.sampled_from(HOSTILE_PIECES), max_size=12))
    return prefix + b"".join(pieces)


safe_segments = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_~!$&'()*+,=:@",
    min_size=1,
    max_size=12,
)

unreserved_segments = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_~",
    min_size=1,
    max_size=12,
)


def lenient_upstream_view(path: str) -> str:
    """Read a path as a forgiving upstream might: decode twice, fold, resolve."""
    decoded = unquote(unquote(path, errors="replace"), errors="replace")
    folded = unicodedata.normalize("NFKC", decoded).replace("\\", "/")
    segments = [segment.split(";", 1)[0] for segment in folded.split("/")]
    return posixpath.normpath("/".join(segments))


def is_canonical(path: str) -> None:
    """Assert the invariants of a canonical path."""
    assert path.startswith("/")
    assert "//" not in path
    segments = path[1:].split("/")
    assert "." not in segments
    assert ".." not in segments


class TestNormalizeProperties:
    """normalize_path invariants over arbitrary and hostile input."""

    @EXAMPLES
    @given(st.binary(max_size=64))
    def test_any_bytes_normalize_or_reject(self, raw: bytes) -> None:
        """Any bytes normalize to a canonical path or raise PathRejectedError."""
        try:
            path = normalize_path(raw)
        except PathRejectedError:
            return
        is_canonical(path)
        assert normalize_path(path.encode()) == path

    @EXAMPLES
    @given(hostile_paths())
    def test_hostile_paths_normalize_or_reject(self, raw: bytes) -> None:
        """Hostile paths are rejected or canonical and idempotent."""
        try:
            path = normalize_path(raw)
        except PathRejectedError:
            return
        is_canonical(path)
        assert normalize_path(path.encode()) == path

    @EXAMPLES
    @given(st.lists(safe_segments, max_size=8), st.booleans())
    def test_plain_paths_are_unchanged(self, segments: list[str], slash: bool) -> None:
        """A path of plain segments is accepted as it is."""
        raw = "/" + "/".join(segments) + ("/" if slash and segments else "")
        assert normalize_path(raw.encode()) == raw

    @EXAMPLES
    @given(st.lists(unreserved_segments, min_size=1, max_size=6))
    def test_escaping_unreserved_is_undone(self, segments: list[str]) -> None:
        """Escaping every unreserved character normalizes back to the plain path."""
        raw = "/" + "/".join(segments)
        escaped = "/" + "/".join(
            "".join(f"%{byte:02x}" for byte in segment.encode()) for segment in segments
        )
        assert normalize_path(escaped.encode()) == raw


class TestStrictUtf8:
    """Issue 7 item 6: whatever normalizes decodes as strict UTF-8."""

    @EXAMPLES
    @given(raw=st.binary(max_size=40).map(lambda b: b"/" + b"".join(
        b"%%%02x" % byte for byte in b)))  # fmt: skip
    def test_issue7_6_accepted_escapes_are_strict_utf8(self, raw: bytes) -> None:
        """Any run of escapes is refused unless it is valid, shortest-form UTF-8."""
        try:
            path = normalize_path(raw)
        except PathRejectedError:
            return
        unquote_to_bytes(path).decode("utf-8", "strict")

    @EXAMPLES
    @given(char=st.characters(min_codepoint=0x20, max_codepoint=0x7E))
    def test_issue7_6_overlong_forms_of_ascii_are_refused(self, char: str) -> None:
        """The 2-byte overlong form of any ASCII character is refused."""
        value = ord(char)
        overlong = b"/a/%%%02X%%%02X" % (0xC0 | value >> 6, 0x80 | value & 0x3F)
        with pytest.raises(PathRejectedError):
            normalize_path(overlong)


class TestRulesNeverEscape:
    """A path matching /v1/tickets/** stays under /v1/tickets, however spelled."""

    @EXAMPLES
    @given(hostile_paths())
    def test_matching_path_stays_under_the_prefix(self, raw: bytes) -> None:
        """Rejected, or the path and any lenient reading of it stay in the prefix."""
        rules = RuleSet.from_mapping({"read": ["GET /v1/tickets/**"]})
        try:
            path = normalize_path(raw)
        except PathRejectedError:
            return
        if not rules.allows(["read"], "GET", path):
            return
        assert path == "/v1/tickets" or path.startswith("/v1/tickets/")
        view = lenient_upstream_view(path)
        assert view == "/v1/tickets" or view.startswith("/v1/tickets/")

    @EXAMPLES
    @given(hostile_paths())
    def test_single_segment_rule_matches_one_segment(self, raw: bytes) -> None:
        """A path matching /v1/tickets/* names one ticket, even read leniently."""
        rule = PathRule("PATCH", "/v1/tickets/*")
        try:
            path = normalize_path(raw)
        except PathRejectedError:
            return
        if rule.matches("PATCH", path):
            view = lenient_upstream_view(path)
            assert view.startswith("/v1/tickets/")
            assert view.count("/") == 3

    @EXAMPLES
    @given(st.binary(max_size=40))
    def test_raw_strings_never_match_unless_canonical(self, raw: bytes) -> None:
        """A rule matches a string only if normalize_path leaves it unchanged."""
        text = raw.decode("latin-1")
        if PathRule("GET", "/**").matches("GET", text):
            assert normalize_path(raw) == text


header_names = st.sampled_from(
    [
        *sorted(ALWAYS_DROPPED_REQUEST_HEADERS),
        "x-forwarded-for", "X-Forwarded-Host", "accept", "Accept", "content-type",
        "user-agent", "x-custom", "connection",
    ]
)  # fmt: skip


class TestHeaderProperties:
    """Forwarding never lets a sensitive header through."""

    @EXAMPLES
    @given(
        st.lists(st.tuples(header_names, st.binary(max_size=16)), max_size=12),
        st.frozensets(header_names),
    )
    def test_sensitive_headers_never_forwarded(
        self, headers: list[tuple[str, bytes]], allowed: frozenset[str]
    ) -> None:
        """Whatever the allow-list, dropped names never appear in the output."""
        raw = [(name.encode(), value) for name, value in headers]
        out = forward_request_headers(raw, allowed=allowed)
        for name, _ in out:
            text = name.decode()
            assert text == text.lower()
            assert text not in ALWAYS_DROPPED_REQUEST_HEADERS
            assert not text.startswith("x-forwarded-")
            assert text in {entry.lower() for entry in allowed}


class TestLimitProperties:
    """A token bucket never grants more than burst plus refill."""

    @EXAMPLES
    @given(
        st.floats(min_value=0.1, max_value=50),
        st.integers(min_value=1, max_value=20),
        st.lists(st.floats(min_value=0, max_value=2), max_size=60),
    )
    def test_grants_are_bounded(
        self, rate: float, burst: int, gaps: list[float]
    ) -> None:
        """Over any schedule, grants never exceed burst + rate * elapsed."""
        clock = FrozenClock()
        bucket = TokenBucket(rate, burst, clock=clock)
        granted = 0
        for gap in gaps:
            clock.advance(gap)
            granted += bucket.take("k")
        assert granted <= burst + rate * sum(gaps) + 1e-6


class TestInjectionProperties:
    """Query injection leaves exactly one credential, the route's."""

    @EXAMPLES
    @given(
        st.text(
            alphabet=st.characters(codec="latin-1", exclude_characters="#"),
            max_size=40,
        )
    )
    def test_exactly_one_api_key(self, query: str) -> None:
        """After apply, the only api_key parameter carries the secret."""
        auth = UpstreamAuth(method="query", name="api_key", secret_env="UNUSED")
        compartment = Compartment("tickets", auth, Secret(CANARY))
        _, out = compartment.apply([], query)
        pairs = [
            pair
            for part in out.split("&")
            for pair in parse_qsl(part.replace(";", "&"), keep_blank_values=True)
        ]
        keys = [value for name, value in pairs if name.casefold() == "api_key"]
        assert keys == [CANARY]
