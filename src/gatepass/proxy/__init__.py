"""
The credential-injecting proxy: the data path for ``http_proxy`` leases.

This package holds the proxy's pure, synchronous security primitives (path
normalization, scope rules, header hygiene, secret compartments and the response
scanner, limits, reason codes); the ASGI application builds on them. They depend
only on the standard library, pydantic and the gatepass leaves (errors, secret,
clock).
"""

from __future__ import annotations

from gatepass.proxy.compartments import Compartment, UpstreamAuth
from gatepass.proxy.headers import (
    HOP_BY_HOP,
    HeaderRejectedError,
    HeaderSectionTooLargeError,
    check_request_framing,
    forward_request_headers,
    forward_response_headers,
)
from gatepass.proxy.limits import BodyLimit, BodyMeter, TokenBucket
from gatepass.proxy.paths import PathRejectedError, normalize_path
from gatepass.proxy.reasons import RefusalReason
from gatepass.proxy.rules import InvalidRuleError, PathRule, RuleSet
from gatepass.proxy.scanner import SecretScanner

__all__ = [
    "HOP_BY_HOP",
    "BodyLimit",
    "BodyMeter",
    "Compartment",
    "HeaderRejectedError",
    "HeaderSectionTooLargeError",
    "InvalidRuleError",
    "PathRejectedError",
    "PathRule",
    "RefusalReason",
    "RuleSet",
    "SecretScanner",
    "TokenBucket",
    "UpstreamAuth",
    "check_request_framing",
    "forward_request_headers",
    "forward_response_headers",
    "normalize_path",
]
