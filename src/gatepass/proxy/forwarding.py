"""
Forwarding a checked request upstream and relaying the answer.

Only the allowed headers and the route's secret go upstream. The request body
streams under the route's size limit and timeout; a chunked body is read whole
(bounded) first, so an oversized one never reaches the upstream. The answer is
checked for the secret: an error body is buffered (bounded) and replaced when it
echoes the secret, and a success body that turns out to hold it is cut off.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx

from gatepass.proxy.asgi import Header, Receive, Scope, Send, header_values
from gatepass.proxy.compartments import Compartment
from gatepass.proxy.headers import forward_request_headers, forward_response_headers
from gatepass.proxy.metrics import Exchange
from gatepass.proxy.refusals import (
    AbortedError,
    BodyTooLargeError,
    ClientGoneError,
    ClientTimeoutError,
    RefusedError,
)
from gatepass.proxy.rules import RuleSet
from gatepass.proxy.settings import RouteSettings
from gatepass.verify import ResourceVerifier

__all__ = ["MAX_ERROR_BODY", "Route", "declared_length", "forward"]

_log = logging.getLogger("gatepass.proxy")

# Upstream error bodies are buffered to look for the secret; past this size they
# are not forwarded at all.
MAX_ERROR_BODY = 1_048_576


@dataclass
class Route:
    """A configured route with its runtime parts."""

    settings: RouteSettings
    prefix: bytes
    rules: RuleSet
    verifier: ResourceVerifier
    compartment: Compartment
    allowed_headers: frozenset[str]

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
        raise RefusedError(413, "invalid_request", "request body is too large")
    return length


async def forward(
    http: httpx.AsyncClient,
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
            unreachable or slow, an answer holding the secret).
        AbortedError: after the answer started; the connection must be dropped.
    """
    forwarded = forward_request_headers(headers, allowed=route.allowed_headers)
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
    request = http.build_request(
        exchange.method,
        url,
        headers=forwarded,
        content=content,
        timeout=route.settings.timeout_seconds,
    )
    try:
        response = await http.send(request, stream=True)
    except BodyTooLargeError:
        raise RefusedError(
            413, "invalid_request", "request body is too large"
        ) from None
    except ClientTimeoutError:
        raise RefusedError(
            408, "invalid_request", "request body was not received in time"
        ) from None
    except ClientGoneError:
        exchange.status = 499
        exchange.outcome = "client_closed"
        return
    except httpx.TimeoutException:
        raise RefusedError(
            504, "upstream_timeout", "the upstream did not answer in time"
        ) from None
    except (httpx.HTTPError, OSError):
        raise RefusedError(
            502, "bad_gateway", "the upstream could not be reached"
        ) from None
    try:
        await _relay(response, send, route, exchange)
    finally:
        await response.aclose()


async def _buffered_body(
    receive: Receive, route: Route, exchange: Exchange
) -> bytes | None:
    """Return the whole request body, or None if the client went away."""
    try:
        return b"".join([chunk async for chunk in _body(receive, route, exchange)])
    except BodyTooLargeError:
        raise RefusedError(
            413, "invalid_request", "request body is too large"
        ) from None
    except ClientTimeoutError:
        raise RefusedError(
            408, "invalid_request", "request body was not received in time"
        ) from None
    except ClientGoneError:
        exchange.status = 499
        exchange.outcome = "client_closed"
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


async def _relay(
    response: httpx.Response,
    send: Send,
    route: Route,
    exchange: Exchange,
) -> None:
    compartment = route.compartment
    headers = forward_response_headers(list(response.headers.raw))
    if any(
        compartment.contains_secret(name) or compartment.contains_secret(value)
        for name, value in headers
    ):
        _leak_refused(route)
    status = response.status_code
    if status >= httpx.codes.BAD_REQUEST:
        # Error bodies are where upstreams echo what they were sent: read them
        # whole (bounded) and never pass on one that holds the secret.
        body = await _bounded_body(response)
        if compartment.contains_secret(body):
            _leak_refused(route)
        headers = [
            (name, value) for name, value in headers if name != b"content-length"
        ]
        headers.append((b"content-length", str(len(body)).encode()))
        await send(
            {"type": "http.response.start", "status": status, "headers": headers}
        )
        await send({"type": "http.response.body", "body": body})
        exchange.status = status
        exchange.outcome = "upstream_error"
        exchange.bytes_out = len(body)
        return
    await send({"type": "http.response.start", "status": status, "headers": headers})
    exchange.status = status
    # A success body streams; a window as long as the secret spans chunk
    # boundaries, and a body that turns out to hold the secret is cut off.
    tail = b""
    try:
        async for chunk in response.aiter_raw():
            if compartment.contains_secret(tail + chunk):
                exchange.outcome = "secret_in_response"
                _log.error(
                    "upstream response held the route's secret; cut off",
                    extra={"route": route.settings.name},
                )
                raise AbortedError  # noqa: TRY301 - handled right below
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            exchange.bytes_out += len(chunk)
            tail = (tail + chunk)[-256:]
    except AbortedError:
        # Ending without the final message makes the server drop the connection,
        # so the agent sees a truncated answer rather than a complete one.
        raise
    except httpx.TimeoutException:
        exchange.outcome = "upstream_timeout"
        raise AbortedError from None
    except (httpx.HTTPError, OSError):
        exchange.outcome = "bad_gateway"
        raise AbortedError from None
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _bounded_body(response: httpx.Response) -> bytes:
    parts: list[bytes] = []
    size = 0
    try:
        async for chunk in response.aiter_raw():
            size += len(chunk)
            if size > MAX_ERROR_BODY:
                raise RefusedError(
                    502, "bad_gateway", "the upstream answer could not be relayed"
                )
            parts.append(chunk)
    except httpx.TimeoutException:
        raise RefusedError(
            504, "upstream_timeout", "the upstream did not answer in time"
        ) from None
    except (httpx.HTTPError, OSError):
        raise RefusedError(
            502, "bad_gateway", "the upstream could not be reached"
        ) from None
    return b"".join(parts)


def _leak_refused(route: Route) -> None:
    _log.error(
        "upstream answer held the route's secret; replaced",
        extra={"route": route.settings.name},
    )
    raise RefusedError(502, "bad_gateway", "the upstream answer could not be relayed")
