"""
``Idempotency-Key`` for credential requests (draft-ietf-httpapi-idempotency-key-header).

A retried ``POST /v1/credentials`` with the same key and the same request gets the
lease the first one made — never a second role — and never the secret a second
time (it was handed over once). The same key with a different request is a
conflict, as it is while the first request is still in progress.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gatepass.broker.requests import CredentialRequest
from gatepass.clock import to_epoch
from gatepass.errors import ConflictError, InvalidRequestError
from gatepass.models import Lease
from gatepass.store import Connection, Database
from gatepass.store import idempotency as idempotency_rows
from gatepass.store import leases as lease_rows

__all__ = [
    "IN_PROGRESS",
    "IdempotencyClaim",
    "idempotency_key_from_headers",
    "key_hash",
    "replayed_answer",
    "request_fingerprint",
]

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


IN_PROGRESS = "a request with this idempotency key is still in progress"


@dataclass(frozen=True, slots=True)
class IdempotencyClaim:
    """An idempotency key as stored (hashed) and the request it stands for."""

    key_hash: str
    fingerprint: str

    @classmethod
    def of(cls, key: str, request: CredentialRequest, target: str) -> IdempotencyClaim:
        """Return the claim of ``key`` for this request on the resolved target."""
        return cls(
            key_hash=key_hash(key),
            fingerprint=request_fingerprint(
                target, request.actions, request.public_key
            ),
        )


async def replayed_answer(
    database: Database, task_id: str, claim: IdempotencyClaim, now: dt.datetime
) -> tuple[Lease, dict[str, Any]] | None:
    """
    Return the first request's lease and answer for a repeated request.

    Returns:
        None when no request of this task used the key yet.

    Raises:
        ConflictError: the key was used for another request, or its first request
            is still in progress.
    """

    def find(
        conn: Connection,
    ) -> tuple[idempotency_rows.IdempotencyRecord | None, Lease | None]:
        record = idempotency_rows.find_key(conn, task_id, claim.key_hash)
        lease = None if record is None else lease_rows.get_lease(conn, record.lease_id)
        return record, lease

    record, lease = await database.read(find)
    if record is None:
        return None
    if not hmac.compare_digest(record.fingerprint, claim.fingerprint):
        raise ConflictError("idempotency key was used for another request")
    if record.response is None or lease is None:
        raise ConflictError(IN_PROGRESS)
    answer = {
        **record.response,
        "state": lease.state.value,
        "expires_in": max(0, to_epoch(lease.expires_at) - to_epoch(now)),
        "idempotent_replay": True,
    }
    return lease, answer
