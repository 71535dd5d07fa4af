"""
Refusals of who is asking, and of what cannot be done now.

Unknown or unauthenticated callers, denied actions, missing or conflicting
records, too many requests.
"""

from __future__ import annotations

from gatepass.errors.base import GatepassError

__all__ = [
    "AccessDeniedError",
    "ApprovalDeniedError",
    "AuthenticationError",
    "CSRFError",
    "ConflictError",
    "InsufficientScopeError",
    "NotFoundError",
    "RateLimitedError",
    "TokenError",
    "TokenExpiredError",
    "TokenMissingError",
    "TokenRevokedError",
    "TokenSignatureError",
    "WebhookSignatureError",
]


class AuthenticationError(GatepassError):
    """The caller of the admin API is not authenticated."""

    code = "unauthenticated"
    http_status = 401
    exit_code = 77


class TokenError(AuthenticationError):
    """A token failed verification (RFC 6750 §3.1)."""

    code = "invalid_token"


class TokenMissingError(TokenError):
    """
    The request presented no access token.

    RFC 6750 §3.1: a resource server answers a request without credentials with a
    challenge that names no error code; the JSON body still says ``invalid_token``.
    """


class TokenExpiredError(TokenError):
    """The token's ``exp`` has passed."""


class TokenSignatureError(TokenError):
    """The token's signature does not verify with any trusted key."""


class TokenRevokedError(TokenError):
    """The token was revoked, or its task was closed."""


class WebhookSignatureError(AuthenticationError):
    """
    A webhook's ``Gatepass-Signature`` does not verify.

    Raised by ``gatepass.approvals.webhooks.verify_signature`` in a receiver: the
    header is missing or malformed, its timestamp is outside the tolerance, or no
    ``v1`` value is the HMAC of the body under the receiver's secret.
    """

    code = "invalid_signature"


class AccessDeniedError(GatepassError):
    """Policy denied the request, or the principal is disabled."""

    code = "access_denied"
    http_status = 403
    exit_code = 77


class CSRFError(AccessDeniedError):
    """A console form arrived without its session's CSRF token, or from elsewhere."""

    code = "invalid_csrf_token"


class InsufficientScopeError(AccessDeniedError):
    """
    The token is valid but does not cover this action (RFC 6750 §3.1).

    Args:
        detail: description of the problem.
        scope: the action the request needs, named in the challenge's ``scope``
            so a client can ask for it (RFC 6750 §3); None when unknown.
    """

    code = "insufficient_scope"

    def __init__(self, detail: str = "", *, scope: str | None = None) -> None:
        """Keep the missing scope for the challenge."""
        super().__init__(detail)
        self.scope = scope


class ApprovalDeniedError(AccessDeniedError):
    """
    An approver denied the request (any deny is final).

    Args:
        detail: description of the refusal.
        approval_id: the approval, when the raiser knows it (the SDK does).
    """

    def __init__(self, detail: str = "", *, approval_id: str | None = None) -> None:
        """Keep the approval id for the caller (not rendered in the body)."""
        super().__init__(detail)
        self.approval_id = approval_id


class NotFoundError(GatepassError):
    """The named agent, task, lease or target does not exist."""

    code = "not_found"
    http_status = 404
    exit_code = 66


class ConflictError(GatepassError):
    """The object's state forbids the operation (closed task, revoked lease)."""

    code = "conflict"
    http_status = 409
    exit_code = 65


class RateLimitedError(GatepassError):
    """Too many requests for this lease or route; retry later (RFC 6585 §4)."""

    code = "rate_limited"
    http_status = 429
    exit_code = 75
