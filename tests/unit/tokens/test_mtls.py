"""Certificate binding (RFC 8705 §3): reading ``cnf.x5t#S256`` and checking it."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gatepass.errors import TokenError
from gatepass.tokens import (
    X5T_CLAIM,
    bound_thumbprint,
    certificate_thumbprint,
    check_certificate_binding,
)


class TestThumbprint:
    """The thumbprint is base64url(SHA-256(DER)) without padding."""

    @given(st.binary(min_size=1, max_size=512))
    def test_is_unpadded_base64url_of_sha256(self, der: bytes) -> None:
        """43 characters that decode back to the digest."""
        value = certificate_thumbprint(der)
        assert len(value) == 43
        assert "=" not in value
        assert base64.urlsafe_b64decode(value + "=") == hashlib.sha256(der).digest()


class TestBoundThumbprint:
    """Only a non-empty string under ``cnf`` counts as a binding."""

    @pytest.mark.parametrize(
        ("claims", "expected"),
        [
            ({"cnf": {"jkt": "k", X5T_CLAIM: "t"}}, "t"),
            ({"cnf": {"jkt": "k"}}, None),
            ({"cnf": {X5T_CLAIM: ""}}, None),
            ({"cnf": {X5T_CLAIM: 7}}, None),
            ({"cnf": "x5t"}, None),
            ({X5T_CLAIM: "t"}, None),
            ({}, None),
        ],
    )
    def test_reads_cnf(self, claims: dict[str, Any], expected: str | None) -> None:
        """The claim is read where RFC 8705 puts it, and nowhere else."""
        assert bound_thumbprint(claims) == expected


class TestCheckBinding:
    """A bound token needs the same certificate; an unbound one needs none."""

    def test_unbound_token_ignores_the_connection(self) -> None:
        """No x5t in the token: any connection (with or without a cert) is fine."""
        check_certificate_binding(None, None)
        check_certificate_binding(None, "abc")

    def test_same_certificate_passes(self) -> None:
        """The thumbprints match."""
        check_certificate_binding("abc", "abc")

    @pytest.mark.parametrize(
        ("presented", "message"),
        [(None, "none presented"), ("abd", "another client certificate")],
    )
    def test_bound_token_refused_elsewhere(
        self, presented: str | None, message: str
    ) -> None:
        """Missing or different certificate: invalid_token with the reason."""
        with pytest.raises(TokenError, match=message):
            check_certificate_binding("abc", presented)
