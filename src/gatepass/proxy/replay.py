"""
DPoP proofs spent by any of several proxy processes: the shared replay ledger.

One proxy process remembers the proofs it accepted in memory
(:class:`~gatepass.tokens.MemoryReplayCache`). Several processes behind one port
(``gatepass proxy --workers N``, or replicas behind a load balancer) must also
refuse a proof another one accepted (RFC 9449 §11.1), so with ``replay = "redis"``
every proof that passed every other check is claimed in Redis with
``SET key 1 NX PXAT <expiry>`` before the request goes upstream: one atomic
command, so of two processes claiming the same proof exactly one wins. The claim
is asynchronous (the event loop serves other requests while Redis answers), and
a Redis that cannot answer refuses the request (fail closed, ``503
replay_unavailable``): a proof is never let through unclaimed.

The proof's verifier runs unchanged; :class:`DeferredReplayCache` sits in its
replay slot, answers from process memory, and lists the values a verification
would have recorded, for :func:`claim_proofs` to claim afterwards.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from gatepass.single_use import ReplayCache, SingleUse

__all__ = [
    "DeferredReplayCache",
    "ProofLedger",
    "RedisProofLedger",
    "ReplayUnavailableError",
    "claim_proofs",
    "collecting_claims",
]

_PENDING: contextvars.ContextVar[list[SingleUse] | None] = contextvars.ContextVar(
    "gatepass_proxy_pending_claims", default=None
)


class ReplayUnavailableError(Exception):
    """The shared ledger did not answer: whether a proof was spent is unknown."""


class ProofLedger(Protocol):
    """Records spent proof ids where every proxy process sees them."""

    async def claim(self, value: SingleUse) -> bool:
        """
        Record ``value`` unless another process has.

        Returns:
            True when this call recorded it; False for a replay.

        Raises:
            ReplayUnavailableError: the ledger could not answer.
        """
        ...

    async def aclose(self) -> None:
        """Close the connections."""
        ...


class RedisProofLedger:
    """
    The ledger in Redis: one key per proof, expiring with the proof.

    Keys are ``<prefix><sha256 of namespace:value>``, so their length is fixed and
    they hold no key thumbprint in the clear.

    Args:
        url: ``redis://`` or ``rediss://`` URL of the shared Redis.
        prefix: the key prefix (one per deployment sharing a Redis).
        timeout: seconds allowed for one claim.
    """

    def __init__(
        self, url: str, *, prefix: str = "gatepass:proxy:dpop:", timeout: float = 2.0
    ) -> None:
        """Make the client; it connects on first use."""
        self._prefix = prefix
        self._client: aioredis.Redis = aioredis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout
        )

    async def claim(self, value: SingleUse) -> bool:
        """Claim a proof id; see :meth:`ProofLedger.claim`."""
        digest = hashlib.sha256(f"{value.namespace}:{value.value}".encode()).hexdigest()
        expires_ms = int(value.expires_at.timestamp() * 1000)
        try:
            recorded = await self._client.set(
                self._prefix + digest, b"1", nx=True, pxat=expires_ms
            )
        except (RedisError, OSError) as error:
            raise ReplayUnavailableError(type(error).__name__) from None
        return bool(recorded)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()


class DeferredReplayCache:
    """
    The proof verifier's replay cache when a shared ledger is configured.

    A value this process already holds is a replay at once. A new one is kept in
    memory and, inside :func:`collecting_claims`, listed for the ledger.

    Args:
        local: this process's memory of spent values.
    """

    def __init__(self, local: ReplayCache) -> None:
        """Keep the local cache."""
        self._local = local

    def seen(self, namespace: str, value: str, expires_at: dt.datetime) -> bool:
        """Answer from memory; list a new value for the shared claim."""
        if self._local.seen(namespace, value, expires_at):
            return True
        pending = _PENDING.get()
        if pending is not None:
            pending.append(SingleUse(namespace, value, expires_at))
        return False


@dataclass
class _Claims:
    values: list[SingleUse]


@contextmanager
def collecting_claims() -> Iterator[_Claims]:
    """
    Collect the values verifications in this context would record.

    The list is shared with threads started from the context
    (``asyncio.to_thread`` copies the context, not the list).

    Yields:
        The collected values, filled as verification runs.
    """
    values: list[SingleUse] = []
    token = _PENDING.set(values)
    try:
        yield _Claims(values)
    finally:
        _PENDING.reset(token)


async def claim_proofs(
    ledger: ProofLedger, values: list[SingleUse]
) -> SingleUse | None:
    """
    Claim every value in the shared ledger.

    Returns:
        The first value another process had claimed (a replay), or None.

    Raises:
        ReplayUnavailableError: the ledger could not answer.
    """
    for value in values:
        if not await ledger.claim(value):
            return value
    return None
