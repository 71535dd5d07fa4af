"""Tests for DPoP proof verification (RFC 9449 §4.3) and the client side."""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

import jwt
import pytest
from hypothesis import HealthCheck, given, settings

from gatepass.clock import FrozenClock
from gatepass.errors import (
    ConfigurationError,
    DPoPNonceRequiredError,
    DPoPProofError,
    InvalidRequestError,
)
from gatepass.tokens import (
    DPoPKey,
    DPoPVerifier,
    MemoryReplayCache,
    NonceService,
    access_token_hash,
    b64url,
    normalize_htu,
    private_jwk,
)
from gatepass.tokens import dpop as dpop_module

from . import forge
from .strategies import arbitrary_text

URL = "https://broker.example/token"
TOKEN = "access-token-value"
REQUEST: dict[str, Any] = {"method": "POST", "url": URL}


@pytest.fixture(scope="module")
def keys() -> dict[str, DPoPKey]:
    """One proof key per algorithm (RSA generation is slow, so share them)."""
    return {
        alg: DPoPKey.generate(alg)
        for alg in ["ES256", "ES384", "EdDSA", "PS256", "RS256"]
    }


@pytest.fixture
def key(keys: dict[str, DPoPKey]) -> DPoPKey:
    """The default ES256 proof key."""
    return keys["ES256"]


@pytest.fixture
def dpop(clock: FrozenClock, replay: MemoryReplayCache) -> DPoPVerifier:
    """A verifier without nonces."""
    return DPoPVerifier(clock=clock, replay=replay)


def raw_proof(
    key: DPoPKey,
    clock: FrozenClock,
    header: dict[str, Any] | None = None,
    **claims: Any,
) -> str:
    """Sign a proof with custom header members and claims (None removes a claim)."""
    body: dict[str, Any] = {
        "jti": "proof-1",
        "htm": "POST",
        "htu": URL,
        "iat": int(clock.now().timestamp()),
    }
    body.update(claims)
    body = {name: value for name, value in body.items() if value is not None}
    members = {"typ": "dpop+jwt", "jwk": key.public_jwk, **(header or {})}
    members = {name: value for name, value in members.items() if value is not None}
    return forge.signed(members, body, key.private_key, key.algorithm)


class TestDPoPRoundTrip:
    """Valid proofs verify."""

    @pytest.mark.parametrize("algorithm", ["ES256", "ES384", "EdDSA", "PS256", "RS256"])
    def test_each_algorithm(
        self,
        keys: dict[str, DPoPKey],
        dpop: DPoPVerifier,
        clock: FrozenClock,
        algorithm: str,
    ) -> None:
        """Proofs from every allowed algorithm verify and report their key."""
        key = keys[algorithm]
        proof = key.proof("POST", URL, now=clock.now())
        result = dpop.verify(proof, method="POST", url=URL)
        assert result.jkt == key.jkt
        assert result.jwk == key.public_jwk
        assert result.issued_at == clock.now()

    def test_with_access_token_and_binding(
        self, key: DPoPKey, dpop: DPoPVerifier, clock: FrozenClock
    ) -> None:
        """The ath and the expected jkt are checked."""
        proof = key.proof("GET", URL, access_token=TOKEN, now=clock.now())
        result = dpop.verify(
            proof, method="GET", url=URL, access_token=TOKEN, expected_jkt=key.jkt
        )
        assert result.jkt == key.jkt

    @pytest.mark.parametrize(
        "request_url",
        [
            "HTTPS://Broker.Example:443/token",
            "https://broker.example/token?x=1",
            "https://broker.example/token#frag",
        ],
    )
    def test_htu_normalisation(
        self, key: DPoPKey, dpop: DPoPVerifier, clock: FrozenClock, request_url: str
    ) -> None:
        """Case of scheme and host, default port, query and fragment do not matter."""
        proof = key.proof("POST", URL, now=clock.now())
        assert dpop.verify(proof, method="POST", url=request_url).jti

    def test_client_strips_query(self, key: DPoPKey) -> None:
        """The client puts no query or fragment in htu (RFC 9449 §4.2)."""
        proof = key.proof("GET", "https://api.example/x?q=1#f", jti="j")
        claims = jwt.decode(proof, options={"verify_signature": False})
        assert claims["htu"] == "https://api.example/x"
        assert claims["jti"] == "j"

    def test_fresh_jti_each_time(self, key: DPoPKey) -> None:
        """Two proofs never share a jti."""
        first = jwt.decode(key.proof("GET", URL), options={"verify_signature": False})
        second = jwt.decode(key.proof("GET", URL), options={"verify_signature": False})
        assert first["jti"] != second["jti"]

    def test_repr_hides_key(self, key: DPoPKey) -> None:
        """The key's repr shows only its thumbprint."""
        assert private_jwk(key.private_key)["d"] not in repr(key)
        assert key.jkt in repr(key)

    def test_unsupported_generate(self) -> None:
        """Only the allow-listed algorithms can be generated."""
        with pytest.raises(InvalidRequestError, match="unsupported dpop algorithm"):
            DPoPKey.generate("HS256")


class TestDPoPRejects:
    """Each failed check has its own message."""

    def check(
        self, dpop: DPoPVerifier, proof: str | None, message: str, **kwargs: Any
    ) -> None:
        """Assert that verification fails with a DPoPProofError and this message."""
        kwargs.setdefault("method", "POST")
        kwargs.setdefault("url", URL)
        with pytest.raises(DPoPProofError, match=message) as info:
            dpop.verify(proof, **kwargs)
        if proof:
            assert proof not in str(info.value)

    def test_missing(self, dpop: DPoPVerifier) -> None:
        """No proof at all."""
        self.check(dpop, None, "missing dpop proof")

    @pytest.mark.parametrize("proof", ["", "a.b", "a.b.c", "é"])
    def test_malformed(self, dpop: DPoPVerifier, proof: str) -> None:
        """Not a compact JWS."""
        self.check(dpop, proof, "malformed dpop proof")

    @pytest.mark.parametrize("typ", ["JWT", "at+jwt", None, 7])
    def test_typ(
        self, key: DPoPKey, dpop: DPoPVerifier, clock: FrozenClock, typ: object
    ) -> None:
        """The typ must be dpop+jwt."""
        self.check(dpop, raw_proof(key, clock, {"typ": typ}), "typ must be dpop\\+jwt")

    def test_alg_none(self, key: DPoPKey, dpop: DPoPVerifier) -> None:
        """The alg none is refused."""
        header = {"alg": "none", "typ": "dpop+jwt", "jwk": key.public_jwk}
        proof = forge.unsigned(
            header, {"jti": "j", "htm": "POST", "htu": URL, "iat": 0}
        )
        self.check(dpop, proof, "algorithm is not allowed")

    def test_alg_hs256(self, dpop: DPoPVerifier) -> None:
        """HS256 is refused."""
        header = {"typ": "dpop+jwt", "jwk": {"kty": "oct", "k": b64url(b"k" * 32)}}
        proof = forge.hmac_signed(header, {"jti": "j"}, b"k" * 32)
        self.check(dpop, proof, "algorithm is not allowed")

    def test_alg_outside_narrow_allow_list(
        self, keys: dict[str, DPoPKey], clock: FrozenClock, replay: MemoryReplayCache
    ) -> None:
        """A verifier allowing only ES256 refuses EdDSA proofs."""
        dpop = DPoPVerifier(clock=clock, replay=replay, algorithms=frozenset({"ES256"}))
        self.check(dpop, raw_proof(keys["EdDSA"], clock), "algorithm is not allowed")

    def test_no_jwk(self, key: DPoPKey, dpop: DPoPVerifier, clock: FrozenClock) -> None:
        """The jwk header is required."""
        self.check(dpop, raw_proof(key, clock, {"jwk": None}), "has no jwk")

    @pytest.mark.parametrize("member", ["d", "p", "q", "dp", "dq", "qi", "k"])
    def test_private_jwk(
        self, key: DPoPKey, dpop: DPoPVerifier, clock: FrozenClock, member: str
    ) -> None:
        """A jwk with any private member is refused."""
        jwk = {**key.public_jwk, member: "AAAA"}
        self.check(dpop, raw_proof(key, clock, {"jwk": jwk}), "must be a public key")

    def test_kty_does_not_match_alg(
        self, keys: dict[str, DPoPKey], dpop: DPoPVerifier, clock: FrozenClock
    ) -> None:
        """An ES256 proof carrying an Ed25519 jwk is refused."""
        proof = raw_proof(keys["ES256"], clock, {"jwk": keys["EdDSA"].public_jwk})
        self.check(dpop, proof, "does not match the algorithm")

    def test_curve_does_not_match_alg(
        self, keys: dict[str, DPoPKey], dpop: DPoPVerifier, clock: FrozenClock
    ) -> None:
        """An ES256 proof carrying a P-384 jwk is refused."""
        proof = raw_proof(keys["ES256"], clock, {"jwk": keys["ES384"].public_jwk})
        self.check(dpop, proof, "does not match the algorithm")

    def test_invalid_jwk(
        self, key: DPoPKey, dpop: DPoPVerifier, clock: FrozenClock
    ) -> None:
        """A jwk that is not a point on its curve is refused."""
        jwk = {**key.public_jwk, "y": b64url(b"\x01" * 32)}
        self.check(dpop, raw_proof(key, clock, {"jwk": jwk}), "dpop jwk is invalid")

    def test_signature_by_another_key(
        self, key: DPoPKey, dpop: DPoPVerifier, clock: FrozenClock
    ) -> None:
        """A proof signed by a key other than its jwk is refused."""
        other = DPoPKey.generate("ES256")
        self.check(
            dpop,
            raw_proof(key, clock, {"jwk": other.public_jwk}),
            "signature is invalid",
        )

    def test_claims_not_json(self, key: DPoPKey, dpop: DPoPVerifier) -> None:
        """A payload that is not a JSON object is refused."""
        proof = jwt.api_jws.encode(
            b"[]",
            key.private_key,
            algorithm="ES256",
            headers={"typ": "dpop+jwt", "jwk": key.public_jwk},
        )
        self.check(dpop, proof, "malformed dpop proof claims")

    @pytest.mark.parametrize("jti", [None, "", 5, "x" * 257])
    def test_jti(
        self, key: DPoPKey, dpop: DPoPVerifier, clock: FrozenClock, jti: object
    ) -> None:
        """The jti must be a non-empty string of at most 256 characters."""
        self.check(dpop, raw_proof(key, clock, jti=jti), "no valid jti")

    @pytest.mark.parametrize("htm", ["GET", "post", None])
    def test_htm(
        self, key: DPoPKey, dpop: DPoPVerifier, clock: FrozenClock, htm: object
    ) -> None:
        """The htm must equal the request method exactly."""
        self.check(dpop, raw_proof(key, clock, htm=htm), "htm does not match")

    def test_htu_missing(
        self, key: DPoPKey, dpop: DPoPVerifier, clock: FrozenClock
    ) -> None:
        """The htu is required."""
        self.check(dpop, raw_proof(key, clock, htu=None), "no htu")

    @pytest.mark.parametrize(
        "htu",
        [
            "https://broker.example/other",
            "http://broker.example/token",
            "https://broker.example:8443/token",
            "https://evil.example/token",
            "https://user@broker.example/token",
            "ftp://broker.example/token",
            "not a url",
            "https://[::1/token",
        ],
    )
    def test_htu(
        self, key: DPoPKey, dpop: DPoPVerifier, clock: FrozenClock, htu: str
    ) -> None:
        """The htu must name the request URL."""
        self.check(dpop, raw_proof(key, clock, htu=htu), "htu does not match")

    @pytest.mark.parametrize("iat", [None, "now", 1.5, True])
    def test_iat_type(
        self, key: DPoPKey, dpop: DPoPVerifier, clock: FrozenClock, iat: object
    ) -> None:
        """The iat must be an integer."""
        self.check(dpop, raw_proof(key, clock, iat=iat), "no valid iat")

    def test_too_old(
        self, key: DPoPKey, dpop: DPoPVerifier, clock: FrozenClock
    ) -> None:
        """A proof older than max_age + leeway is refused."""
        proof = key.proof("POST", URL, now=clock.now())
        clock.advance(65)
        assert dpop.verify(proof, method="POST", url=URL).jti
        proof = key.proof("POST", URL, now=clock.now())
        clock.advance(66)
        self.check(dpop, proof, "too old")

    def test_from_the_future(
        self, key: DPoPKey, dpop: DPoPVerifier, clock: FrozenClock
    ) -> None:
        """A proof from beyond the leeway is refused."""
        proof = key.proof("POST", URL, now=clock.now() + dt.timedelta(seconds=6))
        self.check(dpop, proof, "from the future")

    def test_ath_missing(
        self, key: DPoPKey, dpop: DPoPVerifier, clock: FrozenClock
    ) -> None:
        """With an access token, ath is required."""
        self.check(
            dpop, key.proof("POST", URL, now=clock.now()), "no ath", access_token=TOKEN
        )

    def test_ath_mismatch(
        self, key: DPoPKey, dpop: DPoPVerifier, clock: FrozenClock
    ) -> None:
        """The ath must hash this access token."""
        proof = key.proof("POST", URL, access_token="other", now=clock.now())
        self.check(dpop, proof, "ath does not match", access_token=TOKEN)

    def test_ath_is_sha256(self) -> None:
        """The ath is the base64url SHA-256 of the token."""
        assert access_token_hash(TOKEN) == b64url(
            hashlib.sha256(TOKEN.encode()).digest()
        )

    def test_wrong_key_for_binding(
        self, key: DPoPKey, dpop: DPoPVerifier, clock: FrozenClock
    ) -> None:
        """A proof by another key than the token's cnf.jkt is refused."""
        proof = key.proof("POST", URL, now=clock.now())
        self.check(
            dpop, proof, "does not match the token binding", expected_jkt="other"
        )

    def test_replay(self, key: DPoPKey, dpop: DPoPVerifier, clock: FrozenClock) -> None:
        """A proof is single use."""
        proof = key.proof("POST", URL, now=clock.now())
        dpop.verify(proof, method="POST", url=URL)
        self.check(dpop, proof, "dpop proof replayed")

    def test_invalid_proof_does_not_spend_jti(
        self, key: DPoPKey, dpop: DPoPVerifier, clock: FrozenClock
    ) -> None:
        """Only a fully valid proof records its jti."""
        proof = key.proof("POST", URL, now=clock.now(), jti="same")
        self.check(dpop, proof, "binding", expected_jkt="other")
        assert dpop.verify(proof, method="POST", url=URL).jti == "same"

    def test_replay_window_ends(
        self, key: DPoPKey, clock: FrozenClock, replay: MemoryReplayCache
    ) -> None:
        """The jti is remembered exactly as long as the proof could be accepted."""
        dpop = DPoPVerifier(clock=clock, replay=replay)
        dpop.verify(
            key.proof("POST", URL, now=clock.now(), jti="j"), method="POST", url=URL
        )
        assert len(replay) == 1
        clock.advance(66)
        replay.seen("other", "x", clock.now() + dt.timedelta(seconds=1))
        assert len(replay) == 1


class TestDPoPNonces:
    """Server nonces (RFC 9449 §8)."""

    @pytest.fixture
    def nonces(self, clock: FrozenClock) -> NonceService:
        """A nonce service."""
        return NonceService(b"n" * 32, clock=clock)

    @pytest.fixture
    def strict(
        self, clock: FrozenClock, replay: MemoryReplayCache, nonces: NonceService
    ) -> DPoPVerifier:
        """A verifier that requires nonces."""
        return DPoPVerifier(
            clock=clock, replay=replay, nonces=nonces, require_nonce=True
        )

    def test_missing_nonce_gets_one(
        self,
        key: DPoPKey,
        strict: DPoPVerifier,
        nonces: NonceService,
        clock: FrozenClock,
    ) -> None:
        """Without a nonce, the error carries a fresh one to retry with."""
        with pytest.raises(DPoPNonceRequiredError, match="dpop nonce required") as info:
            strict.verify(
                key.proof("POST", URL, now=clock.now()), method="POST", url=URL
            )
        assert nonces.is_valid(info.value.nonce)
        proof = key.proof("POST", URL, nonce=info.value.nonce, now=clock.now())
        assert strict.verify(proof, method="POST", url=URL).jti

    def test_expired_nonce(
        self,
        key: DPoPKey,
        strict: DPoPVerifier,
        nonces: NonceService,
        clock: FrozenClock,
    ) -> None:
        """A stale nonce is refused with a new one."""
        nonce = nonces.issue()
        clock.advance(dt.timedelta(minutes=5))
        with pytest.raises(DPoPNonceRequiredError, match="invalid or expired"):
            strict.verify(
                key.proof("POST", URL, nonce=nonce, now=clock.now()),
                method="POST",
                url=URL,
            )

    def test_present_nonce_checked_when_optional(
        self,
        key: DPoPKey,
        clock: FrozenClock,
        replay: MemoryReplayCache,
        nonces: NonceService,
    ) -> None:
        """An optional nonce, when sent, must still be valid; absent is fine."""
        dpop = DPoPVerifier(clock=clock, replay=replay, nonces=nonces)
        proof = key.proof("POST", URL, now=clock.now())
        assert dpop.verify(proof, method="POST", url=URL).jti
        with pytest.raises(DPoPNonceRequiredError):
            dpop.verify(
                key.proof("POST", URL, nonce="bogus", now=clock.now()),
                method="POST",
                url=URL,
            )

    def test_require_without_service(
        self, clock: FrozenClock, replay: MemoryReplayCache
    ) -> None:
        """Requiring nonces without a service is a configuration error."""
        with pytest.raises(ConfigurationError, match="not configured"):
            DPoPVerifier(clock=clock, replay=replay, require_nonce=True)

    @pytest.mark.parametrize(
        "algorithms", [frozenset(), frozenset({"HS256"}), frozenset({"none"})]
    )
    def test_bad_allow_list(
        self, clock: FrozenClock, replay: MemoryReplayCache, algorithms: frozenset[str]
    ) -> None:
        """The allow-list may not name unsupported or symmetric algorithms."""
        with pytest.raises(ConfigurationError, match="allow-list"):
            DPoPVerifier(clock=clock, replay=replay, algorithms=algorithms)


class TestNormalizeHTU:
    """URL comparison rules."""

    @pytest.mark.parametrize(
        ("url", "expected"),
        [
            ("HTTP://EXAMPLE.com:80", "http://example.com/"),
            ("https://example.com:8443/a/B?x#y", "https://example.com:8443/a/B"),
            ("https://[::1]:443/p", "https://[::1]/p"),
        ],
    )
    def test_normalises(self, url: str, expected: str) -> None:
        """Scheme, host and default port are normalised; the path is kept."""
        assert normalize_htu(url) == expected

    @pytest.mark.parametrize(
        "url", ["mailto:a@b", "https://", "https://a:b@host/", "https://h:99999/"]
    )
    def test_rejects(self, url: str) -> None:
        """Non-http URLs, user info and bad ports are refused."""
        with pytest.raises(ValueError, match=r"(?i)url|user info|port"):
            normalize_htu(url)


class TestDPoPProperties:
    """Arbitrary input never escapes as a non-gatepass exception."""

    @settings(
        max_examples=100, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(proof=arbitrary_text)
    def test_arbitrary_text(self, dpop: DPoPVerifier, proof: str) -> None:
        """Any text as a proof raises DPoPProofError."""
        with pytest.raises(DPoPProofError):
            dpop.verify(proof, method="POST", url=URL)


class TestProofKeyCache:
    """The parsed proof key is reused, and no check is skipped because of it."""

    def test_same_key_is_parsed_once(
        self, key: DPoPKey, dpop: DPoPVerifier, clock: FrozenClock
    ) -> None:
        """A second proof with the same jwk reuses the key and its thumbprint."""
        dpop.verify(raw_proof(key, clock, jti="a"), method="POST", url=URL)
        hits = dpop_module._proof_key.cache_info().hits
        proof = dpop.verify(raw_proof(key, clock, jti="b"), method="POST", url=URL)
        assert dpop_module._proof_key.cache_info().hits == hits + 1
        assert proof.jkt == key.jkt

    def test_cached_key_still_checks_the_signature(
        self, key: DPoPKey, dpop: DPoPVerifier, clock: FrozenClock
    ) -> None:
        """A known jwk in a proof signed by another key is still refused."""
        dpop.verify(raw_proof(key, clock, jti="a"), method="POST", url=URL)
        other = DPoPKey.generate("ES256")
        forged = raw_proof(other, clock, {"jwk": key.public_jwk}, jti="b")
        with pytest.raises(DPoPProofError, match="signature is invalid"):
            dpop.verify(forged, method="POST", url=URL)

    def test_cached_key_with_a_private_member_is_refused(
        self, key: DPoPKey, dpop: DPoPVerifier, clock: FrozenClock
    ) -> None:
        """The private-member check runs on the proof's own jwk, not the cache key."""
        dpop.verify(raw_proof(key, clock, jti="a"), method="POST", url=URL)
        jwk = {**key.public_jwk, "d": "AAAA"}
        with pytest.raises(DPoPProofError, match="must be a public key"):
            dpop.verify(raw_proof(key, clock, {"jwk": jwk}, jti="b"), **REQUEST)

    @pytest.mark.parametrize("value", [None, 1, ["x"], {"x": "y"}])
    def test_non_string_member_is_refused(
        self, key: DPoPKey, dpop: DPoPVerifier, clock: FrozenClock, value: object
    ) -> None:
        """A member that is not a string never reaches the (hashing) cache."""
        jwk = {**key.public_jwk, "y": value}
        with pytest.raises(DPoPProofError, match="dpop jwk is invalid"):
            dpop.verify(raw_proof(key, clock, {"jwk": jwk}), **REQUEST)

    def test_invalid_key_is_refused_every_time(
        self, key: DPoPKey, dpop: DPoPVerifier, clock: FrozenClock
    ) -> None:
        """Failures are not cached into successes: an off-curve point stays refused."""
        jwk = {**key.public_jwk, "y": b64url(b"\x01" * 32)}
        for jti in ("a", "b"):
            with pytest.raises(DPoPProofError, match="dpop jwk is invalid"):
                dpop.verify(raw_proof(key, clock, {"jwk": jwk}, jti=jti), **REQUEST)

    def test_extra_members_share_the_entry_and_keep_the_thumbprint(
        self, key: DPoPKey, dpop: DPoPVerifier, clock: FrozenClock
    ) -> None:
        """RFC 7638 §3.2: only required members matter, with or without extras."""
        jwk = {**key.public_jwk, "kid": "k", "use": "sig"}
        proof = dpop.verify(raw_proof(key, clock, {"jwk": jwk}), **REQUEST)
        assert proof.jkt == key.jkt
        assert proof.jwk == key.public_jwk

    def test_cache_is_bounded(self) -> None:
        """The key cache has a fixed size."""
        assert (
            dpop_module._proof_key.cache_info().maxsize == dpop_module._KEY_CACHE_SIZE
        )
