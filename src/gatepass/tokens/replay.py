"""Single-use values: a record of the DPoP proof and assertion ids already seen."""

from __future__ import annotations

import datetime as dt
import heapq
import threading

from gatepass.clock import Clock
from gatepass.single_use import ReplayCache

__all__ = ["MemoryReplayCache", "ReplayCache"]


class MemoryReplayCache:
    """
    A thread-safe, in-process :class:`ReplayCache`.

    Expired entries are evicted as new ones arrive. When the cache holds
    ``max_entries`` unexpired entries it **fails closed**: every new value is
    reported as a replay until entries expire, because forgetting a value would let
    it be replayed (RFC 9449 §11.1). Use one shared store when the broker runs as
    several processes.

    Args:
        clock: the time source.
        max_entries: the most values held at once.
    """

    def __init__(self, clock: Clock, max_entries: int = 1_000_000) -> None:
        """Start empty."""
        if max_entries < 1:
            raise ValueError("max_entries must be positive")
        self._clock = clock
        self._max_entries = max_entries
        self._entries: dict[tuple[str, str], float] = {}
        self._expiries: list[tuple[float, tuple[str, str]]] = []
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """Return the number of values held, expired ones included until evicted."""
        return len(self._entries)

    def seen(self, namespace: str, value: str, expires_at: dt.datetime) -> bool:
        """
        Record a value atomically and tell whether it was already recorded.

        Args:
            namespace: separates kinds of values.
            value: the single-use value.
            expires_at: when the value may be forgotten.

        Returns:
            True for a replay, and also when the cache is full (fail closed).
        """
        now = self._clock.now().timestamp()
        expires = expires_at.timestamp()
        key = (namespace, value)
        with self._lock:
            previous = self._entries.get(key)
            if previous is not None and previous > now:
                return True
            self._evict(now)
            if expires <= now:
                # Already stale: it can never be accepted again, nothing to remember.
                return False
            if len(self._entries) >= self._max_entries:
                return True
            self._entries[key] = expires
            heapq.heappush(self._expiries, (expires, key))
            return False

    def _evict(self, now: float) -> None:
        # Each key has exactly one heap entry: a key is re-recorded only after its
        # previous entry expired, and expired entries are evicted before recording.
        expiries = self._expiries
        while expiries and expiries[0][0] <= now:
            _, key = heapq.heappop(expiries)
            del self._entries[key]
