"""Tests for the in-memory replay cache."""

from __future__ import annotations

import datetime as dt
import threading

import pytest

from gatepass.clock import FrozenClock
from gatepass.tokens import MemoryReplayCache

MINUTE = dt.timedelta(minutes=1)


class TestMemoryReplayCache:
    """Single-use values."""

    def test_second_sighting_is_a_replay(self, clock: FrozenClock) -> None:
        """The first sighting records; the second reports a replay."""
        cache = MemoryReplayCache(clock)
        expires = clock.now() + MINUTE
        assert cache.seen("dpop", "a", expires) is False
        assert cache.seen("dpop", "a", expires) is True

    def test_namespaces_are_separate(self, clock: FrozenClock) -> None:
        """The same value in two namespaces is two values."""
        cache = MemoryReplayCache(clock)
        expires = clock.now() + MINUTE
        assert cache.seen("dpop", "a", expires) is False
        assert cache.seen("assertion", "a", expires) is False

    def test_expired_entries_are_forgotten(self, clock: FrozenClock) -> None:
        """After expiry the value may be recorded again, and is evicted."""
        cache = MemoryReplayCache(clock)
        cache.seen("dpop", "a", clock.now() + MINUTE)
        clock.advance(MINUTE)
        assert cache.seen("dpop", "a", clock.now() + MINUTE) is False
        cache.seen("dpop", "b", clock.now() + MINUTE)
        clock.advance(MINUTE)
        cache.seen("dpop", "c", clock.now() + MINUTE)
        assert len(cache) == 1

    def test_already_expired_value_is_not_stored(self, clock: FrozenClock) -> None:
        """A value whose expiry has passed is not remembered."""
        cache = MemoryReplayCache(clock)
        assert cache.seen("dpop", "a", clock.now()) is False
        assert len(cache) == 0

    def test_fails_closed_when_full(self, clock: FrozenClock) -> None:
        """A full cache reports every new value as a replay until entries expire."""
        cache = MemoryReplayCache(clock, max_entries=2)
        expires = clock.now() + MINUTE
        assert cache.seen("dpop", "a", expires) is False
        assert cache.seen("dpop", "b", expires) is False
        assert cache.seen("dpop", "c", expires) is True
        clock.advance(MINUTE)
        assert cache.seen("dpop", "c", clock.now() + MINUTE) is False

    def test_max_entries_must_be_positive(self, clock: FrozenClock) -> None:
        """A cache that can hold nothing is refused."""
        with pytest.raises(ValueError, match="positive"):
            MemoryReplayCache(clock, max_entries=0)

    def test_thread_safe(self, clock: FrozenClock) -> None:
        """Concurrent sightings of one value yield exactly one first sighting."""
        cache = MemoryReplayCache(clock)
        expires = clock.now() + MINUTE
        results: list[bool] = []
        barrier = threading.Barrier(8)

        def worker() -> None:
            barrier.wait()
            results.extend(
                cache.seen("dpop", f"v{index}", expires) for index in range(200)
            )

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert results.count(False) == 200
        assert results.count(True) == 7 * 200
