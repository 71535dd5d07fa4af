"""
Time as a dependency: the only module that reads the wall clock.

Code takes a :class:`Clock` so that tests advance a :class:`FrozenClock` instead of
sleeping.

:class:`SystemClock` reads the wall clock **once**, when it is made, and from then on
advances with the kernel's boot-time clock, which no one can step. A wall clock set
back an hour under a running broker therefore cannot keep a lease alive past its
true expiry, and one set forward cannot expire live work early (issue 7 item 16).
``CLOCK_BOOTTIME`` rather than ``CLOCK_MONOTONIC`` because it also counts time spent
suspended: a laptop or VM that slept must not find its leases younger than they are.
Across restarts the broker anchors its clock to the database's time (see
``broker/bootstrap.py``).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Protocol

__all__ = ["Clock", "FrozenClock", "SystemClock", "sleep", "to_epoch"]


def _elapsed_clock() -> Callable[[], float]:
    boottime = getattr(time, "CLOCK_BOOTTIME", None)
    if boottime is None:  # pragma: no cover - not Linux
        return time.monotonic
    return lambda: time.clock_gettime(boottime)


class Clock(Protocol):
    """A source of aware UTC time."""

    def now(self) -> dt.datetime:
        """Return the current time, aware, in UTC."""
        ...


class SystemClock:
    """
    The real time, immune to steps of the wall clock after it was made.

    Args:
        anchor: the time to start from instead of the wall clock (the database's
            time); None reads the wall clock.
        floor: a time this clock never starts before (the newest time already
            recorded), so a restart with the wall clock set back does not rewind.
        wall: reads the wall clock, in seconds since the epoch (tests inject one).
        elapsed: reads a clock that only moves forward, in seconds (tests inject
            one).
    """

    def __init__(
        self,
        *,
        anchor: dt.datetime | None = None,
        floor: dt.datetime | None = None,
        wall: Callable[[], float] = time.time,
        elapsed: Callable[[], float] | None = None,
    ) -> None:
        """Read the starting point once."""
        self._wall = wall
        self._elapsed = elapsed or _elapsed_clock()
        start = anchor.timestamp() if anchor is not None else wall()
        if floor is not None:
            start = max(start, floor.timestamp())
        self._origin = start
        self._started = self._elapsed()

    def _seconds(self) -> float:
        return self._origin + (self._elapsed() - self._started)

    def now(self) -> dt.datetime:
        """Return the current time, aware, in UTC."""
        return dt.datetime.fromtimestamp(self._seconds(), dt.UTC)

    def wall_offset(self) -> float:
        """
        Return how far the wall clock is ahead of this clock, in seconds.

        Zero while nobody steps the wall clock; a step shows here (and in the
        ``gatepass_clock_offset_seconds`` metric) without changing :meth:`now`.
        """
        return self._wall() - self._seconds()


class FrozenClock:
    """
    A clock that moves only when told to.

    Args:
        start: the initial time; defaults to 2026-01-01T00:00:00Z.
    """

    def __init__(self, start: dt.datetime | None = None) -> None:
        """Start at ``start``."""
        self._now = start or dt.datetime(2026, 1, 1, tzinfo=dt.UTC)

    def now(self) -> dt.datetime:
        """Return the frozen time."""
        return self._now

    def advance(self, delta: dt.timedelta | float) -> None:
        """
        Move time forward.

        Args:
            delta: a timedelta or a number of seconds.
        """
        if not isinstance(delta, dt.timedelta):
            delta = dt.timedelta(seconds=delta)
        self._now += delta


def to_epoch(moment: dt.datetime) -> int:
    """
    Return whole seconds since the epoch, as JWT claims carry them.

    Args:
        moment: an aware datetime.
    """
    return int(moment.timestamp())


def sleep(seconds: float) -> None:
    """
    Pause the calling thread for ``seconds`` of real time.

    The SDK waits between polls for an approval with it. Code that pauses takes it
    as a parameter, so tests pass a fake that advances a :class:`FrozenClock`.

    Args:
        seconds: how long to pause; nothing happens for zero or less.
    """
    if seconds > 0:
        time.sleep(seconds)
