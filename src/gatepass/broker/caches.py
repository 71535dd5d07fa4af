"""
Small in-process caches on the token path.

They hold only what is safe to serve slightly stale: immutable task fields, agent
records for a few seconds, and verified task-token claims until the token expires.
Authoritative state (is the task still open?) is always checked in the write
transaction that records a lease.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import OrderedDict
from typing import Generic, TypeVar

__all__ = ["ExpiringCache"]

K = TypeVar("K")
V = TypeVar("V")


class ExpiringCache(Generic[K, V]):
    """
    A bounded, thread-safe LRU whose entries carry their own expiry.

    Args:
        max_entries: the most entries kept; the least recently used go first.
    """

    def __init__(self, max_entries: int = 10_000) -> None:
        """Start empty."""
        self._entries: OrderedDict[K, tuple[V, dt.datetime]] = OrderedDict()
        self._max = max_entries
        self._lock = threading.Lock()

    def get(self, key: K, now: dt.datetime) -> V | None:
        """Return the live value for ``key``, or None."""
        with self._lock:
            item = self._entries.get(key)
            if item is None:
                return None
            value, expires_at = item
            if expires_at <= now:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return value

    def put(self, key: K, value: V, expires_at: dt.datetime) -> None:
        """Store ``value`` until ``expires_at``."""
        with self._lock:
            self._entries[key] = (value, expires_at)
            self._entries.move_to_end(key)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)

    def discard(self, key: K) -> None:
        """Forget ``key``."""
        with self._lock:
            self._entries.pop(key, None)

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._entries.clear()
