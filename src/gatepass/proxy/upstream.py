"""
The client the proxy calls upstreams with: one small interface, two libraries.

:class:`AiohttpUpstream` is the default. Measured on the benchmark machine (one
process, 16 requests in flight, a small JSON answer over loopback, uvloop): aiohttp
112-130 µs of CPU per request, httpcore 920 µs, httpx 1,480-1,700 µs (its pool
polls every pooled socket on each request). :class:`HttpxUpstream` stays for tests
that plug an ``httpx.MockTransport`` in, and as ``upstream_client = "httpx"``.

Both send the URL exactly as the proxy spelled it (no re-quoting: the path was
canonicalised and checked against the route), follow no redirect (one could carry
the secret to another origin), read no proxy settings from the environment, and
hand back the body **undecoded**: :mod:`gatepass.proxy.relay` decodes and scans
it. Library errors become :class:`UpstreamDeadlineError` or
:class:`UpstreamFailureError`; errors raised by the request body (too large, too
slow, the agent gone) come out as they were raised.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Protocol

import aiohttp
import httpx
from yarl import URL

__all__ = [
    "AiohttpUpstream",
    "HttpxUpstream",
    "UpstreamClient",
    "UpstreamDeadlineError",
    "UpstreamFailureError",
    "UpstreamResponse",
]

RawHeaders = Sequence[tuple[bytes, bytes]]
Body = AsyncIterator[bytes] | bytes | None


class UpstreamDeadlineError(Exception):
    """The upstream did not connect, answer or send in time."""


class UpstreamFailureError(Exception):
    """The upstream could not be reached, or failed mid-answer."""


class UpstreamResponse(Protocol):
    """An upstream's answer whose body has not been read yet."""

    @property
    def status(self) -> int:
        """Return the status code."""
        ...

    @property
    def raw_headers(self) -> RawHeaders:
        """Return the header fields as sent, in order."""
        ...

    def aiter_raw(self) -> AsyncIterator[bytes]:
        """
        Yield the body as received (content coding kept, framing removed).

        Raises:
            UpstreamDeadlineError: a read stalled past the timeout.
            UpstreamFailureError: the connection failed mid-body.
        """
        ...

    async def aclose(self) -> None:
        """Release the connection (back to the pool when the body was read)."""
        ...


class UpstreamClient(Protocol):
    """Sends one request upstream and returns its streamed answer."""

    async def send(
        self,
        method: str,
        url: str,
        headers: RawHeaders,
        body: Body,
        *,
        timeout: float,  # noqa: ASYNC109 - a per-phase budget, as httpx's
    ) -> UpstreamResponse:
        """
        Send a request; return once the answer's headers arrived.

        Args:
            method: the method.
            url: the full URL, already percent-encoded as it must be sent.
            headers: the header fields to send.
            body: the body (an async iterator streams it), or None.
            timeout: seconds allowed for connecting and for each read and write.

        Raises:
            UpstreamDeadlineError: the upstream did not connect or answer in time.
            UpstreamFailureError: the upstream could not be reached.
        """
        ...

    async def aclose(self) -> None:
        """Close every pooled connection."""
        ...


class _BodyWatch:
    """Remembers what the request body raised, so the library cannot hide it."""

    def __init__(self, body: AsyncIterator[bytes]) -> None:
        self._body = body
        self.error: BaseException | None = None

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._body:
                yield chunk
        except Exception as error:
            self.error = error
            raise


class _AiohttpResponse:
    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    @property
    def status(self) -> int:
        return self._response.status

    @property
    def raw_headers(self) -> RawHeaders:
        return self._response.raw_headers

    async def aiter_raw(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except TimeoutError:
            raise UpstreamDeadlineError from None
        except (aiohttp.ClientError, OSError):
            raise UpstreamFailureError from None

    async def aclose(self) -> None:
        # release() returns a fully read connection to the pool and closes one
        # whose body was not read to the end.
        self._response.release()


class AiohttpUpstream:
    """
    The default upstream client: aiohttp with a pooled connector.

    The session is made on first use, inside the server's event loop.

    Args:
        max_connections: the most connections open at once, over all upstreams.
    """

    def __init__(self, *, max_connections: int = 256) -> None:
        """Keep the limits; nothing is opened yet."""
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self._max_connections, keepalive_timeout=15
        )
        return aiohttp.ClientSession(
            connector=connector,
            # The relay decodes and scans; it must see the body as sent.
            auto_decompress=False,
            trust_env=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            timeout=aiohttp.ClientTimeout(total=None),
        )

    async def send(
        self,
        method: str,
        url: str,
        headers: RawHeaders,
        body: Body,
        *,
        timeout: float,  # noqa: ASYNC109 - a per-phase budget, as httpx's
    ) -> UpstreamResponse:
        """Send a request; see :meth:`UpstreamClient.send`."""
        if self._session is None:
            self._session = self._open()
        watch = _BodyWatch(body) if isinstance(body, AsyncIterator) else None
        data = watch.chunks() if watch is not None else body
        fields = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in headers]
        try:
            response = await self._session.request(
                method,
                URL(url, encoded=True),
                headers=fields,
                data=data,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    connect=timeout,
                    sock_connect=timeout,
                    sock_read=timeout,
                ),
            )
        except (TimeoutError, aiohttp.ClientError, OSError) as error:
            if watch is not None and watch.error is not None:
                raise watch.error from None
            if isinstance(error, TimeoutError):
                raise UpstreamDeadlineError from None
            raise UpstreamFailureError from None
        if watch is not None and watch.error is not None:
            # The upstream answered before the body failed: the body's error wins.
            response.close()
            raise watch.error
        return _AiohttpResponse(response)

    async def aclose(self) -> None:
        """Close the session and its connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None


class _HttpxResponse:
    def __init__(self, response: httpx.Response) -> None:
        self._response = response

    @property
    def status(self) -> int:
        return self._response.status_code

    @property
    def raw_headers(self) -> RawHeaders:
        return self._response.headers.raw

    async def aiter_raw(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.aiter_raw():
                yield chunk
        except httpx.TimeoutException:
            raise UpstreamDeadlineError from None
        except (httpx.HTTPError, OSError):
            raise UpstreamFailureError from None

    async def aclose(self) -> None:
        await self._response.aclose()


class HttpxUpstream:
    """
    The upstream client on httpx (tests pass one with a mock transport).

    Args:
        client: the httpx client; one that follows no redirects and ignores
            proxy environment variables is made when omitted.
    """

    def __init__(self, client: httpx.AsyncClient | None = None) -> None:
        """Keep or make the client."""
        self.client = client or httpx.AsyncClient(
            follow_redirects=False, timeout=30.0, trust_env=False
        )

    async def send(
        self,
        method: str,
        url: str,
        headers: RawHeaders,
        body: Body,
        *,
        timeout: float,  # noqa: ASYNC109 - a per-phase budget, as httpx's
    ) -> UpstreamResponse:
        """Send a request; see :meth:`UpstreamClient.send`."""
        request = self.client.build_request(
            method, url, headers=list(headers), content=body, timeout=timeout
        )
        try:
            response = await self.client.send(request, stream=True)
        except httpx.TimeoutException:
            raise UpstreamDeadlineError from None
        except (httpx.HTTPError, OSError):
            raise UpstreamFailureError from None
        return _HttpxResponse(response)

    async def aclose(self) -> None:
        """Close the client."""
        await self.client.aclose()
