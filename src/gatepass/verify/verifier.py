"""
Checking a gatepass access token on a resource server.

The order follows RFC 9449 §7.1 and RFC 9068 §4: the ``DPoP`` authorization scheme
(read by :mod:`gatepass.verify.headers`), the JWT itself (typ ``at+jwt``, issuer,
this server as the one audience, expiry), then the DPoP proof bound to the token's
key and to this exact request, and last the token's revocation status when an
:class:`Introspector` is configured.
"""

from __future__ import annotations

import httpx

from gatepass.clock import Clock, SystemClock
from gatepass.errors import ConfigurationError
from gatepass.tokens import (
    ACCESS_TOKEN_TYP,
    AccessTokenClaims,
    DPoPVerifier,
    JWKSKeySource,
    JWTVerifier,
    KeySource,
    MemoryReplayCache,
    normalize_htu,
)
from gatepass.verify.access import VerifiedAccess
from gatepass.verify.headers import PresentedCredentials, dpop_access_token
from gatepass.verify.introspection import Introspector

__all__ = ["ACCESS_TOKEN_TYP", "ResourceVerifier"]


class ResourceVerifier:
    """
    Verify gatepass access tokens presented to one resource server.

    Args:
        issuer: the broker's issuer URL, the tokens' ``iss``.
        audience: this resource server's target URI, the tokens' one ``aud``.
        jwks_uri: where the broker publishes its keys; ``{issuer}/jwks.json`` when
            neither this nor ``key_source`` is given. Fetched on first use.
        key_source: the keys to trust, instead of fetching ``jwks_uri``.
        introspection: checks revocation status with the broker; without it,
            tokens are checked offline only and stay usable until they expire.
        clock: the time source.
        http: the HTTP client for fetching the JWKS.
        public_url: the external URL of the application's root, from which
            request URLs (the DPoP ``htu``) are rebuilt; defaults to ``audience``.
            Never derived from ``Host`` or ``X-Forwarded-*``: those are chosen by
            the caller.
        dpop_verifier: checks DPoP proofs; one with an in-memory replay cache is
            created when omitted. Pass a shared one when several processes serve.

    Raises:
        ConfigurationError: ``public_url`` is not an absolute http(s) URL.
    """

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        jwks_uri: str | None = None,
        key_source: KeySource | None = None,
        introspection: Introspector | None = None,
        clock: Clock | None = None,
        http: httpx.Client | None = None,
        public_url: str | None = None,
        dpop_verifier: DPoPVerifier | None = None,
    ) -> None:
        """Build the token and proof verifiers."""
        self._clock = clock or SystemClock()
        self._owned_source: JWKSKeySource | None = None
        if key_source is None:
            self._owned_source = JWKSKeySource(
                jwks_uri or f"{issuer.rstrip('/')}/jwks.json",
                http=http,
                clock=self._clock,
            )
            key_source = self._owned_source
        self.issuer = issuer
        self.audience = audience
        base = public_url or audience
        try:
            normalize_htu(base)
        except ValueError:
            raise ConfigurationError(
                "public url must be an absolute http(s) url"
            ) from None
        self.public_url = base
        self._tokens = JWTVerifier(key_source, issuer=issuer, clock=self._clock)
        self._dpop = dpop_verifier or DPoPVerifier(
            clock=self._clock, replay=MemoryReplayCache(self._clock)
        )
        self._introspection = introspection

    def __repr__(self) -> str:
        """Show the issuer and audience."""
        return f"ResourceVerifier(issuer={self.issuer!r}, audience={self.audience!r})"

    def close(self) -> None:
        """Close the HTTP clients this verifier created."""
        if self._owned_source is not None:
            self._owned_source.close()
        if self._introspection is not None:
            self._introspection.close()

    def url_for(self, path: str) -> str:
        """
        Return the public URL of a request path, for the DPoP ``htu`` check.

        Args:
            path: the request path as received (percent-encoded, without query).

        Returns:
            ``public_url`` with the path appended.
        """
        return self.public_url.rstrip("/") + "/" + path.lstrip("/")

    def verify(
        self,
        method: str,
        url: str,
        authorization: str | None,
        dpop: str | None,
    ) -> VerifiedAccess:
        """
        Verify the credentials of one request.

        Args:
            method: the request method.
            url: the request's public URL (see :meth:`url_for`).
            authorization: the ``Authorization`` header, None when absent.
            dpop: the one ``DPoP`` header, None when absent; the caller refuses a
                request with several.

        Returns:
            What the token grants and to whom.

        Raises:
            TokenMissingError: the header is missing or empty.
            TokenError: the header is not ``DPoP <b64token>`` (a DPoP-bound token
                sent as ``Bearer`` among them), or as :meth:`verify_presented`.
            TokenSignatureError: as :meth:`verify_presented`.
            TokenRevokedError: as :meth:`verify_presented`.
            DPoPProofError: as :meth:`verify_presented`.
        """
        presented = PresentedCredentials(
            token=dpop_access_token(authorization), proof=dpop
        )
        return self.verify_presented(method, url, presented)

    def verify_presented(
        self, method: str, url: str, presented: PresentedCredentials
    ) -> VerifiedAccess:
        """
        Verify the credentials of one request, as read from its headers.

        Args:
            method: the request method.
            url: the request's public URL (see :meth:`url_for`).
            presented: the token and proof, from
                :func:`~gatepass.verify.presented_credentials`.

        Returns:
            What the token grants and to whom.

        Raises:
            TokenError: the token is malformed, expired, for another audience or
                issuer, of another type, or not DPoP-bound.
            TokenSignatureError: the signature or key is wrong.
            TokenRevokedError: the broker says the token is no longer active.
            DPoPProofError: the proof is missing, replayed, for another request or
                signed by another key.
        """
        token = presented.token
        raw = self._tokens.verify(token, typ=ACCESS_TOKEN_TYP, audience=self.audience)
        claims = AccessTokenClaims.from_claims(raw)
        self._dpop.verify(
            presented.proof,
            method=method,
            url=url,
            access_token=token,
            expected_jkt=claims.jkt,
        )
        if self._introspection is not None:
            self._introspection.check(token)
        return VerifiedAccess(
            agent_id=claims.agent_id,
            task_id=claims.task_id,
            scopes=frozenset(claims.scope),
            jkt=claims.jkt,
            jti=claims.jti,
            audience=self.audience,
            expires_at=claims.expires_at,
            claims=raw,
        )
