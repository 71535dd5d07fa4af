"""Tests for token buckets and body limits."""

from __future__ import annotations

import datetime as dt
import threading

import pytest

from gatepass.clock import FrozenClock
from gatepass.errors import ConfigurationError, PayloadTooLargeError
from gatepass.proxy import BodyLimit, TokenBucket
from gatepass.proxy.limits import DEFAULT_MAX_KEYS


class TestTokenBucket:
    """Per-key rate limits with a burst."""

    def test_burst_then_refuse(self, clock: FrozenClock) -> None:
        """A new key may spend its burst at once, then is refused."""
        bucket = TokenBucket(1.0, 3, clock=clock)
        assert [bucket.take("lease") for _ in range(4)] == [True, True, True, False]

    def test_refills_at_the_rate(self, clock: FrozenClock) -> None:
        """Tokens come back at the configured rate, up to the burst."""
        bucket = TokenBucket(2.0, 2, clock=clock)
        assert bucket.take("k")
        assert bucket.take("k")
        assert not bucket.take("k")
        clock.advance(0.5)
        assert bucket.take("k")
        assert not bucket.take("k")
        clock.advance(3600)
        assert [bucket.take("k") for _ in range(3)] == [True, True, False]

    def test_keys_are_independent(self, clock: FrozenClock) -> None:
        """One key's spending does not affect another's."""
        bucket = TokenBucket(1.0, 1, clock=clock)
        assert bucket.take("a")
        assert not bucket.take("a")
        assert bucket.take("b")

    def test_retry_after(self, clock: FrozenClock) -> None:
        """Retry-after is zero with a token left and the refill time without one."""
        bucket = TokenBucket(4.0, 1, clock=clock)
        assert bucket.retry_after("k") == 0.0
        bucket.take("k")
        assert bucket.retry_after("k") == pytest.approx(0.25)
        clock.advance(0.25)
        assert bucket.retry_after("k") == 0.0

    def test_backwards_clock_mints_nothing(self) -> None:
        """A clock stepping backwards neither adds nor removes tokens."""
        clock = FrozenClock(dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC))
        bucket = TokenBucket(1.0, 1, clock=clock)
        assert bucket.take("k")
        clock.advance(-60)
        assert not bucket.take("k")
        clock.advance(60)
        assert not bucket.take("k")
        clock.advance(1)
        assert bucket.take("k")

    def test_memory_is_bounded(self, clock: FrozenClock) -> None:
        """Beyond max_keys the least recently used key is forgotten."""
        bucket = TokenBucket(1.0, 1, clock=clock, max_keys=2)
        assert bucket.take("a")
        assert bucket.take("b")
        assert not bucket.take("a")
        assert bucket.take("c")
        assert len(bucket) == 2
        assert not bucket.take("a")
        assert bucket.take("b")

    def test_default_max_keys(self) -> None:
        """The default bound is 100,000 keys."""
        assert DEFAULT_MAX_KEYS == 100_000

    def test_thread_safe(self, clock: FrozenClock) -> None:
        """Concurrent takes never spend more than the burst."""
        bucket = TokenBucket(1.0, 500, clock=clock)
        granted: list[bool] = []
        lock = threading.Lock()

        def spend() -> None:
            results = [bucket.take("shared") for _ in range(200)]
            with lock:
                granted.extend(results)

        threads = [threading.Thread(target=spend) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert granted.count(True) == 500

    @pytest.mark.parametrize(
        ("rate", "burst", "max_keys", "reason"),
        [
            (0.0, 1, 1, "positive number"),
            (-1.0, 1, 1, "positive number"),
            (float("nan"), 1, 1, "positive number"),
            (float("inf"), 1, 1, "positive number"),
            (1.0, 0, 1, "burst"),
            (1.0, 1, 0, "max_keys"),
        ],
    )
    def test_invalid_limits(
        self, clock: FrozenClock, rate: float, burst: int, max_keys: int, reason: str
    ) -> None:
        """Non-positive or non-finite limits are configuration errors."""
        with pytest.raises(ConfigurationError, match=reason):
            TokenBucket(rate, burst, clock=clock, max_keys=max_keys)

    def test_properties(self, clock: FrozenClock) -> None:
        """The configured rate and burst are readable."""
        bucket = TokenBucket(2.5, 7, clock=clock)
        assert (bucket.rate_per_second, bucket.burst) == (2.5, 7)


class TestBodyLimit:
    """Request bodies are capped by declaration and while streaming."""

    def test_declared_length_over_the_cap(self) -> None:
        """A Content-Length over the cap raises PayloadTooLargeError (413)."""
        limit = BodyLimit(10)
        limit.check_declared([(b"content-length", b"10")])
        with pytest.raises(
            PayloadTooLargeError, match="larger than 10 bytes"
        ) as caught:
            limit.check_declared([(b"Content-Length", b"11")])
        assert caught.value.http_status == 413

    def test_malformed_length_is_left_to_framing(self) -> None:
        """A malformed or absent Content-Length is not this check's business."""
        limit = BodyLimit(10)
        limit.check_declared([(b"content-length", b"1e9")])
        limit.check_declared([(b"content-length", b"")])
        limit.check_declared([])

    def test_meter_counts_streamed_chunks(self) -> None:
        """A streamed body is stopped as soon as it passes the cap."""
        meter = BodyLimit(5).meter()
        meter.feed(b"abc")
        meter.feed(b"de")
        assert meter.received == 5
        with pytest.raises(PayloadTooLargeError):
            meter.feed(b"f")

    def test_zero_forbids_bodies(self) -> None:
        """A cap of zero refuses any byte."""
        limit = BodyLimit(0)
        assert limit.max_bytes == 0
        with pytest.raises(PayloadTooLargeError):
            limit.meter().feed(b"x")

    def test_negative_cap_refused(self) -> None:
        """A negative cap is a configuration error."""
        with pytest.raises(ConfigurationError, match="negative"):
            BodyLimit(-1)
