"""
Checking a gatepass access token on a resource server.

The order follows RFC 9449 §7.1 and RFC 9068 §4: the ``DPoP`` authorization scheme
(read by :mod:`gatepass.verify.headers`), the JWT itself (typ ``at+jwt``, issuer,
this server as the one audience, expiry), then the DPoP proof bound to the token's
key and to this exact request, and last the token's revocation status: from the
broker's push stream (a :class:`~gatepass.verify.RevocationFeed`) while it is
connected, and from RFC 7662 introspection while it is not.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any, Literal

import httpx

from gatepass.clock import Clock, SystemClock
from gatepass.errors import ConfigurationError, TokenError, TokenRevokedError
from gatepass.secret import token_hash
from gatepass.ssf.consume import SSFPollSubscription
from gatepass.tokens import (
    ACCESS_TOKEN_TYP,
    AccessTokenClaims,
    DPoPVerifier,
    JWKSKeySource,
    JWTVerifier,
    KeySource,
    MemoryReplayCache,
    check_certificate_binding,
    normalize_htu,
)
from gatepass.verify.access import VerifiedAccess, actor_chain
from gatepass.verify.headers import PresentedCredentials, dpop_access_token
from gatepass.verify.introspection import ApiToken, Introspector
from gatepass.verify.metadata import ProtectedResource, origin_of
from gatepass.verify.revocations import RevocationFeed

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
        introspection: asks the broker whether a token is still active (RFC
            7662): on every request (cached briefly) without ``revocations``, and
            only while the stream is down with it.
        revocations: follows the broker's revocation push stream, so a revoked
            token is refused without a call per request. While the stream is
            down, ``introspection`` is asked, or, without one, every request is
            refused (fail closed). Without either, tokens are checked offline
            only and stay usable until they expire.
        clock: the time source.
        http: the HTTP client for fetching the JWKS.
        public_url: the external URL of the application's root (scheme, host,
            port and any prefix a reverse proxy strips), from which request URLs
            (the DPoP ``htu``) are rebuilt as ``public_url`` + request path;
            defaults to the audience's origin, which is right whenever the
            application sees the same path as the client. Never derived from
            ``Host`` or ``X-Forwarded-*``: those are chosen by the caller.
        dpop_verifier: checks DPoP proofs; one with an in-memory replay cache is
            created when omitted. Pass a shared one when several processes serve.
        scopes: the actions this resource knows, published as
            ``scopes_supported`` in its RFC 9728 metadata.
        resource_name: a human-readable name for the metadata.
        max_cached_tokens: how many verified tokens are remembered (by SHA-256,
            until they expire), so an agent's next request with the same token
            costs the proof's signature only; 0 verifies every token in full.

    Raises:
        ConfigurationError: ``public_url`` or ``audience`` is not an absolute
            http(s) URL.
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
        revocations: RevocationFeed | None = None,
        scopes: Iterable[str] = (),
        resource_name: str | None = None,
        max_cached_tokens: int = 10_000,
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
        self.metadata = ProtectedResource.of(
            audience, issuer, scopes=scopes, resource_name=resource_name
        )
        # The request path already holds the audience's own path (/mcp for
        # http://host/mcp): the default root is the origin, never the audience,
        # or every htu would be rebuilt as /mcp/mcp.
        base = public_url or origin_of(audience)
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
        self.revocations = revocations
        self._max_cached = max_cached_tokens
        self._verified: OrderedDict[str, tuple[AccessTokenClaims, dict[str, Any]]] = (
            OrderedDict()
        )
        self._cache_lock = threading.Lock()

    @classmethod
    def for_broker(
        cls,
        issuer: str,
        audience: str,
        *,
        api_token: ApiToken,
        scopes: Iterable[str] = (),
        resource_name: str | None = None,
        public_url: str | None = None,
        clock: Clock | None = None,
        token_lifetime: dt.timedelta = dt.timedelta(minutes=15),
        introspection_cache_ttl: dt.timedelta = dt.timedelta(seconds=5),
        revocations: Literal["stream", "ssf"] = "stream",
        ssf_token: ApiToken | None = None,
    ) -> ResourceVerifier:
        """
        Build the verifier a resource server of one gatepass broker needs.

        Keys come from ``{issuer}/jwks.json``; revocations are pushed by
        ``{issuer}/v1/revocations/stream`` and, while it is down, asked of
        ``{issuer}/introspect`` (answers cached ``introspection_cache_ttl``).

        Args:
            issuer: the broker's issuer URL.
            audience: this resource's target URI.
            api_token: an api token with the ``introspect`` role, or a callable
                that returns it (read when first needed).
            scopes: the actions the resource knows, for its metadata.
            resource_name: a human-readable name, for its metadata.
            public_url: see the class.
            clock: the time source.
            token_lifetime: the longest an access token of this broker lives
                (``tokens.access_max_ttl_seconds``): how long a revoked id is
                remembered.
            introspection_cache_ttl: how long an *active* introspection answer is
                trusted while the stream is down.
            revocations: ``stream`` follows ``/v1/revocations/stream`` (Server-Sent
                Events, gatepass only); ``ssf`` subscribes to the broker's OpenID
                SSF transmitter by poll (RFC 8936: signed CAEP events, no inbound
                connection) with ``ssf_token``. Either way introspection is asked
                only while the subscription is down.
            ssf_token: an ``ssf_receiver`` api token allowed this audience (or a
                callable returning it); required with ``revocations="ssf"``.

        Raises:
            ConfigurationError: ``revocations="ssf"`` without ``ssf_token``.

        Returns:
            The verifier; start it (or serve it through
            :class:`~gatepass.verify.GatepassMiddleware`, which does) to follow
            the stream.
        """
        base = issuer.rstrip("/")
        if revocations == "ssf" and ssf_token is None:
            raise ConfigurationError("revocations='ssf' needs an ssf_token")
        verifier = cls(
            issuer=issuer,
            audience=audience,
            jwks_uri=f"{base}/jwks.json",
            introspection=Introspector(
                f"{base}/introspect",
                api_token,
                cache_ttl=introspection_cache_ttl,
                clock=clock,
            ),
            clock=clock,
            public_url=public_url,
            scopes=scopes,
            resource_name=resource_name,
        )
        if revocations == "ssf" and ssf_token is not None:
            keys = verifier._owned_source
            if keys is None:  # pragma: no cover - jwks_uri is always given here
                raise ConfigurationError("the broker's keys are needed for ssf")
            verifier.revocations = RevocationFeed(
                issuer,
                ssf_token,
                token_lifetime=token_lifetime,
                clock=clock,
                subscription=SSFPollSubscription(issuer, audience, keys=keys),
            )
        else:
            verifier.revocations = RevocationFeed(
                issuer, api_token, token_lifetime=token_lifetime, clock=clock
            )
        return verifier

    @property
    def clock(self) -> Clock:
        """The time source tokens are checked against."""
        return self._clock

    def __repr__(self) -> str:
        """Show the issuer and audience."""
        return f"ResourceVerifier(issuer={self.issuer!r}, audience={self.audience!r})"

    def close(self) -> None:
        """Close the HTTP clients this verifier created."""
        if self._owned_source is not None:
            self._owned_source.close()
        if self._introspection is not None:
            self._introspection.close()

    async def start(self) -> None:
        """Start following the revocation stream, if one is configured."""
        if self.revocations is not None:
            await self.revocations.start()

    async def aclose(self) -> None:
        """Stop following the revocation stream and close every client."""
        if self.revocations is not None:
            await self.revocations.aclose()
        await asyncio.to_thread(self.close)

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
            TokenRevokedError: the broker revoked the token (pushed by the
                stream, or answered by introspection).
            DPoPProofError: the proof is missing, replayed, for another request or
                signed by another key.

        A token bound to a client certificate (``cnf.x5t#S256``) is refused with
        ``invalid_token`` unless ``presented.certificate`` is that certificate.
        """
        token = presented.token
        claims, raw = self._verified_claims(token)
        self._dpop.verify(
            presented.proof,
            method=method,
            url=url,
            access_token=token,
            expected_jkt=claims.jkt,
        )
        # RFC 8705 §3: a certificate-bound token only over that certificate.
        check_certificate_binding(claims.x5t, presented.certificate)
        self.check_revocation(token, claims.jti)
        return VerifiedAccess(
            agent_id=claims.agent_id,
            task_id=claims.task_id,
            scopes=frozenset(claims.scope),
            jkt=claims.jkt,
            jti=claims.jti,
            audience=self.audience,
            expires_at=claims.expires_at,
            tenant=claims.tenant,
            environment=claims.environment,
            actors=actor_chain(raw),
            claims=raw,
        )

    def needs_io(self, token: str) -> bool:
        """
        Tell whether verifying a request with this token may block on the network.

        It may not when the token was verified before (no key fetch) and its
        revocation status is known from memory (the stream is up, or no
        revocation source is configured). The middleware verifies such requests
        on the event loop: a thread hop costs more than the proof's signature.

        Args:
            token: the presented access token.

        Returns:
            False when :meth:`verify_presented` will only compute.
        """
        if self._max_cached <= 0:
            return True
        key = token_hash(token)
        with self._cache_lock:
            found = self._verified.get(key)
        if found is None or self._clock.now() >= found[0].expires_at:
            return True
        feed = self.revocations
        if feed is not None:
            return not feed.healthy
        return self._introspection is not None

    def _verified_claims(self, token: str) -> tuple[AccessTokenClaims, dict[str, Any]]:
        # The same token comes back with every request of an agent, each with a
        # new proof. Its signature, issuer, audience and type cannot change, so a
        # token verified once is remembered by its hash until its exp; the proof
        # and the revocation status are still checked on every request.
        key = token_hash(token) if self._max_cached > 0 else ""
        if key:
            with self._cache_lock:
                found = self._verified.get(key)
            if found is not None and self._clock.now() < found[0].expires_at:
                return found
        raw = self._tokens.verify(token, typ=ACCESS_TOKEN_TYP, audience=self.audience)
        verified = (AccessTokenClaims.from_claims(raw), raw)
        if key:
            with self._cache_lock:
                self._verified[key] = verified
                self._verified.move_to_end(key)
                while len(self._verified) > self._max_cached:
                    self._verified.popitem(last=False)
        return verified

    def check_revocation(self, token: str, jti: str) -> None:
        """
        Raise if the broker revoked a token whose signature already verified.

        Args:
            token: the access token, for introspection.
            jti: its ``jti``, which revocation events name.

        Raises:
            TokenRevokedError: the stream or the broker says it was revoked.
            TokenError: the stream is down and the broker cannot be asked.
        """
        feed = self.revocations
        if feed is not None:
            if feed.is_revoked(jti):
                raise TokenRevokedError("token is no longer active")
            if feed.healthy:
                return
        if self._introspection is not None:
            self._introspection.check(token)
        elif feed is not None:
            # The stream is down and nothing else can say: fail closed, as the
            # introspector does when the broker cannot answer.
            raise TokenError("revocation status unavailable")
