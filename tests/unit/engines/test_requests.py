"""The checks every engine makes of an issue request, before the target sees it."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gatepass.engines.requests import check_actions, check_expiry
from gatepass.errors import EngineError, InvalidRequestError

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
MAX_TTL = dt.timedelta(minutes=15)


class TestCheckExpiry:
    """An expiry is aware, in the future and, where enforced, within max ttl."""

    @pytest.mark.parametrize(
        ("expires_at", "problem"),
        [
            (dt.datetime(2026, 1, 1, 0, 5), "timezone-aware"),  # noqa: DTZ001 - the point
            (NOW, "not in the future"),
            (NOW - dt.timedelta(seconds=1), "not in the future"),
            (NOW + MAX_TTL + dt.timedelta(seconds=1), "max ttl"),
        ],
        ids=["naive", "now", "past", "too-far"],
    )
    def test_issue8_bad_expiries_are_engine_errors(
        self, expires_at: dt.datetime, problem: str
    ) -> None:
        """Every engine refuses them with EngineError: a broker bug, not a 4xx."""
        with pytest.raises(EngineError, match=problem) as caught:
            check_expiry(expires_at, now=NOW, max_ttl=MAX_TTL)
        assert not isinstance(caught.value, InvalidRequestError)

    def test_the_max_ttl_itself_is_allowed(self) -> None:
        """An expiry exactly max ttl away is accepted."""
        check_expiry(NOW + MAX_TTL, now=NOW, max_ttl=MAX_TTL)

    def test_without_max_ttl_only_aware_and_future_count(self) -> None:
        """An engine that does not enforce max ttl accepts a far expiry."""
        check_expiry(NOW + dt.timedelta(days=365), now=NOW)

    @given(st.timedeltas(min_value=dt.timedelta(microseconds=1), max_value=MAX_TTL))
    def test_any_expiry_inside_the_window_passes(self, ttl: dt.timedelta) -> None:
        """Every aware expiry in (now, now + max ttl] is accepted, in any zone."""
        zone = dt.timezone(dt.timedelta(hours=5))
        check_expiry((NOW + ttl).astimezone(zone), now=NOW, max_ttl=MAX_TTL)


class TestCheckActions:
    """A request names at least one action, each mapped by the mount."""

    def test_mapped_actions_pass(self) -> None:
        """Actions the mount maps are accepted, repeated or not."""
        check_actions(("read", "write", "read"), {"read": 1, "write": 2})

    @pytest.mark.parametrize(
        ("actions", "problem"),
        [((), "no action requested"), (("read", "drop"), "'drop' has no grants")],
    )
    def test_issue8_missing_or_unmapped_actions_are_engine_errors(
        self, actions: tuple[str, ...], problem: str
    ) -> None:
        """Empty or unmapped actions are refused with EngineError in every engine."""
        with pytest.raises(EngineError, match=problem):
            check_actions(actions, {"read": 1})
