"""
Why the proxy refused or cut off a request: a closed set of reason codes.

Every request the proxy does not complete normally carries one
:class:`RefusalReason`, whether the proxy's own checks refused it, the HTTP server
layer refused it before the proxy's code ran, or the upstream's answer could not
be relayed. The code is the ``error`` field of the request's audit record (as the
broker's own denies carry their error code), the ``outcome`` label of
``gatepass_proxy_requests_total`` and the last word of the proxy's log line.
docs/proxy.md lists them with their answers; a new code is added here and there,
never made up at a call site.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["RefusalReason"]


class RefusalReason(StrEnum):
    """The reason codes, grouped by the layer that decides."""

    # The HTTP server layer, before any proxy check (see proxy/server.py).
    MALFORMED_REQUEST = "malformed_request"
    INVALID_METHOD = "invalid_method"
    INVALID_TARGET = "invalid_target"
    HTTP_VERSION = "http_version"
    OVERLOADED = "overloaded"
    # The request itself.
    UPGRADE_REFUSED = "upgrade_refused"
    NO_ROUTE = "no_route"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    HEADERS_TOO_LARGE = "headers_too_large"
    HEADER_REJECTED = "header_rejected"
    PATH_REJECTED = "path_rejected"
    PATH_OUTSIDE_ROUTE = "path_outside_route"
    # The caller and its grant.
    TOKEN_MISSING = "token_missing"  # noqa: S105 - a reason code
    TOKEN_INVALID = "token_invalid"  # noqa: S105 - a reason code
    PROOF_INVALID = "proof_invalid"
    TOKEN_REVOKED = "token_revoked"  # noqa: S105 - a reason code
    REVOCATION_UNAVAILABLE = "revocation_unavailable"
    REPLAY_UNAVAILABLE = "replay_unavailable"
    INSUFFICIENT_SCOPE = "insufficient_scope"
    RATE_LIMITED = "rate_limited"
    # The request body.
    BODY_TOO_LARGE = "body_too_large"
    BODY_TIMEOUT = "body_timeout"
    CLIENT_CLOSED = "client_closed"
    # The upstream and its answer.
    UPSTREAM_UNREACHABLE = "upstream_unreachable"
    UPSTREAM_TIMEOUT = "upstream_timeout"
    UPSTREAM_ABORTED = "upstream_aborted"
    UPSTREAM_ANSWER_TOO_LARGE = "upstream_answer_too_large"
    UPSTREAM_ENCODING = "upstream_encoding"
    SECRET_IN_RESPONSE = "secret_in_response"  # noqa: S105 - a reason code
    SECRET_IN_STREAM = "secret_in_stream"  # noqa: S105 - a reason code
