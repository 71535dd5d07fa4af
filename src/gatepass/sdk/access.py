"""
An access token for one target, and how to present it (RFC 9449 §7.1).

The token is sent as ``Authorization: DPoP <token>`` with a fresh ``DPoP`` proof for
each request, signed by the task's key and bound to the token with ``ath``. When
the resource answers ``401 invalid_token`` (revoked, expired, its task closed) the
token is *rejected*: its task drops it from its cache, so the next
``task.access_token(...)`` asks the broker again instead of handing back a token
the resource has already refused.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Generator
from urllib.parse import urlsplit

import httpx

from gatepass.clock import Clock
from gatepass.errors import InvalidRequestError
from gatepass.ids import LeaseId
from gatepass.sdk.challenge import read_challenge
from gatepass.sdk.discovery import within
from gatepass.secret import Secret
from gatepass.tokens import DPoPKey

__all__ = ["AccessToken", "DPoPAuth"]

_UNAUTHORIZED = 401


class AccessToken:
    """
    A DPoP-bound access token for exactly one target.

    Args:
        value: the token.
        expires_at: when it expires.
        scope: the granted actions, space-separated.
        lease_id: the broker's lease of this credential.
        audience: the target URI the token is for (its ``aud``).
        key: the task's DPoP key, which signs the proofs.
        clock: the time source for proofs.
        on_rejected: called once when the token is rejected (the task passes
            the hook that drops it from its cache).
    """

    __slots__ = (
        "_clock",
        "_key",
        "_lock",
        "_nonces",
        "_on_rejected",
        "_rejected",
        "audience",
        "expires_at",
        "lease_id",
        "scope",
        "value",
    )

    def __init__(
        self,
        *,
        value: Secret,
        expires_at: dt.datetime,
        scope: str,
        lease_id: LeaseId,
        audience: str,
        key: DPoPKey,
        clock: Clock,
        on_rejected: Callable[[AccessToken], None] | None = None,
    ) -> None:
        """Keep the token and the key that presents it."""
        self.value = value
        self.expires_at = expires_at
        self.scope = scope
        self.lease_id = lease_id
        self.audience = audience
        self._key = key
        self._clock = clock
        self._nonces: dict[str, str] = {}
        self._lock = threading.Lock()
        self._on_rejected = on_rejected
        self._rejected = False

    def __repr__(self) -> str:
        """Show the lease and scope, never the token."""
        return (
            f"AccessToken(lease_id={self.lease_id!r}, audience={self.audience!r}, "
            f"scope={self.scope!r}, expires_at={self.expires_at.isoformat()!r})"
        )

    @property
    def actions(self) -> frozenset[str]:
        """The granted actions."""
        return frozenset(self.scope.split())

    @property
    def rejected(self) -> bool:
        """Whether a resource answered ``invalid_token`` for this token."""
        return self._rejected

    def reject(self) -> None:
        """
        Mark the token refused by its resource, and drop it from its task's cache.

        RFC 6750 §3.1: ``invalid_token`` means the token is "expired, revoked,
        malformed, or invalid for other reasons"; presenting it again cannot
        succeed, so the task must ask the broker, whose answer (a new token, or
        why not) is what the agent needs to see.
        """
        with self._lock:
            first = not self._rejected
            self._rejected = True
        if first and self._on_rejected is not None:
            self._on_rejected(self)

    def headers(self, method: str, url: str) -> dict[str, str]:
        """
        Return the headers that present this token on one request.

        Args:
            method: the request method, as sent.
            url: the request URL, as sent.

        Returns:
            ``Authorization`` and a fresh ``DPoP`` proof with ``ath``.

        Raises:
            InvalidRequestError: the URL is not at the token's target, so the
                token would be disclosed to another server.
        """
        if not within(url, self.audience):
            raise InvalidRequestError("url is outside the token's target")
        token = self.value.reveal()
        with self._lock:
            nonce = self._nonces.get(_origin(url))
        proof = self._key.proof(
            method.upper(),
            url,
            access_token=token,
            nonce=nonce,
            now=self._clock.now(),
        )
        return {"Authorization": f"DPoP {token}", "DPoP": proof}

    def remember_nonce(self, url: str, nonce: str) -> None:
        """
        Keep a resource server's ``DPoP-Nonce`` for the next proofs to it.

        Args:
            url: a URL of the server that sent it.
            nonce: the nonce.
        """
        with self._lock:
            self._nonces[_origin(url)] = nonce

    def auth(self) -> DPoPAuth:
        """Return an ``httpx.Auth`` that signs every request with this token."""
        return DPoPAuth(self)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


def _refusal_code(status: int, challenge: str | None) -> str | None:
    if status != _UNAUTHORIZED:
        return None
    return read_challenge(challenge).error


class DPoPAuth(httpx.Auth):
    """
    Sign every request with an access token and a fresh DPoP proof.

    A ``use_dpop_nonce`` challenge from the resource server is answered by
    retrying once with its nonce (RFC 9449 §9); an ``invalid_token`` answer
    rejects the token (see :meth:`AccessToken.reject`).

    Args:
        token: the access token.
    """

    requires_request_body = True

    def __init__(self, token: AccessToken) -> None:
        """Keep the token."""
        self._token = token

    def __repr__(self) -> str:
        """Show the lease, never the token."""
        return f"DPoPAuth(lease_id={self._token.lease_id!r})"

    def auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        """Add the headers, and retry once on a nonce challenge."""
        url = str(request.url)
        request.headers.update(self._token.headers(request.method, url))
        response = yield request
        # RFC 9449 §9: a server may send a new nonce with any response.
        nonce = response.headers.get("dpop-nonce")
        code = _refusal_code(
            response.status_code, response.headers.get("www-authenticate")
        )
        if nonce:
            self._token.remember_nonce(url, nonce)
            if code == "use_dpop_nonce":
                request.headers.update(self._token.headers(request.method, url))
                response = yield request
                code = _refusal_code(
                    response.status_code, response.headers.get("www-authenticate")
                )
        if code == "invalid_token":
            self._token.reject()
