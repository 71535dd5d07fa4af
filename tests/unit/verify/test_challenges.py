"""Tests for the DPoP challenge, the status and the body of a refused access token."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gatepass.errors import (
    DPoPNonceRequiredError,
    DPoPProofError,
    GatepassError,
    InsufficientScopeError,
    InvalidRequestError,
    TokenError,
    TokenMissingError,
    TokenRevokedError,
)
from gatepass.tokens import DPOP_ALGORITHMS
from gatepass.verify import (
    challenge_headers,
    error_body,
    refusal_status,
    www_authenticate,
)

from .grammar import RFC6750_VALUE, parse_challenge

# Text a detail could hold: everything, with the characters that break a header
# (quote, backslash, CR, LF, NUL, DEL, non-ASCII) drawn often.
hostile_text = st.text(
    alphabet=st.one_of(
        st.sampled_from(['"', "\\", "\r", "\n", "\x00", "\x7f", "\t", ",", "=", " "]),
        st.characters(),
    ),
    max_size=40,
)
safe_text = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E).filter(
        lambda character: character not in '"\\'
    ),
    max_size=40,
)
error_classes = st.sampled_from(
    [
        TokenError,
        TokenRevokedError,
        DPoPProofError,
        InsufficientScopeError,
        InvalidRequestError,
    ]
)


def parsed(error: GatepassError | None = None, **extra: str) -> dict[str, str]:
    """Build a challenge and parse it back, checking its scheme."""
    scheme, params = parse_challenge(www_authenticate(error, **extra))
    assert scheme == "DPoP"
    return params


class TestWWWAuthenticate:
    """The ``WWW-Authenticate: DPoP`` challenge."""

    @pytest.mark.parametrize("error", [None, TokenMissingError("missing access token")])
    def test_no_credentials_is_a_challenge_without_error(
        self, error: GatepassError | None
    ) -> None:
        """RFC 6750 §3.1: a request without credentials gets no error code."""
        assert set(parsed(error)) == {"algs"}

    def test_error_is_named_with_its_description(self) -> None:
        """A refused token names the error code and its description."""
        error = TokenError("token audience does not match")
        params = parsed(error)
        assert params["error"] == error.code
        assert params["error_description"] == error.detail
        assert "scope" not in params

    def test_insufficient_scope_names_the_scope(self) -> None:
        """RFC 6750 §3: insufficient_scope says which scope the request needs."""
        params = parsed(InsufficientScopeError("no write"), scope="write")
        assert params["error"] == "insufficient_scope"
        assert params["scope"] == "write"

    def test_algs_name_every_dpop_algorithm(self) -> None:
        """RFC 9449 §7.1: algs lists every algorithm a proof may use."""
        for error in (None, TokenError("bad"), DPoPProofError("bad proof")):
            assert set(parsed(error)["algs"].split(" ")) == DPOP_ALGORITHMS

    def test_issue12_resource_metadata_is_a_parameter(self) -> None:
        """RFC 9728 §5.1: the protected-resource metadata URL can be named."""
        url = "https://api.example/.well-known/oauth-protected-resource"
        assert parsed(resource_metadata=url)["resource_metadata"] == url
        assert parsed(TokenError("bad"), resource_metadata=url)["error"] == (
            "invalid_token"
        )

    @given(
        error_class=error_classes,
        detail=hostile_text,
        scope=st.none() | hostile_text,
        metadata=st.none() | hostile_text,
    )
    def test_any_detail_parses_back_as_one_challenge(
        self,
        error_class: type[GatepassError],
        detail: str,
        scope: str | None,
        metadata: str | None,
    ) -> None:
        """Whatever the texts, the value is one well-formed ASCII challenge."""
        value = www_authenticate(
            error_class(detail), scope=scope, resource_metadata=metadata
        )
        value.encode("ascii")
        scheme, params = parse_challenge(value)
        assert scheme == "DPoP"
        assert params["error"] == error_class.code
        for name in ("error", "error_description", "scope", "resource_metadata"):
            assert RFC6750_VALUE.fullmatch(params.get(name, "")) is not None
        assert ("scope" in params) == (scope is not None)

    @given(detail=safe_text.filter(bool), scope=safe_text)
    def test_safe_text_is_kept_as_it_is(self, detail: str, scope: str) -> None:
        """A detail already within RFC 6750's characters is not altered."""
        params = parsed(TokenError(detail), scope=scope)
        assert params["error_description"] == detail
        assert params["scope"] == scope

    def test_unsafe_characters_are_replaced_not_escaped(self) -> None:
        """Quotes become apostrophes, controls spaces: no quoted-pair is needed."""
        params = parsed(TokenError('say "hi"\r\nx\\y'))
        assert params["error_description"] == "say 'hi'  xy"


class TestReader:
    """The test's own challenge reader is strict, so the properties above mean it."""

    @pytest.mark.parametrize(
        "value",
        [
            'DPoP error="a"b"',
            'DPoP error="a\r\nb"',
            'DPoP error="a", error="b"',
            "DPoP error=",
            'DPoP error="a",',
            '"DPoP" error="a"',
        ],
    )
    def test_broken_challenges_are_refused(self, value: str) -> None:
        """An unescaped quote, a CR LF, a repeat or a dangling comma is refused."""
        with pytest.raises(ValueError, match=r"."):
            parse_challenge(value)


class TestChallengeHeaders:
    """The challenge as ASGI headers."""

    def test_challenge_is_one_www_authenticate_header(self) -> None:
        """A plain error gives one WWW-Authenticate header."""
        headers = challenge_headers(TokenError("bad"))
        assert [name for name, _ in headers] == [b"www-authenticate"]
        assert headers[0][1].decode() == www_authenticate(TokenError("bad"))

    def test_nonce_demand_carries_the_nonce(self) -> None:
        """RFC 9449 §9: a nonce demand sends DPoP-Nonce beside the challenge."""
        headers = dict(
            challenge_headers(DPoPNonceRequiredError("nonce needed", nonce="n-1"))
        )
        assert headers[b"dpop-nonce"] == b"n-1"
        assert b'error="use_dpop_nonce"' in headers[b"www-authenticate"]

    def test_scope_reaches_the_header(self) -> None:
        """The scope given is in the header value."""
        headers = dict(challenge_headers(InsufficientScopeError("no"), scope="write"))
        assert b'scope="write"' in headers[b"www-authenticate"]


class TestRefusalStatus:
    """The status a resource server answers with."""

    @pytest.mark.parametrize(
        ("error", "status"),
        [
            (TokenMissingError("missing access token"), 401),
            (TokenRevokedError("revoked"), 401),
            (DPoPProofError("bad proof"), 401),
            (DPoPNonceRequiredError("nonce", nonce="n"), 401),
            (InsufficientScopeError("no write"), 403),
            (InvalidRequestError("more than one authorization header"), 400),
        ],
    )
    def test_status_follows_rfc_9449_and_6750(
        self, error: GatepassError, status: int
    ) -> None:
        """Bad tokens and proofs are 401, too little scope 403, the rest 400."""
        assert refusal_status(error) == status


class TestErrorBody:
    """The JSON body of a refusal."""

    def test_body_is_the_broker_error_shape(self) -> None:
        """The body is the code and the description, nothing else."""
        error = TokenError("token is no longer active")
        assert json.loads(error_body(error)) == {
            "error": "invalid_token",
            "error_description": "token is no longer active",
        }
