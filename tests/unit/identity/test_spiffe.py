"""Tests for the SPIFFE ID parser (SPIFFE-ID §2)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gatepass.identity import SpiffeId, parse_spiffe_id
from gatepass.identity.spiffe import parse_trust_domain

TRUST_DOMAIN_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789.-_"
SEGMENT_CHARS = TRUST_DOMAIN_CHARS + "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

trust_domains = st.text(TRUST_DOMAIN_CHARS, min_size=1, max_size=40)
segments = st.text(SEGMENT_CHARS, min_size=1, max_size=20).filter(
    lambda text: text not in {".", ".."}
)
paths = st.lists(segments, max_size=6).map(
    lambda parts: "".join(f"/{part}" for part in parts)
)


class TestParseSpiffeId:
    """Canonical IDs parse; everything else is refused, never normalized."""

    @given(trust_domain=trust_domains, path=paths)
    def test_round_trip(self, trust_domain: str, path: str) -> None:
        """Any well-formed ID parses to its parts and prints back identically."""
        text = f"spiffe://{trust_domain}{path}"
        parsed = parse_spiffe_id(text)
        assert parsed == SpiffeId(trust_domain, path)
        assert str(parsed) == text
        assert "/".join(parsed.segments) == path.removeprefix("/")

    @given(text=st.text(max_size=80))
    def test_any_text_parses_canonically_or_raises(self, text: str) -> None:
        """Whatever parses prints back exactly; anything else is a ValueError."""
        try:
            parsed = parse_spiffe_id(text)
        except ValueError:
            return
        assert str(parsed) == text

    @given(trust_domain=trust_domains, path=paths, upper=st.sampled_from("ABCXYZ"))
    def test_upper_case_trust_domain_is_refused(
        self, trust_domain: str, path: str, upper: str
    ) -> None:
        """Trust domains are lower case: a capital is a different, refused spelling."""
        with pytest.raises(ValueError, match="trust domain"):
            parse_spiffe_id(f"spiffe://{upper}{trust_domain}{path}")

    @pytest.mark.parametrize(
        ("text", "reason"),
        [
            ("", "spiffe://"),
            ("SPIFFE://example.org/a", "spiffe://"),
            ("https://example.org/a", "spiffe://"),
            ("spiffe://", "empty"),
            ("spiffe:///a", "empty"),
            ("spiffe://example.org:443/a", "trust domain"),
            ("spiffe://user@example.org/a", "trust domain"),
            ("spiffe://example.org/a/", "empty segment"),
            ("spiffe://example.org//a", "empty segment"),
            ("spiffe://example.org/a/./b", "'.'"),
            ("spiffe://example.org/a/../b", "'.'"),
            ("spiffe://example.org/a?x=1", "path may contain"),
            ("spiffe://example.org/a#f", "path may contain"),
            ("spiffe://example.org/a%20b", "path may contain"),
            ("spiffe://example.org/é", "path may contain"),
            ("spiffe://exa mple.org/a", "trust domain"),
        ],
    )
    def test_malformed_ids_are_refused(self, text: str, reason: str) -> None:
        """Each malformed spelling is refused with its reason."""
        with pytest.raises(ValueError, match=reason):
            parse_spiffe_id(text)

    def test_length_limits(self) -> None:
        """IDs are at most 2048 bytes and trust domains 255 characters."""
        assert parse_spiffe_id("spiffe://a/" + "b" * 2037).trust_domain == "a"
        with pytest.raises(ValueError, match="2048"):
            parse_spiffe_id("spiffe://a/" + "b" * 2038)
        with pytest.raises(ValueError, match="255"):
            parse_trust_domain("a" * 256)

    def test_non_string_is_refused(self) -> None:
        """Only strings are SPIFFE IDs."""
        with pytest.raises(ValueError, match="not a string"):
            parse_spiffe_id(5)
        with pytest.raises(ValueError, match="empty"):
            parse_trust_domain(None)

    def test_trust_domain_id_has_no_path(self) -> None:
        """The ID of a trust domain itself parses with an empty path."""
        parsed = parse_spiffe_id("spiffe://example.org")
        assert parsed.path == ""
        assert parsed.segments == ()
