"""
Time as a dependency: the only module that reads the wall clock.

Code takes a :class:`Clock` so that tests advance a :class:`FrozenClock` instead of
sleeping.
"""

from __future__ import annotations

import datetime as dt
from typing import Protocol

__all__ = ["Clock", "FrozenClock", "SystemClock", "to_epoch"]


class Clock(Protocol):
    """A source of aware UTC time."""

    def now(self) -> dt.datetime:
        """Return the current time, aware, in UTC."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> dt.datetime:
        """Return the current time, aware, in UTC."""
        return dt.datetime.now(dt.UTC)


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
