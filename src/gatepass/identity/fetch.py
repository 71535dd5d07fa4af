"""
Fetching small documents (JWK Sets, SPIFFE bundles) from configured URLs, safely.

The rules, each a refusal with its own message (a :class:`~gatepass.errors.FetchError`):

- https only; plain http only when the issuer's configuration allows it, and then
  only to a loopback address (a SPIRE server or test issuer on the same host);
- no user info in the URL, no redirects (a 3xx is an error, never followed: the
  configured URL is the only place keys come from, RFC 8725 §3.10);
- a total deadline over resolving, connecting, TLS and reading (2 s by default), so
  a slow or stalled server cannot hold a verification;
- a size cap (64 KiB by default), checked against ``Content-Length`` and while
  reading, so an endless body costs at most the cap;
- only checked addresses (see :mod:`gatepass.identity.addresses`).

Nothing here ever fetches a URL named by a token: callers pass configured URLs.
The fetcher is usable on its own (for any configured document, e.g. an SSF
transmitter's metadata), with an injectable resolver and no sleeps.
"""

from __future__ import annotations

import datetime as dt
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import anyio
import httpcore
import httpx

from gatepass.errors import ConfigurationError, FetchError
from gatepass.identity.addresses import (
    AddressPolicy,
    GuardedBackend,
    IPNetwork,
    Resolver,
    SystemResolver,
)

__all__ = ["DocumentFetcher", "FetchLimits", "check_fetch_url"]

_ACCEPT = b"application/jwk-set+json, application/json"
_USER_AGENT = b"gatepass-key-fetcher"
_OK = 200


@dataclass(frozen=True, slots=True, kw_only=True)
class FetchLimits:
    """
    Bounds on one fetch.

    Attributes:
        timeout: the total time from the first DNS query to the last byte.
        max_bytes: the largest body accepted.
    """

    timeout: dt.timedelta = dt.timedelta(seconds=2)
    max_bytes: int = 64 * 1024


def check_fetch_url(url: str, *, allow_http_loopback: bool = False) -> None:
    """
    Check that a URL may be fetched at all (before any address is known).

    Args:
        url: the configured URL.
        allow_http_loopback: whether plain http is allowed (to loopback only).

    Raises:
        FetchError: the URL is not https (or allowed http), has user info or a
            fragment, or has no host.
    """
    if not url.isascii():
        raise FetchError("url must be ascii (write international names as punycode)")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise FetchError("url is not valid") from None
    del port
    if parts.scheme == "http" and not allow_http_loopback:
        raise FetchError("url must be https")
    if parts.scheme not in {"https", "http"}:
        raise FetchError("url must be https")
    if not parts.hostname:
        raise FetchError("url has no host")
    if parts.username is not None or parts.password is not None:
        raise FetchError("url must not carry user info")
    if parts.fragment:
        raise FetchError("url must not carry a fragment")


class DocumentFetcher:
    """
    GET small documents from configured URLs under the rules above.

    Args:
        limits: the deadline and size cap.
        resolver: resolves host names; the system resolver by default.
        allowed_networks: non-public networks that may still be reached.
        allow_http_loopback: allow plain http, to loopback addresses only.
        ca_file: a PEM bundle of CAs to trust instead of the public ones (a
            cluster's API server CA).
        backend: the socket layer under the address checks (tests may wrap it).

    Raises:
        ConfigurationError: ``ca_file`` cannot be loaded.
    """

    def __init__(
        self,
        *,
        limits: FetchLimits | None = None,
        resolver: Resolver | None = None,
        allowed_networks: Sequence[IPNetwork] = (),
        allow_http_loopback: bool = False,
        ca_file: Path | None = None,
        backend: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        """Prepare the TLS context once; nothing is fetched yet."""
        self._limits = limits or FetchLimits()
        self._resolver = resolver or SystemResolver()
        self._policy = AddressPolicy(allowed_networks)
        self._allow_http_loopback = allow_http_loopback
        self._backend = backend
        # Certificates are verified against the URL's host name (httpcore sends it
        # as SNI) even though the socket connects to the checked address.
        try:
            self._ssl = (
                ssl.create_default_context(cafile=str(ca_file))
                if ca_file is not None
                else httpx.create_ssl_context()
            )
        except (OSError, ssl.SSLError):
            raise ConfigurationError("ca_file cannot be read as PEM CAs") from None

    async def fetch(self, url: str) -> bytes:
        """
        Fetch a document.

        Args:
            url: a configured URL (never one read from a token).

        Returns:
            The body, at most ``limits.max_bytes`` long.

        Raises:
            FetchError: any rule refused the fetch, the server answered with
                anything but 200, or the deadline passed.
        """
        check_fetch_url(url, allow_http_loopback=self._allow_http_loopback)
        try:
            with anyio.fail_after(self._limits.timeout.total_seconds()):
                return await self._get(url)
        except (TimeoutError, httpcore.TimeoutException):
            # The total deadline (anyio) or one read's (httpcore), whichever is
            # first: both are the same number of seconds.
            raise FetchError("fetch did not complete within its deadline") from None
        except (httpcore.NetworkError, httpcore.ProtocolError, ssl.SSLError, OSError):
            raise FetchError("connection to the key server failed") from None

    async def _get(self, url: str) -> bytes:
        parts = urlsplit(url)
        backend = GuardedBackend(
            self._resolver,
            self._policy,
            loopback_only=parts.scheme == "http",
            inner=self._backend,
        )
        seconds = self._limits.timeout.total_seconds()
        timeouts = {"connect": seconds, "read": seconds, "write": seconds}
        headers = [
            (b"Host", parts.netloc.encode("ascii")),
            (b"Accept", _ACCEPT),
            # The body is measured as sent; a compressed body could expand past it.
            (b"Accept-Encoding", b"identity"),
            (b"User-Agent", _USER_AGENT),
        ]
        # A new pool per fetch: no connection outlives its address check, and
        # fetches are rare (minutes apart).
        async with (
            httpcore.AsyncConnectionPool(
                ssl_context=self._ssl,
                network_backend=backend,
                max_connections=1,
                retries=0,
            ) as pool,
            pool.stream(
                "GET", url, headers=headers, extensions={"timeout": timeouts}
            ) as response,
        ):
            return await self._body(response)

    async def _body(self, response: httpcore.Response) -> bytes:
        status = response.status
        if 300 <= status < 400:
            raise FetchError("redirect refused: keys come only from the configured url")
        if status != _OK:
            raise FetchError(f"key server answered http {status}")
        cap = self._limits.max_bytes
        for name, value in response.headers:
            # h11 has already refused a Content-Length that is not digits
            # (RFC 9110 §8.6), so int() cannot fail here.
            if name.lower() == b"content-length" and int(value) > cap:
                raise FetchError(f"document is larger than {cap} bytes")
        body = bytearray()
        async for chunk in response.aiter_stream():
            body += chunk
            if len(body) > cap:
                raise FetchError(f"document is larger than {cap} bytes")
        return bytes(body)
