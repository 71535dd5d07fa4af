"""
Observability: structured JSON logs that never carry secrets, and Prometheus metrics.

Call :func:`configure_logging` once at start-up, take loggers with
:func:`get_logger`, and give each broker a :class:`Metrics` of its own.
"""

from __future__ import annotations

from gatepass.observability.logs import (
    configure_logging,
    drop_secrets,
    forget_redacted_values,
    get_logger,
    redact_values,
)
from gatepass.observability.metrics import REQUEST_BUCKETS, TOKEN_REQUEST_KINDS, Metrics

__all__ = [
    "REQUEST_BUCKETS",
    "TOKEN_REQUEST_KINDS",
    "Metrics",
    "configure_logging",
    "drop_secrets",
    "forget_redacted_values",
    "get_logger",
    "redact_values",
]
