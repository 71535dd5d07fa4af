"""
The answers the proxy gives itself, and how they are rendered.

A check that fails raises :class:`RefusedError` with a fixed description; the
pipeline renders it with :func:`send_refusal` in the broker's error shape
``{"error", "error_description"}``. No value from the request, the token or the
secret is ever echoed. The other exceptions here are internal signals between the
body streaming and the forwarding code::

    RefusedError          an answer with a status, a code and a fixed description
    BodyTooLargeError     the request body grew past the route's limit (413)
    ClientTimeoutError    the agent stopped sending its body (408)
    ClientGoneError       the agent disconnected mid-body (recorded as 499)
    AbortedError          the answer had started and cannot be completed
"""

from __future__ import annotations

import contextlib
import json

from gatepass.errors import (
    DPoPNonceRequiredError,
    DPoPProofError,
    GatepassError,
    TokenError,
)
from gatepass.proxy.asgi import Header, Send
from gatepass.tokens import DPOP_ALGORITHMS

__all__ = [
    "ALGS",
    "AbortedError",
    "BodyTooLargeError",
    "ClientGoneError",
    "ClientTimeoutError",
    "RefusedError",
    "send_refusal",
    "token_refusal",
]

ALGS = " ".join(sorted(DPOP_ALGORITHMS))


class RefusedError(Exception):
    """An answer the proxy gives itself, with a fixed description."""

    def __init__(
        self,
        status: int,
        code: str,
        description: str,
        *,
        challenge: str | None = None,
        headers: tuple[Header, ...] = (),
    ) -> None:
        """Keep the status, code, fixed description and extra headers."""
        super().__init__(code)
        self.status = status
        self.code = code
        self.description = description
        self.challenge = challenge
        self.headers = headers


class BodyTooLargeError(Exception):
    """The request body grew past the route's limit while streaming."""


class ClientTimeoutError(Exception):
    """The agent stopped sending its body."""


class ClientGoneError(Exception):
    """The agent disconnected before the request body was complete."""


class AbortedError(Exception):
    """The response was started and cannot be completed; drop the connection."""


def _quoted(text: str) -> str:
    # RFC 9110 §5.6.4: a quoted-string may not hold a bare quote or backslash.
    return text.replace("\\", "").replace('"', "'")


def token_refusal(error: GatepassError) -> RefusedError:
    """
    Map a token or proof error to its answer.

    Args:
        error: what the verifier raised.

    Returns:
        A ``401`` (``400`` for other request errors) with a DPoP challenge naming
        the error, and the nonce the agent must use when one is required.
    """
    # RFC 6750 §3 and RFC 9449 §7.1: 401 with a DPoP challenge naming the error.
    code = error.code
    challenge = (
        f'DPoP error="{code}", error_description="{_quoted(error.detail)}", '
        f'algs="{ALGS}"'
    )
    extra: tuple[Header, ...] = ()
    if isinstance(error, DPoPNonceRequiredError):
        extra = ((b"dpop-nonce", error.nonce.encode("latin-1", "replace")),)
    status = 401 if isinstance(error, TokenError | DPoPProofError) else 400
    return RefusedError(status, code, error.detail, challenge=challenge, headers=extra)


async def send_refusal(send: Send, refusal: RefusedError) -> int:
    """
    Send a refusal as the broker's JSON error and close the connection.

    Args:
        send: the ASGI send callable.
        refusal: the answer.

    Returns:
        The number of body bytes sent.
    """
    body = json.dumps(
        {"error": refusal.code, "error_description": refusal.description}
    ).encode()
    headers: list[Header] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
    ]
    if refusal.challenge is not None:
        headers.append(
            (b"www-authenticate", refusal.challenge.encode("latin-1", "replace"))
        )
    headers.extend(refusal.headers)
    # The connection is not reused after a refusal: the rest of a refused
    # request's body is never read, so the next bytes could be mistaken for
    # a request (the desync behind request smuggling).
    headers.append((b"connection", b"close"))
    with contextlib.suppress(OSError, RuntimeError):
        await send(
            {
                "type": "http.response.start",
                "status": refusal.status,
                "headers": headers,
            }
        )
        await send({"type": "http.response.body", "body": body})
    return len(body)
