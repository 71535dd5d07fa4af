"""
Verifying gatepass JWTs: the broker itself, resource servers and the proxy.

The rules are RFC 8725 (JWT BCP) and RFC 9068 §4: an explicit ``typ``, an algorithm
pinned to the key named by ``kid`` (never read from the token alone), a signature,
then ``iss``, exactly one ``aud``, ``exp``, ``iat``, ``jti`` and ``nbf`` checked
against the injected clock.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Mapping
from typing import Any, Protocol

import httpx

from gatepass.clock import Clock
from gatepass.errors import (
    ConfigurationError,
    InvalidRequestError,
    TokenError,
    TokenExpiredError,
    TokenSignatureError,
)
from gatepass.tokens.jwk import PRIVATE_MEMBERS, algorithm_for, public_key_from_jwk
from gatepass.tokens.jws import is_numeric_date, parse_compact, verify_signature
from gatepass.tokens.keys import SIGNING_ALGORITHMS

__all__ = ["JWKSKeySource", "JWTVerifier", "KeySource"]

_REQUIRED_CLAIMS = ("iss", "sub", "aud", "exp", "iat", "jti")
_MAX_JWKS_BYTES = 256 * 1024


class KeySource(Protocol):
    """Where a verifier finds the public key and pinned algorithm for a ``kid``."""

    def key_for(self, kid: str) -> tuple[object, str]:
        """
        Return the public key and its pinned algorithm.

        Args:
            kid: the token's ``kid`` header.

        Raises:
            TokenSignatureError: the kid is unknown.
        """
        ...


def _keys_from_jwks(document: object) -> dict[str, tuple[object, str]]:
    """Keep the usable signing keys of a JWK Set; skip the rest (RFC 7517 §5)."""
    if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
        raise ValueError("not a jwk set")  # noqa: TRY004 - one error for bad input
    keys: dict[str, tuple[object, str]] = {}
    for entry in document["keys"]:
        if not isinstance(entry, Mapping) or PRIVATE_MEMBERS.intersection(entry):
            continue
        kid = entry.get("kid")
        if not isinstance(kid, str) or not kid or entry.get("use", "sig") != "sig":
            continue
        try:
            algorithm = algorithm_for(entry)
            key = public_key_from_jwk(entry)
        except InvalidRequestError:
            continue
        # RFC 8725 §3.1: the algorithm is pinned by the key type; a JWK whose "alg"
        # disagrees with its type is not trusted at all.
        if entry.get("alg", algorithm) != algorithm:
            continue
        keys[kid] = (key, algorithm)
    return keys


class JWKSKeySource:
    """
    Keys fetched from the broker's ``jwks_uri`` and cached.

    The set is refreshed every ``refresh_interval``; an unknown ``kid`` triggers a
    refetch at most once per ``min_refetch_interval``, so forged kids cannot make the
    verifier hammer the broker. If a refresh fails, the cached keys stay in use.

    Args:
        jwks_uri: the JWKS URL; None for a pinned set (see :meth:`from_jwks`).
        http: the HTTP client; one with a 5 s timeout is created when omitted.
        clock: the time source.
        refresh_interval: how long a fetched set is used before it is refetched.
        min_refetch_interval: the shortest time between two fetches.
    """

    def __init__(
        self,
        jwks_uri: str | None,
        *,
        http: httpx.Client | None = None,
        clock: Clock,
        refresh_interval: dt.timedelta = dt.timedelta(minutes=5),
        min_refetch_interval: dt.timedelta = dt.timedelta(seconds=10),
    ) -> None:
        """Prepare the cache; nothing is fetched until a key is needed."""
        self._uri = jwks_uri
        self._owns_http = http is None and jwks_uri is not None
        self._http = http if http is not None or jwks_uri is None else None
        if self._owns_http:
            self._http = httpx.Client(timeout=5.0, follow_redirects=False)
        self._clock = clock
        self._refresh = refresh_interval
        self._min_refetch = min_refetch_interval
        self._keys: dict[str, tuple[object, str]] = {}
        self._fetched_at: dt.datetime | None = None
        self._attempted_at: dt.datetime | None = None
        self._fetches = 0
        self._lock = threading.Lock()

    @staticmethod
    def from_jwks(document: Mapping[str, Any], *, clock: Clock) -> JWKSKeySource:
        """
        Build a source from a JWK Set held in memory; it never fetches.

        Args:
            document: a JWK Set (``{"keys": [...]}``).
            clock: the time source.

        Returns:
            The source.

        Raises:
            ConfigurationError: the document is not a JWK Set.
        """
        source = JWKSKeySource(None, clock=clock)
        try:
            source._keys = _keys_from_jwks(document)
        except ValueError:
            raise ConfigurationError("pinned jwks is not a jwk set") from None
        return source

    @property
    def fetch_count(self) -> int:
        """How many fetches were attempted (for metrics and tests)."""
        return self._fetches

    def close(self) -> None:
        """Close the HTTP client if this source created it."""
        if self._owns_http and self._http is not None:
            self._http.close()

    def key_for(self, kid: str) -> tuple[object, str]:
        """
        Return the public key and pinned algorithm for a kid.

        Args:
            kid: the token's ``kid`` header.

        Returns:
            The key and its algorithm.

        Raises:
            TokenSignatureError: the kid is not in the (refreshed) set.
            TokenError: no key set could be fetched.
        """
        if self._uri is not None:
            now = self._clock.now()
            fetched = self._fetched_at
            if (
                fetched is None
                or now >= fetched + self._refresh
                or kid not in self._keys
            ):
                self._maybe_fetch(now)
        found = self._keys.get(kid)
        if found is None:
            if self._uri is not None and self._fetched_at is None:
                raise TokenError("signing keys are unavailable")
            raise TokenSignatureError("unknown signing key")
        return found

    def _maybe_fetch(self, now: dt.datetime) -> None:
        with self._lock:
            attempted = self._attempted_at
            if attempted is not None and now < attempted + self._min_refetch:
                return
            self._attempted_at = now
            self._fetches += 1
            try:
                keys = self._fetch()
            except (httpx.HTTPError, ValueError):
                return
            self._keys = keys
            self._fetched_at = now

    def _fetch(self) -> dict[str, tuple[object, str]]:
        if self._http is None or self._uri is None:  # pragma: no cover - guarded
            raise ValueError("no jwks uri")
        response = self._http.get(self._uri, headers={"Accept": "application/json"})
        if response.status_code != httpx.codes.OK:
            raise ValueError("jwks fetch failed")
        if len(response.content) > _MAX_JWKS_BYTES:
            raise ValueError("jwks too large")
        return _keys_from_jwks(response.json())


def _typ_matches(header_typ: object, expected: str) -> bool:
    # RFC 7515 §4.1.9: typ is a media type, compared case-insensitively, and the
    # "application/" prefix may be omitted.
    if not isinstance(header_typ, str):
        return False
    typ = header_typ.lower()
    wanted = expected.lower()
    return typ in {wanted, f"application/{wanted}"}


class JWTVerifier:
    """
    Verify a gatepass JWT completely, or raise.

    Args:
        keys: where keys come from (a :class:`~gatepass.tokens.keys.KeyRing` in the
            broker, a :class:`JWKSKeySource` elsewhere).
        issuer: the expected ``iss``.
        clock: the time source.
        algorithms: the allowed algorithms; a subset of ES256 and EdDSA.
        leeway: tolerated clock skew.

    Raises:
        ConfigurationError: the allow-list names another algorithm.
    """

    __slots__ = ("_algorithms", "_clock", "_issuer", "_keys", "_leeway")

    def __init__(
        self,
        keys: KeySource,
        *,
        issuer: str,
        clock: Clock,
        algorithms: frozenset[str] = SIGNING_ALGORITHMS,
        leeway: dt.timedelta = dt.timedelta(seconds=30),
    ) -> None:
        """Keep the configuration."""
        # RFC 8725 §3.1: an explicit allow-list of asymmetric algorithms only.
        if not algorithms or not algorithms <= SIGNING_ALGORITHMS:
            raise ConfigurationError("token algorithms must be ES256 or EdDSA")
        self._keys = keys
        self._issuer = issuer
        self._clock = clock
        self._algorithms = algorithms
        self._leeway = leeway.total_seconds()

    def verify(self, token: str, *, typ: str, audience: str) -> dict[str, Any]:
        """
        Verify a token and return its claims.

        Args:
            token: the compact JWS.
            typ: the expected header ``typ`` (``at+jwt``, ``txntoken+jwt``).
            audience: this verifier's identifier; the token's only ``aud``.

        Returns:
            The verified claims.

        Raises:
            TokenError: the token is malformed, of another type, for another audience
                or issuer, or lacks a required claim.
            TokenSignatureError: the key is unknown, the algorithm is not the key's,
                or the signature is invalid.
            TokenExpiredError: ``exp`` has passed.
        """
        try:
            jws = parse_compact(token)
        except ValueError:
            raise TokenError("malformed token") from None
        header = jws.header
        # RFC 8725 §3.11: explicit typing keeps one kind of JWT from passing as another.
        if not _typ_matches(header.get("typ"), typ):
            raise TokenError("unexpected token type")
        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm not in self._algorithms:
            raise TokenSignatureError("token algorithm is not allowed")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise TokenError("token has no key id")
        key, pinned = self._keys.key_for(kid)
        # RFC 8725 §3.1: the key's own algorithm decides; the header must agree.
        if algorithm != pinned:
            raise TokenSignatureError("token algorithm does not match the signing key")
        if not verify_signature(jws, key, pinned):
            raise TokenSignatureError("invalid token signature")
        try:
            claims = jws.claims()
        except ValueError:
            raise TokenError("malformed token claims") from None
        self._check_claims(claims, audience)
        return claims

    def _check_claims(self, claims: dict[str, Any], audience: str) -> None:
        self._check_identity(claims, audience)
        self._check_times(claims)

    def _check_identity(self, claims: dict[str, Any], audience: str) -> None:
        for name in _REQUIRED_CLAIMS:
            if name not in claims:
                raise TokenError(f"token has no {name} claim")
        if claims["iss"] != self._issuer:
            raise TokenError("token issuer is not trusted")
        if not isinstance(claims["sub"], str) or not claims["sub"]:
            raise TokenError("token subject is invalid")
        if not isinstance(claims["jti"], str) or not claims["jti"]:
            raise TokenError("token id is invalid")
        aud = claims["aud"]
        if isinstance(aud, list):
            # RFC 8707 / DESIGN rule 7: a token is for exactly one audience.
            if len(aud) != 1:
                raise TokenError("token must have exactly one audience")
            aud = aud[0]
        if aud != audience:
            raise TokenError("token audience does not match")

    def _check_times(self, claims: dict[str, Any]) -> None:
        exp, iat = claims["exp"], claims["iat"]
        if not is_numeric_date(exp):
            raise TokenError("token exp is not a number")
        if not is_numeric_date(iat):
            raise TokenError("token iat is not a number")
        now = self._clock.now().timestamp()
        leeway = self._leeway
        # RFC 7519 §4.1.4: reject on or after exp (with the configured skew).
        if exp <= now - leeway:
            raise TokenExpiredError("token has expired")
        if iat > now + leeway:
            raise TokenError("token was issued in the future")
        if "nbf" in claims:
            nbf = claims["nbf"]
            if not is_numeric_date(nbf):
                raise TokenError("token nbf is not a number")
            if nbf > now + leeway:
                raise TokenError("token is not yet valid")
