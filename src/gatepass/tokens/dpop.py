"""
Server-side checks of DPoP proofs (RFC 9449 §4.3).

Every check has its own error message, and the single-use ``jti`` is recorded only
after every other check has passed, so a proof that fails for another reason cannot
be used to burn an honest client's ``jti``.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from gatepass.clock import Clock
from gatepass.errors import (
    ConfigurationError,
    DPoPKeyMismatchError,
    DPoPNonceRequiredError,
    DPoPProofError,
    DPoPReplayError,
    InvalidRequestError,
)
from gatepass.single_use import ReplayCache, SingleUse
from gatepass.tokens.jwk import (
    PRIVATE_MEMBERS,
    PublicKey,
    b64url,
    public_key_from_jwk,
    thumbprint,
)
from gatepass.tokens.jws import (
    CompactJWS,
    canonical_algorithm,
    parse_compact,
    verify_signature,
)
from gatepass.tokens.nonce import NonceService

__all__ = [
    "DPOP_ALGORITHMS",
    "DPoPProof",
    "DPoPVerifier",
    "access_token_hash",
    "normalize_htu",
]

# RFC 9449 §4.3 item 5 and RFC 8725 §3.1: asymmetric algorithms only, never "none"
# or a MAC. These are all the proof algorithms gatepass can check; "Ed25519" is the
# RFC 9864 name of "EdDSA" with an Ed25519 key, the same algorithm.
DPOP_ALGORITHMS = frozenset({"ES256", "ES384", "EdDSA", "Ed25519", "PS256", "RS256"})

# RFC 7518 §3, RFC 8037 §3.1 and RFC 9864 §2.2: the key type and curve each
# algorithm requires.
_KEY_TYPES: dict[str, tuple[str, str | None]] = {
    "ES256": ("EC", "P-256"),
    "ES384": ("EC", "P-384"),
    "EdDSA": ("OKP", "Ed25519"),
    "Ed25519": ("OKP", "Ed25519"),
    "PS256": ("RSA", None),
    "RS256": ("RSA", None),
}
_REQUIRED_MEMBERS = {
    "EC": ("kty", "crv", "x", "y"),
    "OKP": ("kty", "crv", "x"),
    "RSA": ("kty", "n", "e"),
}
_MAX_JTI_LENGTH = 256
# Distinct proof keys and URLs remembered (LRU); an agent uses one key per task.
_KEY_CACHE_SIZE = 4096
_URL_CACHE_SIZE = 256
_DEFAULT_PORTS = {"http": 80, "https": 443}
_DPOP_TYPES = frozenset({"dpop+jwt", "application/dpop+jwt"})


@dataclass(frozen=True, slots=True)
class DPoPProof:
    """
    A verified DPoP proof.

    Attributes:
        jkt: the RFC 7638 thumbprint of the proof key (``cnf.jkt``).
        jti: the proof's unique id.
        issued_at: its ``iat``.
        jwk: the public key that signed it (required members only).
        single_use: its ``jti`` as a single-use value, stale at ``stale_at``; the
            broker records it durably with the effect of the request.
    """

    jkt: str
    jti: str
    issued_at: dt.datetime
    jwk: dict[str, Any]
    single_use: SingleUse


def access_token_hash(access_token: str) -> str:
    """
    Return the ``ath`` of an access token (RFC 9449 §4.2).

    Args:
        access_token: the access token as sent.

    Returns:
        ``b64url(sha256(ascii(access_token)))``.
    """
    return b64url(hashlib.sha256(access_token.encode("utf-8")).digest())


def normalize_htu(url: str) -> str:
    """
    Normalise an HTTP URI for comparing ``htu`` (RFC 9449 §4.3 item 9, RFC 3986 §6).

    The scheme and host are lower-cased, a default port is dropped, an empty path
    becomes ``/``, and the query and fragment are removed.

    Args:
        url: an absolute http or https URL.

    Returns:
        The normalised URL.

    Raises:
        ValueError: the value is not an absolute http(s) URL without user info.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError("not an http url")
    if parts.username is not None or parts.password is not None:
        raise ValueError("user info is not allowed")
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    netloc = host if port in {None, _DEFAULT_PORTS[scheme]} else f"{host}:{port}"
    return f"{scheme}://{netloc}{parts.path or '/'}"


def _key_and_thumbprint(jwk: dict[str, Any], kty: str) -> tuple[PublicKey, str]:
    members: list[str] = []
    for name in _REQUIRED_MEMBERS[kty]:
        member = jwk.get(name)
        if not isinstance(member, str):
            raise _reject("dpop jwk is invalid")
        members.append(member)
    try:
        return _proof_key(kty, tuple(members))
    except InvalidRequestError:
        raise _reject("dpop jwk is invalid") from None


@functools.lru_cache(maxsize=_KEY_CACHE_SIZE)
def _proof_key(kty: str, members: tuple[str, ...]) -> tuple[PublicKey, str]:
    """
    Build a proof key and its RFC 7638 thumbprint, once per distinct key.

    An agent signs every proof of a task with the same key, and building the key
    object (with its on-curve check) and hashing the thumbprint cost more than the
    rest of the checks together. The cache key is every member either step reads
    (the RFC 7638 §3.2 required members, all strings), so a cached entry is exactly
    what a fresh computation would return; failures are not cached. The cache is
    bounded (LRU): a flood of distinct keys only makes misses as costly as before.

    Args:
        kty: the key type, which names the members.
        members: the values of ``_REQUIRED_MEMBERS[kty]``, in that order.

    Returns:
        The public key and its thumbprint.

    Raises:
        InvalidRequestError: the members are not a valid public key.
    """
    jwk = dict(zip(_REQUIRED_MEMBERS[kty], members, strict=True))
    return public_key_from_jwk(jwk), thumbprint(jwk)


@functools.lru_cache(maxsize=_URL_CACHE_SIZE)
def _normalized(url: str) -> str:
    # The endpoint URL and the htu of an agent's proofs repeat; errors are not cached.
    return normalize_htu(url)


def _reject(message: str) -> DPoPProofError:
    return DPoPProofError(message)


def _constant_time_equal(left: str, right: str) -> bool:
    return hmac.compare_digest(
        left.encode("utf-8", "replace"), right.encode("utf-8", "replace")
    )


def _check_binding(
    claims: dict[str, Any],
    jkt: str,
    access_token: str | None,
    expected_jkt: str | None,
) -> None:
    if access_token is not None:
        ath = claims.get("ath")
        if not isinstance(ath, str):
            raise _reject("dpop proof has no ath")
        # RFC 9449 §4.3 item 11: the proof is bound to this access token.
        if not _constant_time_equal(ath, access_token_hash(access_token)):
            raise _reject("dpop ath does not match the access token")
    # RFC 9449 §4.3 item 12 / §6.1: the proof key is the key the token is bound to.
    if expected_jkt is not None and not _constant_time_equal(jkt, expected_jkt):
        raise DPoPKeyMismatchError("dpop key does not match the token binding", jkt=jkt)


class DPoPVerifier:
    """
    Verify DPoP proofs sent with token requests and with DPoP-bound tokens.

    Args:
        clock: the time source.
        replay: records proof ids until they are stale.
        nonces: issues and checks server nonces (RFC 9449 §8), if used.
        require_nonce: whether every proof must carry a valid nonce.
        max_age: how old a proof's ``iat`` may be.
        leeway: tolerated clock skew.
        algorithms: the allowed proof algorithms, a subset of :data:`DPOP_ALGORITHMS`.

    Raises:
        ConfigurationError: nonces are required without a nonce service, or the
            allow-list names an algorithm that is not supported.
    """

    def __init__(
        self,
        *,
        clock: Clock,
        replay: ReplayCache,
        nonces: NonceService | None = None,
        require_nonce: bool = False,
        max_age: dt.timedelta = dt.timedelta(seconds=60),
        leeway: dt.timedelta = dt.timedelta(seconds=5),
        algorithms: frozenset[str] = DPOP_ALGORITHMS,
    ) -> None:
        """Keep the configuration."""
        if require_nonce and nonces is None:
            raise ConfigurationError("dpop nonces are required but not configured")
        if not algorithms or not algorithms <= DPOP_ALGORITHMS:
            raise ConfigurationError("unsupported dpop algorithm in the allow-list")
        self._clock = clock
        self._replay = replay
        self._nonces = nonces
        self._require_nonce = require_nonce
        self._max_age = max_age
        self._leeway = leeway
        # Both names of Ed25519 (RFC 9864) are allowed when either is.
        self._algorithms = algorithms | {
            alias
            for alias in DPOP_ALGORITHMS
            if canonical_algorithm(alias)
            in {canonical_algorithm(a) for a in algorithms}
        }

    def verify(
        self,
        proof: str | None,
        *,
        method: str,
        url: str,
        access_token: str | None = None,
        expected_jkt: str | None = None,
    ) -> DPoPProof:
        """
        Check a DPoP proof for one request, then record its ``jti``.

        Args:
            proof: the ``DPoP`` header value, None when absent.
            method: the request method.
            url: the request URL (query and fragment are ignored).
            access_token: the DPoP-bound access token sent with the request, if any.
            expected_jkt: the ``cnf.jkt`` the proof key must have, if bound.

        Returns:
            The verified proof.

        Raises:
            DPoPProofError: any check failed; the message says which.
            DPoPNonceRequiredError: a fresh server nonce is required.
        """
        if proof is None:
            raise _reject("missing dpop proof")
        jws, jwk, jkt = self._check_signed(proof)
        try:
            claims = jws.claims()
        except ValueError:
            raise _reject("malformed dpop proof claims") from None
        jti = self._check_request(claims, method, url)
        issued_at = self._check_iat(claims.get("iat"))
        self._check_nonce(claims.get("nonce"))
        _check_binding(claims, jkt, access_token, expected_jkt)
        # RFC 9449 §11.1: single use, checked last so only a valid proof spends its jti.
        single_use = SingleUse(
            "dpop", f"{jkt}:{jti}", issued_at + self._max_age + self._leeway
        )
        if self._replay.seen(
            single_use.namespace, single_use.value, single_use.expires_at
        ):
            raise DPoPReplayError("dpop proof replayed", jkt=jkt)
        public = {name: jwk[name] for name in _REQUIRED_MEMBERS[jwk["kty"]]}
        return DPoPProof(
            jkt=jkt, jti=jti, issued_at=issued_at, jwk=public, single_use=single_use
        )

    def _check_signed(self, proof: str) -> tuple[CompactJWS, dict[str, Any], str]:
        try:
            jws = parse_compact(proof)
        except ValueError:
            raise _reject("malformed dpop proof") from None
        header = jws.header
        # RFC 9449 §4.3 items 4-7: explicit typ, asymmetric alg, a public jwk.
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.lower() not in _DPOP_TYPES:
            raise _reject("dpop proof typ must be dpop+jwt")
        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm not in self._algorithms:
            raise _reject("dpop proof algorithm is not allowed")
        jwk = header.get("jwk")
        if not isinstance(jwk, dict):
            raise _reject("dpop proof has no jwk")
        if PRIVATE_MEMBERS.intersection(jwk):
            raise _reject("dpop jwk must be a public key")
        kty, crv = _KEY_TYPES[algorithm]
        if jwk.get("kty") != kty or (crv is not None and jwk.get("crv") != crv):
            raise _reject("dpop jwk does not match the algorithm")
        key, jkt = _key_and_thumbprint(jwk, kty)
        if not verify_signature(jws, key, algorithm):
            raise _reject("dpop proof signature is invalid")
        return jws, jwk, jkt

    @staticmethod
    def _check_request(claims: dict[str, Any], method: str, url: str) -> str:
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti or len(jti) > _MAX_JTI_LENGTH:
            raise _reject("dpop proof has no valid jti")
        # RFC 9110 §9.1: methods are case-sensitive.
        if claims.get("htm") != method:
            raise _reject("dpop htm does not match the request method")
        htu = claims.get("htu")
        if not isinstance(htu, str):
            raise _reject("dpop proof has no htu")
        try:
            matches = _normalized(htu) == _normalized(url)
        except ValueError:
            matches = False
        if not matches:
            raise _reject("dpop htu does not match the request url")
        return jti

    def _check_iat(self, iat: object) -> dt.datetime:
        # RFC 9449 §4.2: iat is an integer NumericDate.
        if not isinstance(iat, int) or isinstance(iat, bool):
            raise _reject("dpop proof has no valid iat")
        now = self._clock.now()
        seconds = now.timestamp()
        if iat < seconds - (self._max_age + self._leeway).total_seconds():
            raise _reject("dpop proof is too old")
        if iat > seconds + self._leeway.total_seconds():
            raise _reject("dpop proof is from the future")
        return dt.datetime.fromtimestamp(iat, dt.UTC)

    def _check_nonce(self, nonce: object) -> None:
        nonces = self._nonces
        if nonces is None:
            return
        if nonce is None:
            if self._require_nonce:
                raise DPoPNonceRequiredError(
                    "dpop nonce required", nonce=nonces.issue()
                )
            return
        # RFC 9449 §8: a nonce that is present must be one of ours and fresh.
        if not nonces.is_valid(nonce):
            raise DPoPNonceRequiredError(
                "dpop nonce is invalid or expired", nonce=nonces.issue()
            )
