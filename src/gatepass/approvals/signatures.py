"""
The ``Gatepass-Signature`` header of approver webhooks: how it is made and checked.

The scheme is the one Stripe and Slack use for their own webhooks, so receivers
recognise it::

    Gatepass-Signature: t=1767225600,v1=5257a869e7ec…e108d8bd   (64 hex digits)

``v1`` is the hex HMAC-SHA256 (RFC 2104) under the group's secret of
``"<t>.<raw body>"``: the timestamp is signed with the body, so a captured
delivery cannot be replayed later with a fresh ``t``, and a receiver refuses a
``t`` further than its tolerance from its own clock. A header may carry several
``v1`` values (a sender signing with an old and a new secret while both are in
use); one matching value is enough. Unknown keys are ignored, so a later scheme
(``v2``) can be added beside ``v1`` without breaking receivers.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
from typing import Final

from gatepass.errors import WebhookSignatureError
from gatepass.secret import Secret

__all__ = [
    "DEFAULT_TOLERANCE_SECONDS",
    "SIGNATURE_HEADER",
    "signature_header",
    "verify_signature",
]

SIGNATURE_HEADER: Final = "Gatepass-Signature"
DEFAULT_TOLERANCE_SECONDS: Final = 300
# A real header is ~80 characters per secret; anything much longer is not ours,
# and parsing it would only cost the receiver.
_MAX_HEADER_LENGTH: Final = 2048
_HEX_SHA256 = re.compile(r"[0-9a-f]{64}")
_SECONDS = re.compile(r"[0-9]{1,12}")

SecretValue = Secret | str | bytes


def _key(secret: SecretValue) -> bytes:
    if isinstance(secret, Secret):
        return secret.reveal().encode("utf-8")
    if isinstance(secret, str):
        return secret.encode("utf-8")
    return secret


def _mac(key: bytes, timestamp: int, body: bytes) -> str:
    signed = str(timestamp).encode("ascii") + b"." + body
    return hmac.new(key, signed, hashlib.sha256).hexdigest()


def _seconds(now: dt.datetime | float) -> int:
    if isinstance(now, dt.datetime):
        if now.tzinfo is None:
            msg = "now must be an aware datetime"
            raise ValueError(msg)
        return int(now.timestamp())
    return int(now)


def signature_header(secret: SecretValue, body: bytes, now: dt.datetime | int) -> str:
    """
    Return the ``Gatepass-Signature`` value for ``body`` sent at ``now``.

    Args:
        secret: the group's webhook secret.
        body: the exact bytes of the request body.
        now: the sending time (aware datetime or Unix seconds).

    Returns:
        ``t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``.
    """
    timestamp = _seconds(now)
    return f"t={timestamp},v1={_mac(_key(secret), timestamp, body)}"


def _parse(header: str) -> tuple[int, list[str]]:
    if len(header) > _MAX_HEADER_LENGTH:
        msg = "signature header is too long"
        raise WebhookSignatureError(msg)
    timestamps: list[str] = []
    signatures: list[str] = []
    for item in header.split(","):
        name, equals, value = item.strip().partition("=")
        if not equals or not name:
            msg = "malformed signature header"
            raise WebhookSignatureError(msg)
        if name == "t":
            timestamps.append(value)
        elif name == "v1":
            signatures.append(value)
    if len(timestamps) != 1 or not _SECONDS.fullmatch(timestamps[0]):
        msg = "signature header needs exactly one numeric t"
        raise WebhookSignatureError(msg)
    if not signatures:
        msg = "signature header has no v1 signature"
        raise WebhookSignatureError(msg)
    return int(timestamps[0]), signatures


def verify_signature(
    secret: SecretValue,
    header: str | None,
    body: bytes,
    now: dt.datetime | float,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
) -> int:
    """
    Check a delivery's ``Gatepass-Signature`` header; raise unless it is genuine.

    For receivers: pass the raw body exactly as received (before any JSON parsing)
    and the receiver's own clock.

    Args:
        secret: the secret shared with gatepass (the group's ``secret_file``).
        header: the ``Gatepass-Signature`` header value (None when absent).
        body: the raw request body.
        now: the receiver's current time (aware datetime or Unix seconds).
        tolerance: the largest distance, in seconds, between ``t`` and ``now``, in
            either direction.

    Returns:
        The signed timestamp (Unix seconds).

    Raises:
        WebhookSignatureError: the header is missing or malformed, its timestamp is
            stale or in the future, or no ``v1`` is the HMAC of the body.
    """
    if header is None:
        msg = "signature header is missing"
        raise WebhookSignatureError(msg)
    timestamp, signatures = _parse(header)
    if abs(_seconds(now) - timestamp) > tolerance:
        msg = "signature timestamp is outside the tolerance"
        raise WebhookSignatureError(msg)
    expected = _mac(_key(secret), timestamp, body).encode("ascii")
    matched = False
    for candidate in signatures:
        # Compare every well-formed candidate in constant time (RFC 2104 MACs must
        # never be compared with ==), and keep going after a match so the time
        # taken does not say which one matched.
        well_formed = _HEX_SHA256.fullmatch(candidate) is not None
        value = candidate.encode("ascii") if well_formed else b""
        matched |= well_formed and hmac.compare_digest(expected, value)
    if not matched:
        msg = "signature does not match"
        raise WebhookSignatureError(msg)
    return timestamp
