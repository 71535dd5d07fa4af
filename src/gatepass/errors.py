"""
The exception tree shared by the API, the CLI and the SDK.

One table serves three surfaces: the API renders ``{"error": code,
"error_description": detail}`` with ``http_status``, the CLI exits with ``exit_code``,
and the SDK raises the same class back from the ``error`` code it receives. Codes
follow the OAuth registries where a standard defines them (RFC 6749 §5.2,
RFC 8693 §2.2.2, RFC 9449 §12.2, RFC 9396 §5, RFC 6750 §3.1).

::

    GatepassError                          500 server_error
    ├── InvalidRequestError                400 invalid_request
    │   ├── UnsupportedGrantTypeError      400 unsupported_grant_type
    │   ├── UnsupportedTokenTypeError      400 unsupported_token_type
    │   ├── InvalidAuthorizationDetailsError 400 invalid_authorization_details
    │   ├── InvalidTargetError             400 invalid_target
    │   ├── InvalidScopeError              400 invalid_scope
    │   ├── PayloadTooLargeError           413 invalid_request
    │   ├── RequestTimeoutError            408 invalid_request
    │   ├── HeadersTooLargeError           431 invalid_request
    │   ├── HeaderMismatchError            400 invalid_request (MCP routing headers)
    │   ├── SecurityEventError             400 invalid_request (a refused SET)
    │   └── MethodNotAllowedError          405 method_not_allowed
    ├── InvalidGrantError                  400 invalid_grant
    ├── ApprovalPendingError               400 authorization_pending (RFC 8628 §3.5)
    ├── ApprovalExpiredError               400 expired_token (RFC 8628 §3.5)
    ├── SlowDownError                      400 slow_down (RFC 8628 §3.5: poll slower)
    ├── InvalidClientError                 401 invalid_client
    ├── DPoPProofError                     400 invalid_dpop_proof
    │   ├── DPoPNonceRequiredError         400 use_dpop_nonce
    │   ├── DPoPKeyMismatchError           (the proof's key is not the token's)
    │   └── DPoPReplayError                (the proof was already used)
    ├── AuthenticationError                401 unauthenticated (admin API)
    │   └── TokenError                     401 invalid_token
    │       ├── TokenMissingError          (no token sent: a challenge without a code)
    │       ├── TokenExpiredError
    │       ├── TokenSignatureError
    │       └── TokenRevokedError
    │   └── WebhookSignatureError          401 invalid_signature (a receiver's check)
    ├── AccessDeniedError                  403 access_denied
    │   ├── InsufficientScopeError         403 insufficient_scope
    │   ├── ApprovalDeniedError            403 access_denied (an approver said no)
    │   └── CSRFError                      403 invalid_csrf_token (console forms)
    ├── NotFoundError                      404 not_found
    ├── ConflictError                      409 conflict
    ├── RateLimitedError                   429 rate_limited
    ├── UpstreamError                      502 bad_gateway     (the proxy's upstream)
    │   └── UpstreamTimeoutError           504 upstream_timeout
    ├── EngineError                        502 engine_error
    │   └── EngineUnavailableError         503 engine_unavailable
    ├── FetchError                         502 fetch_failed (issuer keys, bundles)
    ├── AuditIntegrityError                500 audit_integrity
    ├── SealedError                        503 sealed   (exit 69)
    ├── StoreError                         503 store_unavailable
    └── ConfigurationError                 500 misconfigured   (exit 78)

Messages are lower case, have no trailing period, and never contain a secret.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "AccessDeniedError",
    "ApprovalDeniedError",
    "ApprovalExpiredError",
    "ApprovalPendingError",
    "AuditIntegrityError",
    "AuthenticationError",
    "CSRFError",
    "ConfigurationError",
    "ConflictError",
    "DPoPKeyMismatchError",
    "DPoPNonceRequiredError",
    "DPoPProofError",
    "DPoPReplayError",
    "EngineError",
    "EngineUnavailableError",
    "FetchError",
    "GatepassError",
    "HeaderMismatchError",
    "HeadersTooLargeError",
    "InsufficientScopeError",
    "InvalidAuthorizationDetailsError",
    "InvalidClientError",
    "InvalidGrantError",
    "InvalidRequestError",
    "InvalidScopeError",
    "InvalidTargetError",
    "MethodNotAllowedError",
    "NotFoundError",
    "PayloadTooLargeError",
    "RateLimitedError",
    "RequestTimeoutError",
    "SealedError",
    "SecurityEventError",
    "SlowDownError",
    "StoreError",
    "TokenError",
    "TokenExpiredError",
    "TokenMissingError",
    "TokenRevokedError",
    "TokenSignatureError",
    "UnsupportedGrantTypeError",
    "UnsupportedTokenTypeError",
    "UpstreamError",
    "UpstreamTimeoutError",
    "WebhookSignatureError",
    "error_for_code",
]


class GatepassError(Exception):
    """
    Base of every error gatepass raises on purpose.

    Args:
        detail: a human-readable, lower-case description that never carries a secret.
    """

    code: ClassVar[str] = "server_error"
    http_status: ClassVar[int] = 500
    exit_code: ClassVar[int] = 1

    def __init__(self, detail: str = "") -> None:
        """Keep the detail for rendering."""
        super().__init__(detail or self.code)
        self.detail = detail or self.code

    def fields(self) -> dict[str, object]:
        """Return members the error body carries beside ``error`` (none here)."""
        return {}


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


class UpstreamError(GatepassError):
    """The proxy's upstream could not be reached or its answer cannot be relayed."""

    code = "bad_gateway"
    http_status = 502
    exit_code = 69


class UpstreamTimeoutError(UpstreamError):
    """The proxy's upstream did not answer in time."""

    code = "upstream_timeout"
    http_status = 504


class EngineError(GatepassError):
    """A target system refused or failed while minting or revoking a credential."""

    code = "engine_error"
    http_status = 502
    exit_code = 69


class EngineUnavailableError(EngineError):
    """A target system could not be reached (or timed out)."""

    code = "engine_unavailable"
    http_status = 503


class FetchError(GatepassError):
    """
    A document could not be fetched safely from a configured URL.

    Raised by the key fetcher (JWKS, SPIFFE bundles) for a refused address, scheme,
    redirect, size or timeout; the message names the rule, never the document.
    """

    code = "fetch_failed"
    http_status = 502
    exit_code = 69


class AuditIntegrityError(GatepassError):
    """The audit log or its checkpoints were edited, reordered, deleted or truncated."""

    code = "audit_integrity"
    http_status = 500
    exit_code = 65


class SealedError(GatepassError):
    """
    The broker is sealed and issues nothing until an operator reconciles it.

    A broker seals itself when its database is behind its external audit anchor
    journal (restored from an old snapshot, records deleted or rewritten) or when it
    cannot write that journal. Revocation, introspection, reads and the admin API keep
    working; the detail names the reason and the recovery command.
    """

    code = "sealed"
    http_status = 503
    exit_code = 69


class StoreError(GatepassError):
    """The database could not be reached or refused the write."""

    code = "store_unavailable"
    http_status = 503
    exit_code = 69


class ConfigurationError(GatepassError):
    """The configuration is invalid; the broker refuses to start."""

    code = "misconfigured"
    http_status = 500
    exit_code = 78


def _all_subclasses(cls: type[GatepassError]) -> list[type[GatepassError]]:
    found = [cls]
    for sub in cls.__subclasses__():
        found.extend(_all_subclasses(sub))
    return found


def error_for_code(code: str) -> type[GatepassError]:
    """
    Return the most general error class that renders as ``code``.

    Args:
        code: an ``error`` value from a gatepass or OAuth error response.

    Returns:
        The class the SDK raises for that code; ``GatepassError`` for unknown codes.
    """
    for cls in _all_subclasses(GatepassError):
        if cls.code == code:
            return cls
    return GatepassError
