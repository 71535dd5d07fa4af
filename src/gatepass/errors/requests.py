"""
Errors of a request the client must change.

Malformed or unsupported requests, an invalid grant, a waiting approval, a bad
DPoP proof or client.
"""

from __future__ import annotations

from typing import ClassVar

from gatepass.errors.base import GatepassError

__all__ = [
    "ApprovalExpiredError",
    "ApprovalPendingError",
    "DPoPKeyMismatchError",
    "DPoPNonceRequiredError",
    "DPoPProofError",
    "DPoPReplayError",
    "HeaderMismatchError",
    "HeadersTooLargeError",
    "InvalidAuthorizationDetailsError",
    "InvalidClientError",
    "InvalidGrantError",
    "InvalidRequestError",
    "InvalidScopeError",
    "InvalidTargetError",
    "MethodNotAllowedError",
    "PayloadTooLargeError",
    "RequestTimeoutError",
    "SecurityEventError",
    "SlowDownError",
    "UnsupportedGrantTypeError",
    "UnsupportedTokenTypeError",
]


class InvalidRequestError(GatepassError):
    """The request is malformed: a missing or repeated parameter, bad JSON."""

    code = "invalid_request"
    http_status = 400
    exit_code = 64


class UnsupportedGrantTypeError(InvalidRequestError):
    """The grant type is not token exchange."""

    code = "unsupported_grant_type"


class UnsupportedTokenTypeError(InvalidRequestError):
    """The token type given is not one gatepass accepts here (RFC 7009 §2.2.1)."""

    code = "unsupported_token_type"


class InvalidAuthorizationDetailsError(InvalidRequestError):
    """The ``authorization_details`` parameter is malformed (RFC 9396 §5)."""

    code = "invalid_authorization_details"


class InvalidTargetError(InvalidRequestError):
    """The resource is unknown or outside the task (RFC 8693 §2.2.2)."""

    code = "invalid_target"


class InvalidScopeError(InvalidRequestError):
    """The scope is malformed or names an action the target does not offer."""

    code = "invalid_scope"


class PayloadTooLargeError(InvalidRequestError):
    """The request body exceeds the configured limit."""

    http_status = 413


class RequestTimeoutError(InvalidRequestError):
    """The request body stopped arriving before the server's deadline."""

    http_status = 408


class HeadersTooLargeError(InvalidRequestError):
    """The header section has too many fields or bytes (RFC 6585 §5)."""

    http_status = 431


class HeaderMismatchError(InvalidRequestError):
    """
    A request's routing headers contradict its body.

    MCP clients mirror the JSON-RPC method and the tool name in ``Mcp-Method``
    and ``Mcp-Name``; a component that trusts the headers must never decide about
    one tool while the server runs another.
    """


class MethodNotAllowedError(InvalidRequestError):
    """
    The method is not served for this resource (RFC 9110 §15.5.6).

    Args:
        detail: description of the problem.
        allowed: the methods that are served, for the ``Allow`` header (empty when
            rebuilt from an error code alone, as the SDK does).
    """

    code = "method_not_allowed"
    http_status = 405

    def __init__(
        self, detail: str = "", *, allowed: frozenset[str] = frozenset()
    ) -> None:
        """Keep the allowed methods for the ``Allow`` header."""
        super().__init__(detail)
        self.allowed = allowed


class SecurityEventError(InvalidRequestError):
    """
    A Security Event Token pushed to the receiver was refused (RFC 8935 §2.3).

    ``err`` is one of the RFC 8935 §2.4 codes (``invalid_request``, ``invalid_key``,
    ``invalid_issuer``, ``invalid_audience``, ``authentication_failed``,
    ``access_denied``); the receiver answers ``{"err": ..., "description": ...}``.

    Args:
        err: the RFC 8935 error code.
        detail: the description (never the token or a secret).
    """

    ERRORS: ClassVar[frozenset[str]] = frozenset(
        {
            "invalid_request",
            "invalid_key",
            "invalid_issuer",
            "invalid_audience",
            "authentication_failed",
            "access_denied",
        }
    )

    def __init__(self, err: str, detail: str) -> None:
        """Keep the RFC 8935 code beside the description."""
        super().__init__(detail)
        self.err = err if err in self.ERRORS else "invalid_request"

    @property
    def status(self) -> int:
        """The HTTP status of the refusal: 401/403 for push authentication, else 400."""
        if self.err == "authentication_failed":
            return 401
        if self.err == "access_denied":
            return 403
        return 400

    def fields(self) -> dict[str, object]:
        """Return the RFC 8935 code as ``err``."""
        return {"err": self.err}


class InvalidGrantError(GatepassError):
    """The subject token or assertion is invalid, expired, replayed or revoked."""

    code = "invalid_grant"
    http_status = 400
    exit_code = 65


class ApprovalPendingError(GatepassError):
    """
    The request waits for human approval; repeat it with ``approval_id``.

    The RFC 8628 / CIBA polling vocabulary: the body carries the approval's id, how
    often to poll (``interval``) and how long it stays open (``expires_in``).

    Args:
        detail: description of what waits.
        approval_id: the approval to name when repeating the request.
        interval: seconds to wait between polls.
        expires_in: seconds until the approval expires unapproved.
    """

    code = "authorization_pending"
    http_status = 400
    exit_code = 75

    def __init__(
        self, detail: str = "", *, approval_id: str, interval: int, expires_in: int
    ) -> None:
        """Keep the polling fields for the body."""
        super().__init__(detail)
        self.approval_id = approval_id
        self.interval = interval
        self.expires_in = expires_in

    def fields(self) -> dict[str, object]:
        """Return ``approval_id``, ``interval`` and ``expires_in``."""
        return {
            "approval_id": self.approval_id,
            "interval": self.interval,
            "expires_in": self.expires_in,
        }


class ApprovalExpiredError(GatepassError):
    """
    The approval expired before it was approved, or before it was redeemed.

    The SDK also raises it when its own wait (``wait=``) ran out first; the approval
    may then still be approved, and ``still_pending`` says so.

    Args:
        detail: description of what expired.
        approval_id: the approval, when the raiser knows it (the SDK does).
        still_pending: True when only the caller's wait ran out: repeating the same
            request finds the same approval and resumes waiting.
    """

    code = "expired_token"
    http_status = 400
    exit_code = 65

    def __init__(
        self,
        detail: str = "",
        *,
        approval_id: str | None = None,
        still_pending: bool = False,
    ) -> None:
        """Keep the approval id for the caller (not rendered in the body)."""
        super().__init__(detail)
        self.approval_id = approval_id
        self.still_pending = still_pending


class SlowDownError(GatepassError):
    """
    Still pending, and the agent polls too often (RFC 8628 §3.5 ``slow_down``).

    The agent must add 5 seconds to its polling interval, for this and every later
    request of the same approval.
    """

    code = "slow_down"
    http_status = 400
    exit_code = 75


class InvalidClientError(GatepassError):
    """Client authentication failed (RFC 6749 §5.2)."""

    code = "invalid_client"
    http_status = 401
    exit_code = 77


class DPoPProofError(GatepassError):
    """The DPoP proof is missing, malformed, replayed or bound to another key."""

    code = "invalid_dpop_proof"
    http_status = 400
    exit_code = 65


class DPoPKeyMismatchError(DPoPProofError):
    """
    The DPoP proof is signed by a key other than the one the token is bound to.

    Reuse detection reads ``jkt`` (the proof key's thumbprint, never a secret).

    Args:
        detail: description of the problem.
        jkt: the RFC 7638 thumbprint of the proof's key.
    """

    def __init__(self, detail: str, *, jkt: str) -> None:
        """Keep the proof key's thumbprint as evidence."""
        super().__init__(detail)
        self.jkt = jkt


class DPoPReplayError(DPoPProofError):
    """
    The DPoP proof was already used (RFC 9449 §11.1).

    Args:
        detail: description of the problem.
        jkt: the RFC 7638 thumbprint of the proof's key, when known.
    """

    def __init__(self, detail: str, *, jkt: str = "") -> None:
        """Keep the proof key's thumbprint as evidence."""
        super().__init__(detail)
        self.jkt = jkt


class DPoPNonceRequiredError(DPoPProofError):
    """
    The server requires a fresh DPoP nonce (RFC 9449 §8).

    Args:
        detail: description of the problem.
        nonce: the nonce the client must put in its next proof.
    """

    code = "use_dpop_nonce"

    def __init__(self, detail: str = "", *, nonce: str) -> None:
        """Keep the nonce for the ``DPoP-Nonce`` header."""
        super().__init__(detail)
        self.nonce = nonce
