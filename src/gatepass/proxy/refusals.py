"""
The answers the proxy gives itself, and how they are rendered.

A check that fails raises :class:`RefusedError`, which carries an error of the one
:mod:`gatepass.errors` tree (its class gives the status and the ``error`` code) and
the :class:`~gatepass.proxy.reasons.RefusalReason` the audit record names. The
pipeline renders it with :func:`send_refusal` in the broker's error shape
``{"error", "error_description"}``. No value from the request, the token or the
secret is ever echoed. The other exceptions here are internal signals between the
body streaming and the forwarding code::

    RefusedError          a gatepass error to answer with, and its reason code
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
    MethodNotAllowedError,
    TokenError,
    TokenRevokedError,
)
from gatepass.proxy.asgi import Header, Send
from gatepass.proxy.reasons import RefusalReason
from gatepass.tokens import DPOP_ALGORITHMS

__all__ = [
    "ALGS",
    "AbortedError",
    "BodyTooLargeError",
    "ClientGoneError",
    "ClientTimeoutError",
    "RefusedError",
    "error_body",
    "send_refusal",
    "token_refusal",
]

ALGS = " ".join(sorted(DPOP_ALGORITHMS))


class RefusedError(Exception):
    """
    An answer the proxy gives itself.

    Args:
        reason: why, for the audit record and the metrics.
        error: the error answered; its class gives the status and the code, its
            detail (a fixed text) the description.
        status: the HTTP status when it differs from the error class's own.
        challenge: a ``WWW-Authenticate`` value, for 401 and 403.
        headers: extra response headers.
    """

    def __init__(
        self,
        reason: RefusalReason,
        error: GatepassError,
        *,
        status: int | None = None,
        challenge: str | None = None,
        headers: tuple[Header, ...] = (),
    ) -> None:
        """Keep the reason, the error and the extra headers."""
        super().__init__(reason.value)
        self.reason = reason
        self.error = error
        self.status = error.http_status if status is None else status
        self.challenge = challenge
        if isinstance(error, MethodNotAllowedError):
            # RFC 9110 §15.5.6: a 405 must list the methods that are served.
            allow = ", ".join(sorted(error.allowed)).encode("ascii")
            headers = (*headers, (b"allow", allow))
        self.headers = headers

    @property
    def code(self) -> str:
        """The ``error`` code of the answer."""
        return self.error.code

    @property
    def description(self) -> str:
        """The fixed ``error_description`` of the answer."""
        return self.error.detail


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


def _token_reason(error: GatepassError) -> RefusalReason:
    if isinstance(error, TokenRevokedError):
        return RefusalReason.TOKEN_REVOKED
    if isinstance(error, DPoPProofError):
        return RefusalReason.PROOF_INVALID
    return RefusalReason.TOKEN_INVALID


def token_refusal(
    error: GatepassError, reason: RefusalReason | None = None
) -> RefusedError:
    """
    Map a token or proof error to its answer.

    Args:
        error: what the verifier raised.
        reason: the reason code; by default derived from the error's class.

    Returns:
        A ``401`` (``400`` for other request errors) with a DPoP challenge naming
        the error, and the nonce the agent must use when one is required.
    """
    # RFC 6750 §3 and RFC 9449 §7.1: 401 with a DPoP challenge naming the error.
    challenge = (
        f'DPoP error="{error.code}", error_description="{_quoted(error.detail)}", '
        f'algs="{ALGS}"'
    )
    extra: tuple[Header, ...] = ()
    if isinstance(error, DPoPNonceRequiredError):
        extra = ((b"dpop-nonce", error.nonce.encode("latin-1", "replace")),)
    # The proxy is a resource server: a bad token or proof (and a nonce demand,
    # RFC 9449 §9) is an authentication failure there, a 401.
    status = 401 if isinstance(error, TokenError | DPoPProofError) else 400
    return RefusedError(
        reason or _token_reason(error),
        error,
        status=status,
        challenge=challenge,
        headers=extra,
    )


def error_body(error: GatepassError) -> bytes:
    """
    Return the JSON body of an answer, in the broker's error shape.

    Args:
        error: the error answered; its detail must be a fixed text.

    Returns:
        ``{"error": code, "error_description": detail}`` as bytes.
    """
    return json.dumps({"error": error.code, "error_description": error.detail}).encode()


async def send_refusal(send: Send, refusal: RefusedError) -> int:
    """
    Send a refusal as the broker's JSON error and close the connection.

    Args:
        send: the ASGI send callable.
        refusal: the answer.

    Returns:
        The number of body bytes sent.
    """
    body = error_body(refusal.error)
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
