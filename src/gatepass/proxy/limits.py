"""
Rate and size limits: token buckets per lease and per route, and body caps.

Time comes from an injected :class:`~gatepass.clock.Clock`, so tests advance a
``FrozenClock`` instead of sleeping.
"""

from __future__ import annotations

import datetime as dt
import math
import threading
from collections import OrderedDict
from collections.abc import Sequence

from gatepass.clock import Clock
from gatepass.errors import ConfigurationError, PayloadTooLargeError

__all__ = ["DEFAULT_MAX_KEYS", "BodyLimit", "BodyMeter", "TokenBucket"]

DEFAULT_MAX_KEYS = 100_000
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_DECIMAL_DIGITS = frozenset(b"0123456789")


def _seconds(clock: Clock) -> float:
    return (clock.now() - _EPOCH).total_seconds()


class TokenBucket:
    """
    A token bucket per key: ``burst`` requests at once, refilled at a steady rate.

    Memory is bounded: beyond ``max_keys`` keys the least recently used key is
    forgotten. That key has been idle longest, so its bucket is the fullest, and
    forgetting it (a new key starts full) gives away the fewest requests.

    Args:
        rate_per_second: tokens added per second, greater than zero.
        burst: the bucket's capacity, at least one.
        clock: the source of time.
        max_keys: the most keys remembered at once.

    Raises:
        ConfigurationError: a limit is not a positive finite number.
    """

    def __init__(
        self,
        rate_per_second: float,
        burst: int,
        *,
        clock: Clock,
        max_keys: int = DEFAULT_MAX_KEYS,
    ) -> None:
        """Validate the limits and start with no keys."""
        if not math.isfinite(rate_per_second) or rate_per_second <= 0:
            raise ConfigurationError("rate limit must be a positive number per second")
        if burst < 1:
            raise ConfigurationError("rate limit burst must be at least 1")
        if max_keys < 1:
            raise ConfigurationError("rate limit max_keys must be at least 1")
        self._rate = float(rate_per_second)
        self._burst = burst
        self._clock = clock
        self._max_keys = max_keys
        self._lock = threading.Lock()
        # key -> (tokens, seconds of the last update); least recently used first.
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    @property
    def rate_per_second(self) -> float:
        """Tokens added per second."""
        return self._rate

    @property
    def burst(self) -> int:
        """The bucket's capacity."""
        return self._burst

    def __len__(self) -> int:
        """Return how many keys are remembered."""
        return len(self._buckets)

    def _refilled(self, key: str, now: float) -> tuple[float, float]:
        state = self._buckets.get(key)
        if state is None:
            return float(self._burst), now
        tokens, updated = state
        # A clock that steps backwards must not mint tokens: time before the last
        # update is never counted twice.
        elapsed = max(0.0, now - updated)
        return min(float(self._burst), tokens + elapsed * self._rate), max(now, updated)

    def _store(self, key: str, tokens: float, now: float) -> None:
        self._buckets[key] = (tokens, now)
        self._buckets.move_to_end(key)
        while len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)

    def take(self, key: str) -> bool:
        """
        Spend one token of a key's bucket, if it has one.

        Args:
            key: what is limited, such as a token's ``jti`` or a route's name.

        Returns:
            True if the request may proceed; False if it is over the limit.
        """
        with self._lock:
            tokens, updated = self._refilled(key, _seconds(self._clock))
            allowed = tokens >= 1.0
            self._store(key, tokens - 1.0 if allowed else tokens, updated)
            return allowed

    def retry_after(self, key: str) -> float:
        """
        Return the seconds until a key's bucket holds a token again.

        Args:
            key: the limited key.

        Returns:
            Zero if a token is available now, otherwise the wait in seconds (for a
            ``Retry-After`` header).
        """
        with self._lock:
            tokens, _ = self._refilled(key, _seconds(self._clock))
        return max(0.0, (1.0 - tokens) / self._rate)


class BodyMeter:
    """
    Counts the bytes of one body as it streams and stops it at the limit.

    Args:
        max_bytes: the most bytes the body may have.
    """

    __slots__ = ("_max_bytes", "received")

    def __init__(self, max_bytes: int) -> None:
        """Start at zero bytes."""
        self._max_bytes = max_bytes
        self.received = 0

    def feed(self, chunk: bytes) -> None:
        """
        Count a chunk.

        Args:
            chunk: the next part of the body.

        Raises:
            PayloadTooLargeError: the body now exceeds the limit.
        """
        self.received += len(chunk)
        if self.received > self._max_bytes:
            raise PayloadTooLargeError(
                f"request body is larger than {self._max_bytes} bytes"
            )


class BodyLimit:
    """
    A route's request-body cap, checked on the declared length and while streaming.

    Args:
        max_bytes: the most bytes a body may have; zero forbids bodies.

    Raises:
        ConfigurationError: ``max_bytes`` is negative.
    """

    __slots__ = ("_max_bytes",)

    def __init__(self, max_bytes: int) -> None:
        """Keep the cap."""
        if max_bytes < 0:
            raise ConfigurationError("body limit must not be negative")
        self._max_bytes = max_bytes

    @property
    def max_bytes(self) -> int:
        """The most bytes a body may have."""
        return self._max_bytes

    def check_declared(self, headers: Sequence[tuple[bytes, bytes]]) -> None:
        """
        Refuse a request whose Content-Length already exceeds the cap.

        Run :func:`~gatepass.proxy.headers.check_request_framing` first; a
        malformed Content-Length is ignored here and left to it.

        Args:
            headers: the ASGI request headers.

        Raises:
            PayloadTooLargeError: the declared length exceeds the cap.
        """
        for name, value in headers:
            if (
                name.lower() == b"content-length"
                and value
                and all(byte in _DECIMAL_DIGITS for byte in value)
                and int(value) > self._max_bytes
            ):
                raise PayloadTooLargeError(
                    f"request body is larger than {self._max_bytes} bytes"
                )

    def meter(self) -> BodyMeter:
        """Return a fresh meter for one streamed body."""
        return BodyMeter(self._max_bytes)
