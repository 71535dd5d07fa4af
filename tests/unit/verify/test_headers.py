"""Tests for reading the one access token and the one DPoP proof of a request."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gatepass.errors import (
    DPoPProofError,
    GatepassError,
    InvalidRequestError,
    TokenError,
    TokenMissingError,
)
from gatepass.verify import (
    Header,
    PresentedCredentials,
    dpop_access_token,
    presented_credentials,
)

TOKEN = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhZ3QifQ.c2ln"
PROOF = "eyJ0eXAiOiJkcG9wK2p3dCJ9.e30.c2ln"
# RFC 6750 §2.1 b64token, written out again so the test does not trust the code.
B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")

b64tokens = st.from_regex(B64TOKEN, fullmatch=True)
header_names = st.one_of(
    st.sampled_from(
        [b"authorization", b"Authorization", b"AUTHORIZATION", b"dpop", b"DPoP"]
    ),
    st.sampled_from([b"host", b"x-dpop", b"authorizations", b"content-type"]),
    st.binary(max_size=12),
)
header_value_texts = st.one_of(
    b64tokens.map(lambda token: f"DPoP {token}"),
    b64tokens.map(lambda token: f"Bearer {token}"),
    st.sampled_from(["", " ", "DPoP", "DPoP ", "dpop a=b", "DPoP a b", "Basic x"]),
    st.text(max_size=30),
)
header_values = st.one_of(
    header_value_texts.map(lambda text: text.encode("utf-8")),
    st.binary(max_size=30),
)
header_lists = st.lists(st.tuples(header_names, header_values), max_size=6)


def named(headers: list[Header], name: bytes) -> list[bytes]:
    """Return the values of one header, matched case-insensitively."""
    return [value for key, value in headers if key.lower() == name]


def expected_refusal(headers: list[Header]) -> type[GatepassError] | None:
    """The error the documented rules give for these headers, None for none."""
    authorization = named(headers, b"authorization")
    if not authorization:
        return TokenMissingError
    if len(authorization) > 1:
        return InvalidRequestError
    if len(named(headers, b"dpop")) > 1:
        return DPoPProofError
    value = authorization[0].decode("latin-1").strip()
    if not value:
        return TokenMissingError
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "dpop" or B64TOKEN.fullmatch(token.strip()) is None:
        return TokenError
    return None


def credentials(*pairs: tuple[str, str]) -> PresentedCredentials:
    """Read credentials from text header pairs."""
    return presented_credentials(
        [(name.encode(), value.encode()) for name, value in pairs]
    )


class TestPresentedCredentials:
    """Reading the two headers."""

    def test_one_token_and_one_proof_are_read(self) -> None:
        """The token comes without its scheme, the proof as it was sent."""
        read = credentials(("authorization", f"DPoP {TOKEN}"), ("dpop", PROOF))
        assert (read.token, read.proof) == (TOKEN, PROOF)

    def test_names_and_scheme_are_case_insensitive(self) -> None:
        """Header names and the scheme match whatever their case."""
        read = credentials(("Authorization", f"dpop {TOKEN}"), ("DPoP", PROOF))
        assert (read.token, read.proof) == (TOKEN, PROOF)

    def test_no_proof_is_none(self) -> None:
        """Without a DPoP header the proof is None, for the verifier to refuse."""
        assert credentials(("authorization", f"DPoP {TOKEN}")).proof is None

    def test_missing_authorization_is_token_missing(self) -> None:
        """No Authorization header: TokenMissingError, whatever else was sent."""
        with pytest.raises(TokenMissingError):
            credentials(("dpop", PROOF), ("dpop", PROOF))

    @pytest.mark.parametrize("value", ["", "   "])
    def test_empty_authorization_is_token_missing(self, value: str) -> None:
        """An empty Authorization header presents no credentials either."""
        with pytest.raises(TokenMissingError):
            credentials(("authorization", value))

    def test_two_authorization_headers_are_invalid_request(self) -> None:
        """RFC 6750 §3.1: a repeated credential is invalid_request."""
        with pytest.raises(InvalidRequestError, match="authorization"):
            credentials(
                ("authorization", f"DPoP {TOKEN}"), ("Authorization", f"DPoP {TOKEN}")
            )

    def test_two_dpop_headers_are_a_proof_error(self) -> None:
        """RFC 9449 §4.3 item 1: not more than one DPoP header."""
        with pytest.raises(DPoPProofError, match="more than one dpop header"):
            credentials(
                ("authorization", f"DPoP {TOKEN}"), ("dpop", PROOF), ("DPoP", PROOF)
            )

    def test_repr_shows_neither_token_nor_proof(self) -> None:
        """The credentials never show in a repr or a log line."""
        read = credentials(("authorization", f"DPoP {TOKEN}"), ("dpop", PROOF))
        assert TOKEN not in repr(read)
        assert PROOF not in repr(read)

    @given(headers=header_lists)
    def test_any_header_list_yields_credentials_or_a_documented_error(
        self, headers: list[Header]
    ) -> None:
        """Any headers give one token and proof, or the documented error."""
        expected = expected_refusal(headers)
        if expected is not None:
            with pytest.raises(GatepassError) as caught:
                presented_credentials(headers)
            assert type(caught.value) is expected
            return
        read = presented_credentials(headers)
        proofs = named(headers, b"dpop")
        assert B64TOKEN.fullmatch(read.token) is not None
        assert read.token in named(headers, b"authorization")[0].decode("latin-1")
        assert read.proof == (proofs[0].decode("latin-1") if proofs else None)

    @given(
        token=b64tokens,
        scheme=st.sampled_from(["DPoP", "dpop", "DPOP"]),
        proof=st.text(max_size=40),
        spaces=st.integers(min_value=1, max_value=3),
    )
    def test_well_formed_credentials_round_trip(
        self, token: str, scheme: str, proof: str, spaces: int
    ) -> None:
        """A DPoP b64token and any one proof are read back as they were sent."""
        headers = [
            (b"authorization", f"{scheme}{' ' * spaces}{token}".encode()),
            (b"dpop", proof.encode("utf-8")),
        ]
        read = presented_credentials(headers)
        assert read.token == token
        assert read.proof == proof.encode("utf-8").decode("latin-1")


class TestDPoPAccessToken:
    """The ``Authorization`` value on its own."""

    def test_bearer_use_of_a_bound_token_is_refused(self) -> None:
        """RFC 9449 §7.1: a DPoP-bound token sent as Bearer is refused."""
        with pytest.raises(TokenError, match="bearer"):
            dpop_access_token(f"Bearer {TOKEN}")

    def test_other_scheme_is_refused(self) -> None:
        """Basic and friends are refused."""
        with pytest.raises(TokenError, match="scheme"):
            dpop_access_token("Basic dXNlcjpwYXNz")

    @pytest.mark.parametrize(
        "value", ["DPoP", "DPoP a b", "DPoP a,b", 'DPoP "x"', "DPoP a=b", "DPoP é"]
    )
    def test_a_credential_that_is_not_a_b64token_is_refused(self, value: str) -> None:
        """RFC 6750 §2.1: only a b64token, padding at its end only, is a token."""
        with pytest.raises(TokenError, match="malformed"):
            dpop_access_token(value)

    def test_padding_at_the_end_is_accepted(self) -> None:
        """Trailing '=' padding is part of the b64token syntax."""
        assert dpop_access_token("DPoP abc==") == "abc=="
