"""
Relaying the upstream's answer to the agent, decoded and scanned for the secret.

The agent must never receive the route's secret in any spelling (see
:mod:`gatepass.proxy.scanner`), so the scanner reads exactly the bytes the agent
will read: a content coding the upstream applied is undone first
(:mod:`gatepass.proxy.encodings`) and the agent gets the decoded body, without
``Content-Encoding``; a coding the proxy cannot decode is refused.

- Response headers (names and values) holding the secret: the answer is replaced by
  a fixed ``502``.
- Error answers (status 400 and above), where upstreams echo what they were sent:
  the body is read whole (bounded) and replaced by a fixed ``502`` if it holds the
  secret.
- Success answers stream. The bytes that could begin a spelling are held back until
  the next chunk shows they do not, so a secret split across chunks is found before
  any part of it is relayed; the connection is then cut, so the agent sees a
  truncated answer rather than a complete one.
"""

from __future__ import annotations

import logging
from http import HTTPStatus

from gatepass.errors import UpstreamError, UpstreamTimeoutError
from gatepass.proxy.asgi import Send
from gatepass.proxy.compartments import Compartment
from gatepass.proxy.encodings import BodyDecoder, UndecodableBodyError
from gatepass.proxy.headers import forward_response_headers
from gatepass.proxy.metrics import Exchange
from gatepass.proxy.reasons import RefusalReason
from gatepass.proxy.refusals import AbortedError, RefusedError
from gatepass.proxy.scanner import SecretFoundError
from gatepass.proxy.upstream import (
    UpstreamDeadlineError,
    UpstreamFailureError,
    UpstreamResponse,
)

__all__ = ["MAX_ERROR_BODY", "relay"]

_log = logging.getLogger("gatepass.proxy")

# Upstream error bodies are buffered (decoded) to look for the secret; past this
# size they are not forwarded at all.
MAX_ERROR_BODY = 1_048_576
_REWRITTEN = frozenset({b"content-encoding", b"content-length"})


def _unrelayable(reason: RefusalReason) -> RefusedError:
    return RefusedError(
        reason, UpstreamError("the upstream answer could not be relayed")
    )


def _leak_refused(route: str) -> RefusedError:
    _log.error(
        "upstream answer held the route's secret; replaced", extra={"route": route}
    )
    return _unrelayable(RefusalReason.SECRET_IN_RESPONSE)


async def relay(
    response: UpstreamResponse,
    send: Send,
    *,
    compartment: Compartment,
    route: str,
    exchange: Exchange,
) -> None:
    """
    Relay an upstream answer, decoded, after scanning it for the secret.

    Args:
        response: the upstream's streamed response.
        send: the ASGI send callable.
        compartment: the route's secret, to scan for.
        route: the route's name, for the log line.
        exchange: the request's record, updated as it goes.

    Raises:
        RefusedError: before the answer started (the secret in a header or an
            error body, an undecodable coding, an error body too large).
        AbortedError: after the answer started; the connection must be dropped.
    """
    headers = forward_response_headers(list(response.raw_headers))
    if any(
        compartment.contains_secret(name) or compartment.contains_secret(value)
        for name, value in headers
    ):
        raise _leak_refused(route)
    try:
        decoder = BodyDecoder.for_headers(headers)
    except UndecodableBodyError:
        raise _unrelayable(RefusalReason.UPSTREAM_ENCODING) from None
    if decoder.encoded:
        # The agent gets what was decoded and scanned: no coding, a new length.
        headers = [(name, value) for name, value in headers if name not in _REWRITTEN]
    status = response.status
    if status >= HTTPStatus.BAD_REQUEST:
        body = await _bounded_body(response, decoder)
        if compartment.contains_secret(body):
            raise _leak_refused(route)
        headers = [(name, value) for name, value in headers if name not in _REWRITTEN]
        headers.append((b"content-length", str(len(body)).encode()))
        await send(
            {"type": "http.response.start", "status": status, "headers": headers}
        )
        await send({"type": "http.response.body", "body": body})
        exchange.status = status
        exchange.bytes_out = len(body)
        return
    await send({"type": "http.response.start", "status": status, "headers": headers})
    exchange.status = status
    await _stream(
        response,
        send,
        decoder=decoder,
        compartment=compartment,
        route=route,
        exchange=exchange,
    )


async def _stream(
    response: UpstreamResponse,
    send: Send,
    *,
    decoder: BodyDecoder,
    compartment: Compartment,
    route: str,
    exchange: Exchange,
) -> None:
    scan = compartment.stream_scan()
    try:
        async for chunk in response.aiter_raw():
            for piece in decoder.feed(chunk):
                await _send_part(send, scan.feed(piece), exchange)
        for piece in decoder.flush():
            await _send_part(send, scan.feed(piece), exchange)
        await _send_part(send, scan.finish(), exchange)
    except SecretFoundError:
        exchange.reason = RefusalReason.SECRET_IN_STREAM
        _log.error(
            "upstream response held the route's secret; cut off",
            extra={"route": route},
        )
        # Ending without the final message makes the server drop the connection,
        # so the agent sees a truncated answer rather than a complete one.
        raise AbortedError from None
    except UndecodableBodyError:
        exchange.reason = RefusalReason.UPSTREAM_ENCODING
        raise AbortedError from None
    except UpstreamDeadlineError:
        exchange.reason = RefusalReason.UPSTREAM_TIMEOUT
        raise AbortedError from None
    except UpstreamFailureError:
        exchange.reason = RefusalReason.UPSTREAM_ABORTED
        raise AbortedError from None
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _send_part(send: Send, data: bytes, exchange: Exchange) -> None:
    if data:
        await send({"type": "http.response.body", "body": data, "more_body": True})
        exchange.bytes_out += len(data)


async def _bounded_body(response: UpstreamResponse, decoder: BodyDecoder) -> bytes:
    parts: list[bytes] = []
    size = 0

    def keep(piece: bytes) -> None:
        nonlocal size
        size += len(piece)
        if size > MAX_ERROR_BODY:
            raise _unrelayable(RefusalReason.UPSTREAM_ANSWER_TOO_LARGE)
        parts.append(piece)

    try:
        async for chunk in response.aiter_raw():
            for piece in decoder.feed(chunk):
                keep(piece)
        for piece in decoder.flush():
            keep(piece)
    except UndecodableBodyError:
        raise _unrelayable(RefusalReason.UPSTREAM_ENCODING) from None
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
    return b"".join(parts)
