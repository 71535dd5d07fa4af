"""
Single-use values: DPoP proof ids and assertion ids that may be accepted once.

A leaf shared by ``tokens`` (DPoP) and ``identity`` (assertions): the
:class:`ReplayCache` protocol answers "seen before?" within a process, and every
verified proof or assertion carries its :class:`SingleUse` so that the broker can
also record it durably, in the same transaction as what it was accepted for. That
is what makes single use hold across restarts and replicas (RFC 9449 §11.1,
RFC 7523 §3 item 7): a value is spent exactly when its effect commits.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Protocol

__all__ = ["ReplayCache", "SingleUse"]


@dataclass(frozen=True, slots=True)
class SingleUse:
    """
    One value that may be accepted once until it expires.

    Attributes:
        namespace: the kind of value (``"dpop"``, ``"assertion"``).
        value: the value, already qualified by its key or agent.
        expires_at: when the value can no longer be presented (stale or expired),
            so it may be forgotten.
    """

    namespace: str
    value: str
    expires_at: dt.datetime

    @property
    def key(self) -> str:
        """Return the value as stored: ``namespace:value``, at most 300 characters."""
        return f"{self.namespace}:{self.value}"[:300]


class ReplayCache(Protocol):
    """Remembers single-use values until they expire."""

    def seen(self, namespace: str, value: str, expires_at: dt.datetime) -> bool:
        """
        Record a value atomically and tell whether it was already recorded.

        Args:
            namespace: separates kinds of values (``"dpop"``, ``"assertion"``).
            value: the single-use value.
            expires_at: when the value stops mattering (the proof is stale by then).

        Returns:
            True when the value was recorded before and has not expired: a replay
            (or when the cache cannot record it: fail closed).
        """
        ...
