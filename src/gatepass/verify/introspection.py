"""
Revocation status from the broker's RFC 7662 introspection endpoint.

A token that verifies offline may still have been revoked (its task closed, its
lease revoked). :class:`Introspector` asks the broker and caches the answer per
token hash: *active* answers briefly, because a revocation must be seen soon, and
*inactive* answers longer, because a revoked token never becomes active again. If
the broker cannot answer, the check fails closed.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable

import httpx

from gatepass.clock import Clock, SystemClock
from gatepass.errors import GatepassError, TokenError, TokenRevokedError
from gatepass.secret import Secret, token_hash

__all__ = ["Introspector"]

_log = logging.getLogger("gatepass.verify")

ApiToken = Secret | str | Callable[[], Secret | str]


class Introspector:
    """
    Check with the broker whether an access token is still active.

    Args:
        url: the broker's ``introspection_endpoint``.
        api_token: an api token with the ``introspect`` role, or a callable that
            returns it; a callable is called on first use (the token file may not
            exist yet when the resource server starts).
        cache_ttl: how long an *active* answer is trusted; a revocation takes at
            most this long to be seen. ``timedelta(0)`` asks on every request.
        inactive_ttl: how long an *inactive* answer is kept.
        http: the HTTP client; one with a 5 s timeout is created when omitted.
        clock: the time source.
        max_entries: the most answers held in the cache.
    """

    def __init__(
        self,
        url: str,
        api_token: ApiToken,
        *,
        cache_ttl: dt.timedelta = dt.timedelta(seconds=5),
        inactive_ttl: dt.timedelta = dt.timedelta(minutes=15),
        http: httpx.Client | None = None,
        clock: Clock | None = None,
        max_entries: int = 10_000,
    ) -> None:
        """Keep the configuration; nothing is fetched until a token is checked."""
        self._url = url
        self._api_token_source = api_token
        self._api_token: Secret | None = None
        self._cache_ttl = cache_ttl
        self._inactive_ttl = max(inactive_ttl, cache_ttl)
        self._owns_http = http is None
        self._http = http or httpx.Client(timeout=5.0, follow_redirects=False)
        self._clock = clock or SystemClock()
        self._max_entries = max_entries
        self._cache: OrderedDict[str, tuple[bool, dt.datetime]] = OrderedDict()
        self._lock = threading.Lock()
        self._requests = 0

    def __repr__(self) -> str:
        """Show the endpoint, never the api token."""
        return f"Introspector(url={self._url!r})"

    @property
    def request_count(self) -> int:
        """How many times the broker was asked (for metrics and tests)."""
        return self._requests

    def close(self) -> None:
        """Close the HTTP client if this introspector created it."""
        if self._owns_http:
            self._http.close()

    def check(self, token: str) -> None:
        """
        Raise unless the broker says the token is active.

        Args:
            token: the access token as received.

        Raises:
            TokenRevokedError: the broker says the token is not active.
            TokenError: the broker could not be asked (fail closed).
        """
        key = token_hash(token)
        now = self._clock.now()
        active = self._cached(key, now)
        if active is None:
            active = self._ask(token)
            self._remember(key, active=active, now=now)
        if not active:
            raise TokenRevokedError("token is no longer active")

    def _cached(self, key: str, now: dt.datetime) -> bool | None:
        with self._lock:
            found = self._cache.get(key)
            if found is None:
                return None
            active, until = found
            if now >= until:
                del self._cache[key]
                return None
            return active

    def _remember(self, key: str, *, active: bool, now: dt.datetime) -> None:
        ttl = self._cache_ttl if active else self._inactive_ttl
        if ttl <= dt.timedelta(0):
            return
        with self._lock:
            self._cache[key] = (active, now + ttl)
            self._cache.move_to_end(key)
            while len(self._cache) > self._max_entries:
                self._cache.popitem(last=False)

    def _credential(self) -> Secret:
        if self._api_token is None:
            source = self._api_token_source
            value = source() if callable(source) else source
            self._api_token = value if isinstance(value, Secret) else Secret(value)
        return self._api_token

    def _ask(self, token: str) -> bool:
        self._requests += 1
        try:
            credential = self._credential()
        except (GatepassError, OSError, ValueError) as error:
            _log.warning("introspection token unavailable: %s", type(error).__name__)
            raise TokenError("revocation status unavailable") from None
        try:
            response = self._http.post(
                self._url,
                data={"token": token, "token_type_hint": "access_token"},
                headers={
                    "Authorization": f"Bearer {credential.reveal().strip()}",
                    "Accept": "application/json",
                },
            )
            body = response.json() if response.status_code == httpx.codes.OK else None
        except (httpx.HTTPError, ValueError, OSError) as error:
            _log.warning("introspection failed: %s", type(error).__name__)
            raise TokenError("revocation status unavailable") from None
        if not isinstance(body, dict) or not isinstance(body.get("active"), bool):
            if response.status_code in {
                httpx.codes.UNAUTHORIZED,
                httpx.codes.FORBIDDEN,
            }:
                # A rejected api token may have been rotated: read it again next time.
                self._api_token = None
            _log.warning("introspection failed: status %s", response.status_code)
            raise TokenError("revocation status unavailable")
        return bool(body["active"])
