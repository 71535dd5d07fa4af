"""
OpenID Connect sign-in for the console: authorization code flow with PKCE.

What is trusted, and why (RFC 9700, RFC 8725, OpenID Connect Core §3.1.3.7):

* **One issuer, configured.** The provider's metadata is read from the configured
  issuer's ``/.well-known/openid-configuration`` only, and its ``issuer`` must be
  exactly the configured one; its ``jwks_uri`` and endpoints come from that
  document. Nothing a token names is ever fetched.
* **PKCE S256 and state**, with the ``state``, ``nonce`` and verifier held in a
  short-lived cookie of the browser that started the sign-in; the state is
  compared in constant time.
* **The ID token** is verified with a key from that JWKS chosen by ``kid``, with
  the algorithms pinned by ``[console.oidc] algorithms`` (never the token's
  ``alg`` alone); ``iss``, ``aud`` (the client id, and ``azp`` when there are
  several audiences), ``exp``, ``iat`` and ``nonce`` are required and checked.
* **Client authentication** with a secret read from a file (``client_secret_basic``)
  or ``private_key_jwt`` signed with a private JWK read from a file.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlencode

import httpx
import jwt

from gatepass.config import ConsoleOIDCSettings
from gatepass.errors import AuthenticationError, FetchError

__all__ = ["OIDCClient", "OIDCStart", "pkce_challenge"]

_TIMEOUT: Final = httpx.Timeout(5.0)
_LEEWAY: Final = 30
_MAX_BODY: Final = 256 * 1024


def pkce_challenge(verifier: str) -> str:
    """Return the RFC 7636 S256 code challenge of a verifier."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass(frozen=True, slots=True, kw_only=True)
class OIDCStart:
    """
    A sign-in being started: where to send the browser and what to remember.

    Attributes:
        url: the provider's authorization URL with the request's parameters.
        cookie: ``state.nonce.verifier``, kept by the browser until the callback.
    """

    url: str
    cookie: str


class OIDCClient:
    """
    The console's OpenID Connect relying party.

    Args:
        settings: ``[console.oidc]``.
        transport: the HTTP transport (tests pass a fake provider); None: the
            network.
    """

    def __init__(
        self,
        settings: ConsoleOIDCSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """Keep the settings; metadata and keys are fetched when first needed."""
        self.settings = settings
        self._transport = transport
        self._metadata: dict[str, Any] | None = None
        self._keys: dict[str, jwt.PyJWK] | None = None

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            async with httpx.AsyncClient(
                timeout=_TIMEOUT, follow_redirects=False, transport=self._transport
            ) as client:
                response = await client.get(url, headers={"accept": "application/json"})
        except httpx.HTTPError:
            raise FetchError("the identity provider cannot be reached") from None
        if response.status_code != 200 or len(response.content) > _MAX_BODY:
            raise FetchError("the identity provider answered with an error")
        try:
            body = response.json()
        except ValueError:
            raise FetchError("the identity provider's answer is not json") from None
        if not isinstance(body, dict):
            raise FetchError("the identity provider's answer is not a json object")
        return body

    async def metadata(self) -> dict[str, Any]:
        """
        Return the configured issuer's metadata (fetched once).

        Raises:
            FetchError: it cannot be read, or names another issuer.
        """
        if self._metadata is None:
            issuer = self.settings.issuer
            found = await self._get_json(f"{issuer}/.well-known/openid-configuration")
            if found.get("issuer") != issuer:
                raise FetchError(
                    "the identity provider's metadata names another issuer"
                )
            for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                if not isinstance(found.get(name), str):
                    raise FetchError(f"the identity provider's metadata lacks {name}")
            self._metadata = found
        return self._metadata

    async def _key(self, kid: str | None) -> jwt.PyJWK:
        for refresh in (False, True):
            if self._keys is None or refresh:
                jwks = await self._get_json((await self.metadata())["jwks_uri"])
                keys: dict[str, jwt.PyJWK] = {}
                for raw in jwks.get("keys", []):
                    if not isinstance(raw, dict) or raw.get("use", "sig") != "sig":
                        continue
                    try:
                        key = jwt.PyJWK(raw)
                    except jwt.PyJWTError:
                        continue
                    keys[str(raw.get("kid", ""))] = key
                self._keys = keys
            if kid is not None and kid in self._keys:
                return self._keys[kid]
            if kid is None and len(self._keys) == 1:
                return next(iter(self._keys.values()))
        raise AuthenticationError("the id token's key is not the provider's")

    async def start(self) -> OIDCStart:
        """Return the authorization URL and the values the callback checks."""
        metadata = await self.metadata()
        state = secrets.token_urlsafe(24)
        nonce = secrets.token_urlsafe(24)
        verifier = secrets.token_urlsafe(48)
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.settings.client_id,
                "redirect_uri": self.settings.redirect_uri,
                "scope": " ".join(self.settings.scopes),
                "state": state,
                "nonce": nonce,
                "code_challenge": pkce_challenge(verifier),
                "code_challenge_method": "S256",
            }
        )
        return OIDCStart(
            url=f"{metadata['authorization_endpoint']}?{query}",
            cookie=f"{state}.{nonce}.{verifier}",
        )

    def _client_auth(
        self, token_endpoint: str
    ) -> tuple[dict[str, str], httpx.Auth | None]:
        settings = self.settings
        if settings.client_secret_file is not None:
            secret = settings.client_secret_file.read_text(encoding="utf-8").strip()
            return {}, httpx.BasicAuth(settings.client_id, secret)
        path = settings.private_key_file
        if path is None:  # pragma: no cover - the settings require one of the two
            raise AuthenticationError("no client credential is configured")
        private = json.loads(path.read_text(encoding="utf-8"))
        key = jwt.PyJWK(private)
        now = int(time.time())
        assertion = jwt.encode(
            {
                "iss": settings.client_id,
                "sub": settings.client_id,
                "aud": token_endpoint,
                "iat": now,
                "exp": now + 60,
                "jti": secrets.token_urlsafe(16),
            },
            key.key,
            algorithm=key.algorithm_name,
            headers={"kid": private["kid"]} if "kid" in private else None,
        )
        return {
            "client_assertion_type": (
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
            ),
            "client_assertion": assertion,
        }, None

    async def finish(self, *, code: str, state: str, cookie: str) -> dict[str, Any]:
        """
        Exchange the code and verify the ID token.

        Args:
            code: the authorization code from the callback.
            state: the callback's ``state``.
            cookie: the value :meth:`start` returned, from the browser.

        Returns:
            The ID token's verified claims.

        Raises:
            AuthenticationError: the state does not match, the exchange failed,
                or the ID token fails a check.
            FetchError: the provider cannot be reached.
        """
        parts = cookie.split(".")
        if len(parts) != 3 or not hmac.compare_digest(
            parts[0].encode(), state.encode()
        ):
            raise AuthenticationError("the sign-in's state does not match")
        _, nonce, verifier = parts
        metadata = await self.metadata()
        token_endpoint = metadata["token_endpoint"]
        extra, auth = self._client_auth(token_endpoint)
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.settings.redirect_uri,
            "code_verifier": verifier,
            **extra,
        }
        if auth is None:
            form["client_id"] = self.settings.client_id
        try:
            async with httpx.AsyncClient(
                timeout=_TIMEOUT, follow_redirects=False, transport=self._transport
            ) as client:
                response = await client.post(
                    token_endpoint, data=form, auth=auth or httpx.USE_CLIENT_DEFAULT
                )
        except httpx.HTTPError:
            raise FetchError("the identity provider cannot be reached") from None
        if response.status_code != 200:
            raise AuthenticationError("the identity provider refused the code")
        try:
            id_token = response.json()["id_token"]
        except (ValueError, KeyError, TypeError):
            raise AuthenticationError(
                "the identity provider sent no id token"
            ) from None
        return await self.verify_id_token(str(id_token), nonce=nonce)

    async def verify_id_token(self, id_token: str, *, nonce: str) -> dict[str, Any]:
        """
        Verify an ID token from the configured issuer.

        Raises:
            AuthenticationError: any check failed (one message; the reason is
                not told to the browser).
        """
        try:
            header = jwt.get_unverified_header(id_token)
        except jwt.PyJWTError:
            raise AuthenticationError("the id token is malformed") from None
        allowed = list(self.settings.algorithms)
        # RFC 8725 §3.1: the algorithm list is ours; a token naming another fails.
        if header.get("alg") not in allowed:
            raise AuthenticationError("the id token's algorithm is not allowed")
        key = await self._key(header.get("kid"))
        try:
            claims: dict[str, Any] = jwt.decode(
                id_token,
                key.key,
                algorithms=allowed,
                audience=self.settings.client_id,
                issuer=self.settings.issuer,
                leeway=_LEEWAY,
                options={"require": ["iss", "aud", "exp", "iat", "sub", "nonce"]},
            )
        except jwt.PyJWTError:
            raise AuthenticationError("the id token failed verification") from None
        audiences = (
            claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        )
        if len(audiences) > 1 and claims.get("azp") != self.settings.client_id:
            raise AuthenticationError("the id token is for another client")
        if not hmac.compare_digest(str(claims["nonce"]).encode(), nonce.encode()):
            raise AuthenticationError("the id token's nonce does not match")
        return claims

    def operator_for(self, claims: dict[str, Any]) -> tuple[str | None, str]:
        """
        Return the operator a verified ID token maps to, and the claim value.

        An ``email`` claim counts only with ``email_verified`` true.
        """
        claim = self.settings.claim
        value = claims.get(claim)
        if not isinstance(value, str) or not value:
            return None, ""
        if claim == "email" and claims.get("email_verified") is not True:
            return None, value
        return self.settings.operators.get(value), value
