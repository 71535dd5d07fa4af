"""Tests for reading JWK Sets and SPIFFE bundles into pinned verification keys."""

from __future__ import annotations

from typing import Any

import pytest

from gatepass.identity.keysets import parse_key_set

from .jose import IssuerKey, document, jwks

RSA = frozenset({"RS256"})


def parse(value: Any, *, algorithms: frozenset[str] = RSA, spiffe: bool = False) -> Any:
    """Parse a document given as JSON-ready data."""
    data = value if isinstance(value, bytes) else document(value)
    return parse_key_set(data, algorithms=algorithms, max_keys=4, spiffe_bundle=spiffe)


@pytest.fixture(scope="module")
def rsa_key() -> IssuerKey:
    """One RSA key for the module (RSA generation is slow)."""
    return IssuerKey.generate("r1", "RS256")


class TestJWKSet:
    """Usable signing keys are kept, each with one pinned algorithm."""

    def test_keys_by_kid_with_pinned_algorithm(self, rsa_key: IssuerKey) -> None:
        """An RSA key gets the one RSA algorithm the issuer pins."""
        ec = IssuerKey.generate("e1", "ES256")
        key_set = parse(jwks(rsa_key, ec), algorithms=frozenset({"RS256", "ES256"}))
        assert {kid: key.algorithm for kid, key in key_set.keys.items()} == {
            "r1": "RS256",
            "e1": "ES256",
        }
        assert key_set.sequence is None

    def test_unpinned_key_types_are_skipped(self, rsa_key: IssuerKey) -> None:
        """A key whose type has no pinned algorithm cannot verify anything."""
        ec = IssuerKey.generate("e1", "ES256")
        key_set = parse(jwks(rsa_key, ec))
        assert set(key_set.keys) == {"r1"}
        assert key_set.skipped == 1

    def test_jwk_alg_must_agree(self, rsa_key: IssuerKey) -> None:
        """A JWK whose alg is not pinned (or not its type's) is skipped."""
        ok = {**rsa_key.jwk(), "alg": "RS256"}
        other = {**IssuerKey.generate("r2").jwk(), "alg": "PS256"}
        liar = {**IssuerKey.generate("e1", "ES256").jwk(), "alg": "RS256"}
        key_set = parse({"keys": [ok, other, liar]})
        assert set(key_set.keys) == {"r1"}

    def test_ed25519_name_pins_eddsa(self) -> None:
        """An issuer pinning Ed25519 (RFC 9864) verifies OKP keys as EdDSA."""
        okp = IssuerKey.generate("o1", "EdDSA")
        key_set = parse(
            {"keys": [{**okp.jwk(), "alg": "Ed25519"}]},
            algorithms=frozenset({"Ed25519"}),
        )
        assert key_set.keys["o1"].algorithm == "EdDSA"

    @pytest.mark.parametrize(
        "entry",
        [
            {"use": "enc"},
            {"kid": None},
            {"kid": ""},
            {"kid": "k" * 257},
            {"n": "AQAB"},
            {"kty": "EC", "crv": "P-521"},
            {"kty": 5},
        ],
    )
    def test_unusable_entries_are_skipped(
        self, rsa_key: IssuerKey, entry: dict[str, Any]
    ) -> None:
        """Encryption keys, keys without a kid and broken keys are ignored."""
        broken = {**IssuerKey.generate("r2").jwk(), **entry}
        key_set = parse({"keys": [rsa_key.jwk(), broken, "junk"]})
        assert set(key_set.keys) == {"r1"}
        assert key_set.skipped == 2

    @pytest.mark.parametrize(
        ("value", "message"),
        [
            (b"not json", "not json"),
            (b'{"keys": [{"kty": "RSA", "e": NaN}]}', "not json"),
            ([], "no keys array"),
            ({"keys": {}}, "no keys array"),
            ({"keys": []}, "no usable signing key"),
            ({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "h"}]}, "symmetric"),
        ],
    )
    def test_bad_documents_are_refused(self, value: Any, message: str) -> None:
        """A document that is not a usable JWK Set is refused whole."""
        with pytest.raises(ValueError, match=message):
            parse(value)

    def test_private_key_material_refuses_the_document(
        self, rsa_key: IssuerKey
    ) -> None:
        """A published private key is a compromise: nothing in it is trusted."""
        leaked = {**IssuerKey.generate("e1", "ES256").jwk(), "d": "AAAA"}
        with pytest.raises(ValueError, match="private key material"):
            parse({"keys": [rsa_key.jwk(), leaked]})

    def test_repeated_kid_refuses_the_document(self, rsa_key: IssuerKey) -> None:
        """Two keys under one kid would make the kid ambiguous."""
        twin = IssuerKey.generate("r1")
        with pytest.raises(ValueError, match="repeats a kid"):
            parse(jwks(rsa_key, twin))

    def test_key_count_cap(self, rsa_key: IssuerKey) -> None:
        """More entries than the cap refuse the document before any is parsed."""
        with pytest.raises(ValueError, match="more than 4 keys"):
            parse({"keys": [rsa_key.jwk()] * 5})


class TestSpiffeBundle:
    """Only use=jwt-svid keys of a bundle verify JWT-SVIDs (SPIFFE bundle §4.2.2)."""

    def test_bundle_members_and_uses(self) -> None:
        """x509-svid and unknown uses are ignored; sequence and hint are read."""
        jwt_key = IssuerKey.generate("j1", "ES256", use="jwt-svid")
        x509 = IssuerKey.generate("x1", "ES256", use="x509-svid")
        odd = IssuerKey.generate("u1", "ES256", use="JWT-SVID")
        bundle = jwks(jwt_key, x509, odd, spiffe_sequence=7, spiffe_refresh_hint=300)
        key_set = parse(bundle, algorithms=frozenset({"ES256"}), spiffe=True)
        assert set(key_set.keys) == {"j1"}
        assert key_set.sequence == 7
        assert key_set.refresh_hint is not None
        assert key_set.refresh_hint.total_seconds() == 300

    def test_sig_keys_are_not_jwt_svid_keys(self) -> None:
        """A plain JWKS key (use=sig) is not a bundle's JWT-SVID key."""
        plain = IssuerKey.generate("s1", "ES256", use="sig")
        with pytest.raises(ValueError, match="no usable signing key"):
            parse(jwks(plain), algorithms=frozenset({"ES256"}), spiffe=True)

    @pytest.mark.parametrize("value", [-1, True, "7", 1.5])
    def test_bad_sequence_and_hint_are_ignored(self, value: object) -> None:
        """Only whole numbers count as sequence and refresh hint."""
        key = IssuerKey.generate("j1", "ES256", use="jwt-svid")
        bundle = jwks(key, spiffe_sequence=value, spiffe_refresh_hint=value)
        key_set = parse(bundle, algorithms=frozenset({"ES256"}), spiffe=True)
        assert key_set.sequence is None
        assert key_set.refresh_hint is None
