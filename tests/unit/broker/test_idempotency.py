"""Idempotency-Key parsing and request fingerprints."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gatepass.broker.idempotency import (
    idempotency_key_from_headers,
    key_hash,
    request_fingerprint,
)
from gatepass.errors import InvalidRequestError


class TestIdempotencyKeyHeader:
    """The header is a structured-field string or a bare token, bounded."""

    def test_absent(self) -> None:
        """No header means no key."""
        assert idempotency_key_from_headers([]) is None

    @pytest.mark.parametrize(
        ("raw", "key"),
        [
            ("abc-123", "abc-123"),
            (
                '"8e03978e-40d5-43e8-bc93-6894a57f9324"',
                "8e03978e-40d5-43e8-bc93-6894a57f9324",
            ),
            ("  padded  ", "padded"),
        ],
    )
    def test_accepted_forms(self, raw: str, key: str) -> None:
        """Quoted and bare keys give the same key."""
        assert idempotency_key_from_headers([raw]) == key

    @pytest.mark.parametrize(
        "raw", ["", "a b", "x" * 256, '"open', 'close"', "tab\there", "é"]
    )
    def test_refused_forms(self, raw: str) -> None:
        """Spaces, controls, non-ASCII, unbalanced quotes and long keys are refused."""
        with pytest.raises(InvalidRequestError, match="idempotency-key"):
            idempotency_key_from_headers([raw])

    def test_repeated_header(self) -> None:
        """Two headers are refused."""
        with pytest.raises(InvalidRequestError, match="repeated"):
            idempotency_key_from_headers(["a", "b"])

    @given(st.text(max_size=300))
    def test_any_value_parses_or_is_refused(self, raw: str) -> None:
        """Any header value gives a bounded visible-ASCII key or invalid_request."""
        try:
            key = idempotency_key_from_headers([raw])
        except InvalidRequestError:
            return
        assert key is not None
        assert 1 <= len(key) <= 255
        assert all(0x21 <= ord(char) <= 0x7E and char != '"' for char in key)
        assert len(key_hash(key)) == 64


class TestFingerprint:
    """The fingerprint names exactly what the request asks for."""

    def test_action_order_does_not_matter(self) -> None:
        """The same actions in another order are the same request."""
        assert request_fingerprint("db", ["read", "write"], None) == (
            request_fingerprint("db", ["write", "read"], None)
        )

    @given(
        st.sampled_from(["target", "actions", "public_key"]),
        st.text(min_size=1, max_size=20),
    )
    def test_any_changed_field_changes_it(self, field: str, value: str) -> None:
        """Changing the target, the actions or the key gives another fingerprint."""
        target, actions, public_key = "db", ["read"], None
        base = request_fingerprint(target, actions, public_key)
        if field == "target":
            changed = request_fingerprint(value + "\x00", actions, public_key)
        elif field == "actions":
            changed = request_fingerprint(target, [*actions, value + "x"], public_key)
        else:
            changed = request_fingerprint(target, actions, value)
        assert base != changed
