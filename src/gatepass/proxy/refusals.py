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

from gatepass.errors import (
    DPoPProofError,
    GatepassError,
    InsufficientScopeError,
    InvalidRequestError,
    MethodNotAllowedError,
    TokenMissingError,
    TokenRevokedError,
)
from gatepass.proxy.asgi import Header, Send
from gatepass.proxy.reasons import RefusalReason
from gatepass.verify import challenge_headers, error_body, refusal_status

__all__ = [
    "AbortedError",
    "BodyTooLargeError",
    "ClientGoneError",
    "ClientTimeoutError",
    "RefusedError",
    "access_refusal",
    "send_refusal",
]


class RefusedError(Exception):
    """
    An answer the proxy gives itself.

    Args:
        reason: why, for the audit record and the metrics.
        error: the error answered; its class gives the status and the code, its
            detail (a fixed text) the description.
        status: the HTTP status when it differs from the error class's own.
        headers: extra response headers (the ``WWW-Authenticate`` challenge of a
            401 or 403 among them).
    """

    def __init__(
        self,
        reason: RefusalReason,
        error: GatepassError,
        *,
        status: int | None = None,
        headers: tuple[Header, ...] = (),
    ) -> None:
        """Keep the reason, the error and the extra headers."""
        super().__init__(reason.value)
        self.reason = reason
        self.error = error
        self.status = error.http_status if status is None else status
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


def _access_reason(error: GatepassError) -> RefusalReason:
    # The one place where an access error becomes the proxy's reason code.
    if isinstance(error, InsufficientScopeError):
        return RefusalReason.INSUFFICIENT_SCOPE
    if isinstance(error, TokenMissingError):
        return RefusalReason.TOKEN_MISSING
    if isinstance(error, TokenRevokedError):
        return RefusalReason.TOKEN_REVOKED
    if isinstance(error, DPoPProofError):
        return RefusalReason.PROOF_INVALID
    if isinstance(error, InvalidRequestError):
        # More than one Authorization header: an ambiguous request, like two Hosts.
        return RefusalReason.HEADER_REJECTED
    return RefusalReason.TOKEN_INVALID


def access_refusal(
    error: GatepassError, reason: RefusalReason | None = None
) -> RefusedError:
    """
    Map an error of the access checks (steps 6 to 8) to its answer.

    Args:
        error: what the header reader, the verifier or the rules raised.
        reason: the reason code; by default derived from the error's class.

    Returns:
        The answer a resource server gives (see
        :func:`gatepass.verify.refusal_status`): ``401`` for a bad token or proof,
        ``403`` for ``insufficient_scope``, ``400`` otherwise, with the DPoP
        challenge and, when one is required, the nonce the agent must use.
    """
    return RefusedError(
        reason or _access_reason(error),
        error,
        status=refusal_status(error),
        headers=challenge_headers(error),
    )


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
