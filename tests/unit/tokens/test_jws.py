"""Tests for the strict compact JWS parser."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from gatepass.tokens import DPoPKey
from gatepass.tokens.jws import parse_compact, verify_signature

from . import forge


class TestParseCompact:
    """Parsing and signature checks."""

    def test_nan_is_not_json(self) -> None:
        """NaN in a payload is refused as not JSON (RFC 8259 §6)."""
        # The payload is the text {"exp":NaN}, which json.loads accepts by default.
        jws = parse_compact(f"{forge.segment({})}.eyJleHAiOk5hTn0.")
        with pytest.raises(ValueError, match="not json"):
            jws.claims()

    def test_unknown_algorithm_never_verifies(self) -> None:
        """An algorithm outside the implemented set is a failed verification."""
        key = DPoPKey.generate("ES256")
        jws = parse_compact(key.proof("GET", "https://a.example/"))
        assert verify_signature(jws, key.private_key.public_key(), "HS256") is False

    def test_wrong_key_family(self) -> None:
        """An Ed25519 key for an ES256 signature fails quietly."""
        key = DPoPKey.generate("ES256")
        jws = parse_compact(key.proof("GET", "https://a.example/"))
        other = ed25519.Ed25519PrivateKey.generate().public_key()
        assert verify_signature(jws, other, "ES256") is False
