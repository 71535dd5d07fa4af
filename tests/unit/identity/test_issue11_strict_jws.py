"""Regression tests for the stricter assertions of issue 11 (a black-box finding)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

import pytest

from gatepass.clock import FrozenClock
from gatepass.errors import DPoPProofError, InvalidGrantError, TokenError
from gatepass.identity import AgentAssertionVerifier
from gatepass.tokens import (
    DPoPKey,
    DPoPVerifier,
    JWKSKeySource,
    JWTVerifier,
    MemoryReplayCache,
    algorithm_matches,
    canonical_algorithm,
    parse_compact,
    public_jwk_from_key,
    verify_signature,
)

from .conftest import AUDIENCE, DictAgentDirectory, Registered
from .jose import b64, generate, raw_signature, segment, sign_jws

TOKEN_URL = f"{AUDIENCE}/token"


def claims_of(
    registered: Registered, clock: FrozenClock, **overrides: Any
) -> dict[str, Any]:
    """Valid assertion claims with overrides."""
    now = int(clock.now().timestamp())
    claims: dict[str, Any] = {
        "iss": registered.agent.id,
        "sub": registered.agent.id,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 60,
        "jti": "issue11",
    }
    claims.update(overrides)
    return claims


def assertion(
    registered: Registered,
    clock: FrozenClock,
    *,
    alg: str | None = None,
    **overrides: Any,
) -> str:
    """An assertion signed by the agent, with any alg name in its header."""
    header = {"alg": alg or registered.agent.algorithm, "typ": "JWT"}
    return sign_jws(
        registered.key,
        header,
        claims_of(registered, clock, **overrides),
        registered.agent.algorithm,
    )


def padded(token: str, index: int) -> str:
    """The token with ``=`` padding added to one segment."""
    parts = token.split(".")
    parts[index] += "=" * (-len(parts[index]) % 4 or 4)
    return ".".join(parts)


def respelled_signature(token: str) -> str:
    """The same signature bytes, spelled with non-zero unused trailing bits."""
    header, payload, signature = token.split(".")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    unused = {2: 0b1111, 3: 0b11}[len(signature) % 4]
    last = alphabet[alphabet.index(signature[-1]) | unused]
    return f"{header}.{payload}.{signature[:-1]}{last}"


class TestIssue11AssertionAudience:
    """The aud of an assertion is one string naming this broker (RFC 7523bis)."""

    @pytest.mark.parametrize(
        "aud",
        [
            [AUDIENCE],
            [TOKEN_URL],
            [AUDIENCE, TOKEN_URL],
            [AUDIENCE, "https://other.example"],
        ],
    )
    def test_issue11_assertion_audience_array_is_refused(
        self,
        verifier: AgentAssertionVerifier,
        registered: Registered,
        clock: FrozenClock,
        aud: list[str],
    ) -> None:
        """An aud array is refused even when it names only this broker."""
        with pytest.raises(InvalidGrantError, match="single string"):
            verifier.verify(assertion(registered, clock, aud=aud))

    @pytest.mark.parametrize(
        "aud", ["https://other.example", f"{AUDIENCE}/", f"{TOKEN_URL}/x", ""]
    )
    def test_issue11_assertion_audience_naming_another_server_is_refused(
        self,
        verifier: AgentAssertionVerifier,
        registered: Registered,
        clock: FrozenClock,
        aud: str,
    ) -> None:
        """Only the exact issuer or token endpoint URL is accepted."""
        with pytest.raises(InvalidGrantError, match="audience is not accepted"):
            verifier.verify(assertion(registered, clock, aud=aud))

    @pytest.mark.parametrize("aud", [AUDIENCE, TOKEN_URL])
    def test_issue11_issuer_or_token_endpoint_is_accepted(
        self,
        verifier: AgentAssertionVerifier,
        registered: Registered,
        clock: FrozenClock,
        aud: str,
    ) -> None:
        """The issuer and the token endpoint, as one string, both verify."""
        assert verifier.verify(assertion(registered, clock, aud=aud)).agent == (
            registered.agent
        )


class TestIssue11CanonicalSegments:
    """Every JWS gatepass parses is canonical unpadded base64url (RFC 7515 §2)."""

    @pytest.mark.parametrize("index", [0, 1, 2])
    def test_issue11_padded_assertion_segment_is_refused(
        self,
        verifier: AgentAssertionVerifier,
        registered: Registered,
        clock: FrozenClock,
        index: int,
    ) -> None:
        """A valid assertion with '=' padding on any segment is malformed."""
        token = assertion(registered, clock)
        assert verifier.verify(token).agent == registered.agent
        with pytest.raises(InvalidGrantError, match="malformed assertion"):
            verifier.verify(padded(assertion(registered, clock, jti="other"), index))

    def test_issue11_agent_signed_padded_header_is_refused(
        self,
        verifier: AgentAssertionVerifier,
        registered: Registered,
        clock: FrozenClock,
    ) -> None:
        """A padded header is refused even when the signature covers the padding."""
        algorithm = registered.agent.algorithm
        header = padded(segment({"alg": algorithm, "typ": "JWT"}), 0)
        signing_input = f"{header}.{segment(claims_of(registered, clock))}"
        signature = raw_signature(registered.key, algorithm, signing_input.encode())
        token = f"{signing_input}.{b64(signature)}"
        with pytest.raises(InvalidGrantError, match="malformed assertion"):
            verifier.verify(token)

    def test_issue11_non_canonical_signature_is_refused(
        self,
        verifier: AgentAssertionVerifier,
        registered: Registered,
        clock: FrozenClock,
    ) -> None:
        """A second spelling of the same signature bytes is malformed."""
        token = respelled_signature(assertion(registered, clock))
        with pytest.raises(InvalidGrantError, match="malformed assertion"):
            verifier.verify(token)

    def test_issue11_padded_access_token_is_refused(self, clock: FrozenClock) -> None:
        """Resource-server verification refuses a padded token before any key."""
        source = JWKSKeySource.from_jwks({"keys": []}, clock=clock)
        verifier = JWTVerifier(source, issuer=AUDIENCE, clock=clock)
        token = padded(sign_jws_es256({"typ": "at+jwt"}), 2)
        with pytest.raises(TokenError, match="malformed token"):
            verifier.verify(token, typ="at+jwt", audience="https://api.example")

    def test_issue11_padded_dpop_proof_is_refused(self, clock: FrozenClock) -> None:
        """A DPoP proof with a padded signature is malformed."""
        dpop = DPoPVerifier(clock=clock, replay=MemoryReplayCache(clock))
        proof = DPoPKey.generate("ES256").proof("POST", TOKEN_URL, now=clock.now())
        dpop.verify(proof, method="POST", url=TOKEN_URL)
        again = DPoPKey.generate("ES256").proof("POST", TOKEN_URL, now=clock.now())
        with pytest.raises(DPoPProofError, match="malformed dpop proof"):
            dpop.verify(padded(again, 2), method="POST", url=TOKEN_URL)

    @pytest.mark.parametrize("index", [0, 1, 2])
    def test_issue11_parser_refuses_padding(self, index: int) -> None:
        """The shared parser refuses '=' in any segment."""
        token = sign_jws_es256({"typ": "JWT"})
        parse_compact(token)
        with pytest.raises(ValueError, match="base64url"):
            parse_compact(padded(token, index))


def sign_jws_es256(header: dict[str, Any]) -> str:
    """Any ES256 token (the signature is never checked by these tests)."""
    return sign_jws(generate("ES256"), {"alg": "ES256", **header}, {"a": 1}, "ES256")


class TestIssue11Ed25519Name:
    """RFC 9864 "Ed25519" is accepted beside "EdDSA" without unpinning anything."""

    def test_issue11_names_are_one_algorithm(self) -> None:
        """Ed25519 and EdDSA are the same pinned algorithm; nothing else is."""
        assert canonical_algorithm("Ed25519") == "EdDSA"
        assert algorithm_matches("Ed25519", "EdDSA")
        assert algorithm_matches("EdDSA", "Ed25519")
        assert not algorithm_matches("Ed25519", "ES256")
        assert not algorithm_matches("ed25519", "EdDSA")
        assert canonical_algorithm(5) is None

    def test_issue11_assertion_with_ed25519_name_verifies(
        self,
        verifier: AgentAssertionVerifier,
        register: Callable[[str], Registered],
        clock: FrozenClock,
    ) -> None:
        """An EdDSA agent's assertion may name its algorithm Ed25519."""
        agent = register("EdDSA")
        assert verifier.verify(assertion(agent, clock, alg="Ed25519")).agent == (
            agent.agent
        )

    def test_issue11_agent_registered_as_ed25519_accepts_both_names(
        self,
        verifier: AgentAssertionVerifier,
        directory: DictAgentDirectory,
        register: Callable[[str], Registered],
        clock: FrozenClock,
    ) -> None:
        """A registration that says Ed25519 verifies assertions naming either."""
        agent = register("EdDSA")
        renamed = dataclasses.replace(agent.agent, algorithm="Ed25519")
        directory.agents[renamed.id] = renamed
        for index, alg in enumerate(["Ed25519", "EdDSA"]):
            token = assertion(agent, clock, alg=alg, jti=f"n{index}")
            assert verifier.verify(token).agent == renamed

    def test_issue11_ed25519_name_does_not_unpin_an_es256_agent(
        self,
        verifier: AgentAssertionVerifier,
        register: Callable[[str], Registered],
        clock: FrozenClock,
    ) -> None:
        """An ES256 agent's assertion naming Ed25519 is refused."""
        es256, ed = register("ES256"), register("EdDSA")
        # Signed by an Ed25519 key, claiming to be the ES256 agent.
        header = {"alg": "Ed25519", "typ": "JWT"}
        token = sign_jws(ed.key, header, claims_of(es256, clock), "EdDSA")
        with pytest.raises(InvalidGrantError, match="does not match the agent key"):
            verifier.verify(token)

    @pytest.mark.parametrize("allowed", [None, frozenset({"EdDSA"})])
    def test_issue11_dpop_proof_with_ed25519_name_verifies(
        self, clock: FrozenClock, allowed: frozenset[str] | None
    ) -> None:
        """A DPoP proof naming Ed25519 verifies, also when only EdDSA is listed."""
        replay = MemoryReplayCache(clock)
        dpop = (
            DPoPVerifier(clock=clock, replay=replay)
            if allowed is None
            else DPoPVerifier(clock=clock, replay=replay, algorithms=allowed)
        )
        key = DPoPKey.generate("EdDSA")
        header = {"typ": "dpop+jwt", "alg": "Ed25519", "jwk": key.public_jwk}
        claims = {
            "jti": "p1",
            "htm": "POST",
            "htu": TOKEN_URL,
            "iat": int(clock.now().timestamp()),
        }
        proof = sign_jws(key._private_key, header, claims, "EdDSA")
        assert dpop.verify(proof, method="POST", url=TOKEN_URL).jkt == key.jkt

    def test_issue11_dpop_ed25519_name_with_an_ec_key_is_refused(
        self, clock: FrozenClock
    ) -> None:
        """The Ed25519 name never verifies with a key of another type."""
        dpop = DPoPVerifier(clock=clock, replay=MemoryReplayCache(clock))
        key = DPoPKey.generate("ES256")
        header = {"typ": "dpop+jwt", "alg": "Ed25519", "jwk": key.public_jwk}
        claims = {
            "jti": "p2",
            "htm": "POST",
            "htu": TOKEN_URL,
            "iat": int(clock.now().timestamp()),
        }
        proof = sign_jws(key._private_key, header, claims, "ES256")
        with pytest.raises(DPoPProofError, match="does not match the algorithm"):
            dpop.verify(proof, method="POST", url=TOKEN_URL)

    def test_issue11_ed25519_name_never_verifies_with_another_key_type(self) -> None:
        """The shared signature check refuses an EC key for Ed25519."""
        key = generate("EdDSA")
        token = sign_jws(key, {"alg": "Ed25519"}, {"a": 1}, "EdDSA")
        jws = parse_compact(token)
        assert verify_signature(jws, key.public_key(), "Ed25519")
        assert not verify_signature(jws, generate("ES256").public_key(), "Ed25519")

    def test_issue11_overflowing_exp_is_not_a_number(
        self,
        verifier: AgentAssertionVerifier,
        registered: Registered,
        clock: FrozenClock,
    ) -> None:
        """An exp that parses as infinity (1e999) is not a NumericDate."""
        payload = b64(
            json.dumps(claims_of(registered, clock))
            .replace('"exp": ', '"exp": 1e999, "x": ')
            .encode()
        )
        header = segment({"alg": registered.agent.algorithm, "typ": "JWT"})
        signing_input = f"{header}.{payload}"
        signature = raw_signature(
            registered.key, registered.agent.algorithm, signing_input.encode()
        )
        with pytest.raises(InvalidGrantError, match="no valid exp"):
            verifier.verify(f"{signing_input}.{b64(signature)}")

    def test_issue11_public_jwk_has_no_alg_to_trust(self) -> None:
        """Registered public keys keep no alg member: the type pins it."""
        assert "alg" not in public_jwk_from_key(generate("EdDSA"))
