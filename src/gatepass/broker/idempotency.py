"""
``Idempotency-Key`` for credential requests (draft-ietf-httpapi-idempotency-key-header).

A retried ``POST /v1/credentials`` with the same key and the same request gets the
lease the first one made — never a second role — and never the secret a second
time (it was handed over once). The same key with a different request is a
conflict, as it is while the first request is still in progress.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence

from gatepass.errors import InvalidRequestError

__all__ = ["idempotency_key_from_headers", "key_hash", "request_fingerprint"]

# The draft makes the header a Structured Field string ("..."); many clients send a
# bare token as payment APIs accept. Either way: visible ASCII, bounded.
_KEY = re.compile(r'^"?([\x21\x23-\x7e]{1,255})"?$')


def idempotency_key_from_headers(values: Sequence[str]) -> str | None:
    """
    Return the request's idempotency key, or None when it sent none.

    Args:
        values: every ``Idempotency-Key`` header of the request.

    Raises:
        InvalidRequestError: the header is repeated or malformed.
    """
    if not values:
        return None
    if len(values) > 1:
        raise InvalidRequestError("idempotency-key header is repeated")
    raw = values[0].strip()
    match = _KEY.match(raw)
    if match is None or raw.startswith('"') != raw.endswith('"'):
        raise InvalidRequestError(
            "idempotency-key must be 1 to 255 visible ascii characters"
        )
    return match.group(1)


def key_hash(key: str) -> str:
    """Return the stored form of a key (its SHA-256): clients may put ids in it."""
    return hashlib.sha256(key.encode("ascii")).hexdigest()


def request_fingerprint(
    target: str, actions: Sequence[str], public_key: str | None
) -> str:
    """Return a hash of what a credential request asks for (order of actions aside)."""
    canonical = json.dumps(
        {"target": target, "actions": sorted(actions), "public_key": public_key},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()
