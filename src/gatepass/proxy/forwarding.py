"""
Forwarding a checked request upstream.

Only the allowed headers and the route's secret go upstream, with the proxy's own
``Accept-Encoding`` (``identity`` unless the route allows codings it can decode).
The request body streams under the route's size limit and timeout; a chunked body
is read whole (bounded) first, so an oversized one never reaches the upstream. The
answer is relayed by :mod:`gatepass.proxy.relay`, which decodes and scans it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

from gatepass.errors import (
    PayloadTooLargeError,
    RequestTimeoutError,
    UpstreamError,
    UpstreamTimeoutError,
)
from gatepass.proxy.asgi import Header, Receive, Scope, Send, header_values
from gatepass.proxy.compartments import Compartment
from gatepass.proxy.encodings import accept_encoding
from gatepass.proxy.headers import forward_request_headers
from gatepass.proxy.metrics import Exchange
from gatepass.proxy.reasons import RefusalReason
from gatepass.proxy.refusals import (
    BodyTooLargeError,
    ClientGoneError,
    ClientTimeoutError,
    RefusedError,
)
from gatepass.proxy.relay import relay
from gatepass.proxy.rules import RuleSet
from gatepass.proxy.settings import RouteSettings
from gatepass.proxy.upstream import (
    UpstreamClient,
    UpstreamDeadlineError,
    UpstreamFailureError,
)
from gatepass.verify import ResourceVerifier

__all__ = ["Route", "declared_length", "forward"]


def _too_large() -> RefusedError:
    return RefusedError(
        RefusalReason.BODY_TOO_LARGE, PayloadTooLargeError("request body is too large")
    )


def _too_slow() -> RefusedError:
    return RefusedError(
        RefusalReason.BODY_TIMEOUT,
        RequestTimeoutError("request body was not received in time"),
    )


@dataclass
class Route:
    """A configured route with its runtime parts."""

    settings: RouteSettings
    prefix: bytes
    rules: RuleSet
    verifier: ResourceVerifier
    compartment: Compartment
    allowed_headers: frozenset[str]
    accept_encoding: bytes

    @classmethod
    def build(cls, settings: RouteSettings, *, verifier: ResourceVerifier) -> Route:
        """
        Load a route's rules and secret.

        Args:
            settings: the route's configuration.
            verifier: the token verifier for the route's audience.

        Returns:
            The route.

        Raises:
            ConfigurationError: the route's secret cannot be loaded.
        """
        return cls(
            settings=settings,
            prefix=settings.prefix.encode("ascii"),
            rules=settings.rule_set(),
            verifier=verifier,
            compartment=Compartment.load(settings.name, settings.auth),
            allowed_headers=frozenset(settings.allowed_headers),
            accept_encoding=accept_encoding(settings.accept_encoding),
        )


def declared_length(headers: list[Header], route: Route) -> int | None:
    """
    Return the request's declared body length.

    Args:
        headers: the request's headers, already checked for framing.
        route: the route that matched.

    Returns:
        The ``Content-Length``, or None when the request declares none.

    Raises:
        RefusedError: the declared body is larger than the route's limit (413).
    """
    values = header_values(headers, b"content-length")
    if not values:
        return None
    # check_request_framing allowed exactly one plain decimal.
    length = int(values[0])
    if length > route.settings.max_body_bytes:
        raise _too_large()
    return length


async def forward(
    http: UpstreamClient,
    scope: Scope,
    receive: Receive,
    send: Send,
    *,
    route: Route,
    relative: str,
    headers: list[Header],
    declared: int | None,
    exchange: Exchange,
) -> None:
    """
    Send the request upstream with the route's secret and relay the answer.

    Args:
        http: the client for upstream calls.
        scope: the request's ASGI scope.
        receive: the ASGI receive callable, for the body.
        send: the ASGI send callable.
        route: the route that matched.
        relative: the normalised path relative to the route's prefix.
        headers: the request's headers, already checked.
        declared: the declared body length, already within the limit.
        exchange: the request's record, updated as it goes.

    Raises:
        RefusedError: before the answer started (body too large or late, upstream
            unreachable or slow, an answer holding the secret or undecodable).
        AbortedError: after the answer started; the connection must be dropped.
    """
    forwarded = forward_request_headers(headers, allowed=route.allowed_headers)
    # The agent's Accept-Encoding was dropped: ask only for what can be scanned.
    forwarded.append((b"accept-encoding", route.accept_encoding))
    raw_query: bytes = scope.get("query_string", b"") or b""
    forwarded, query = route.compartment.apply(forwarded, raw_query.decode("latin-1"))
    chunked = any(
        value.lower() == b"chunked"
        for name, value in headers
        if name.lower() == b"transfer-encoding"
    )
    content: AsyncIterator[bytes] | bytes | None = None
    if declared is not None:
        content = _body(receive, route, exchange)
        forwarded.append((b"content-length", str(declared).encode()))
    elif chunked:
        # No declared length: read the body whole first (it is bounded by the
        # route's limit), so an oversized one never reaches the upstream.
        content = await _buffered_body(receive, route, exchange)
        if content is None:
            return
        forwarded.append((b"content-length", str(len(content)).encode()))
    url = route.settings.upstream_url(relative)
    if query:
        url = f"{url}?{query}"
    try:
        response = await http.send(
            exchange.method,
            url,
            forwarded,
            content,
            timeout=route.settings.timeout_seconds,
        )
    except BodyTooLargeError:
        raise _too_large() from None
    except ClientTimeoutError:
        raise _too_slow() from None
    except ClientGoneError:
        exchange.status = 499
        exchange.reason = RefusalReason.CLIENT_CLOSED
        return
    except UpstreamDeadlineError:
        raise RefusedError(
            RefusalReason.UPSTREAM_TIMEOUT,
            UpstreamTimeoutError("the upstream did not answer in time"),
        ) from None
    except UpstreamFailureError:
        raise RefusedError(
            RefusalReason.UPSTREAM_UNREACHABLE,
            UpstreamError("the upstream could not be reached"),
        ) from None
    try:
        await relay(
            response,
            send,
            compartment=route.compartment,
            route=route.settings.name,
            exchange=exchange,
        )
    finally:
        await response.aclose()


async def _buffered_body(
    receive: Receive, route: Route, exchange: Exchange
) -> bytes | None:
    """Return the whole request body, or None if the client went away."""
    try:
        return b"".join([chunk async for chunk in _body(receive, route, exchange)])
    except BodyTooLargeError:
        raise _too_large() from None
    except ClientTimeoutError:
        raise _too_slow() from None
    except ClientGoneError:
        exchange.status = 499
        exchange.reason = RefusalReason.CLIENT_CLOSED
        return None


async def _body(
    receive: Receive, route: Route, exchange: Exchange
) -> AsyncIterator[bytes]:
    limit = route.settings.max_body_bytes
    timeout = route.settings.timeout_seconds
    while True:
        try:
            message = await asyncio.wait_for(receive(), timeout)
        except TimeoutError:
            raise ClientTimeoutError from None
        if message["type"] == "http.disconnect":
            raise ClientGoneError
        chunk: bytes = message.get("body", b"")
        exchange.bytes_in += len(chunk)
        if exchange.bytes_in > limit:
            raise BodyTooLargeError
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return
