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

from gatepass.errors.base import GatepassError
from gatepass.errors.failures import (
    AuditIntegrityError,
    ConfigurationError,
    EngineError,
    EngineUnavailableError,
    FetchError,
    SealedError,
    StoreError,
    UpstreamError,
    UpstreamTimeoutError,
)
from gatepass.errors.refusals import (
    AccessDeniedError,
    ApprovalDeniedError,
    AuthenticationError,
    ConflictError,
    CSRFError,
    InsufficientScopeError,
    NotFoundError,
    RateLimitedError,
    TokenError,
    TokenExpiredError,
    TokenMissingError,
    TokenRevokedError,
    TokenSignatureError,
    WebhookSignatureError,
)
from gatepass.errors.requests import (
    ApprovalExpiredError,
    ApprovalPendingError,
    DPoPKeyMismatchError,
    DPoPNonceRequiredError,
    DPoPProofError,
    DPoPReplayError,
    HeaderMismatchError,
    HeadersTooLargeError,
    InvalidAuthorizationDetailsError,
    InvalidClientError,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    InvalidTargetError,
    MethodNotAllowedError,
    PayloadTooLargeError,
    RequestTimeoutError,
    SecurityEventError,
    SlowDownError,
    UnsupportedGrantTypeError,
    UnsupportedTokenTypeError,
)

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
