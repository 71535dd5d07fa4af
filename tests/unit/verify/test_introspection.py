"""Tests for Introspector: RFC 7662 status, caching, failing closed."""

from __future__ import annotations

import datetime as dt

import pytest

from gatepass.clock import FrozenClock
from gatepass.errors import ConfigurationError, TokenError, TokenRevokedError
from gatepass.secret import Secret
from gatepass.verify import Introspector

from .conftest import API_TOKEN, INTROSPECT_URL, FakeBroker


class TestIntrospector:
    """Revocation status from the broker."""

    def test_sends_the_api_token_and_the_token(
        self, introspector: Introspector, broker: FakeBroker
    ) -> None:
        """The request is a form POST with the api token as Bearer."""
        introspector.check("tok-1")
        request = broker.requests[0]
        assert request.method == "POST"
        assert str(request.url) == INTROSPECT_URL
        assert request.headers["authorization"] == f"Bearer {API_TOKEN}"
        assert b"token=tok-1" in request.content

    def test_inactive_token_raises_revoked(
        self, introspector: Introspector, broker: FakeBroker
    ) -> None:
        """An inactive answer raises TokenRevokedError."""
        broker.revoked.add("tok-1")
        with pytest.raises(TokenRevokedError):
            introspector.check("tok-1")

    def test_active_answer_is_cached_for_cache_ttl(
        self, introspector: Introspector, broker: FakeBroker, clock: FrozenClock
    ) -> None:
        """An active answer is reused until cache_ttl, then asked again."""
        introspector.check("tok-1")
        introspector.check("tok-1")
        assert introspector.request_count == 1
        broker.revoked.add("tok-1")
        clock.advance(5)
        with pytest.raises(TokenRevokedError):
            introspector.check("tok-1")
        assert introspector.request_count == 2

    def test_inactive_answer_is_cached_longer(
        self, introspector: Introspector, broker: FakeBroker, clock: FrozenClock
    ) -> None:
        """A revoked token never becomes active, so its answer is kept longer."""
        broker.revoked.add("tok-1")
        for _ in range(3):
            with pytest.raises(TokenRevokedError):
                introspector.check("tok-1")
            clock.advance(60)
        assert introspector.request_count == 1

    def test_zero_cache_ttl_asks_every_time(
        self, broker: FakeBroker, clock: FrozenClock
    ) -> None:
        """With cache_ttl 0, every check asks the broker."""
        introspector = Introspector(
            INTROSPECT_URL,
            API_TOKEN,
            cache_ttl=dt.timedelta(0),
            http=broker.client(),
            clock=clock,
        )
        introspector.check("tok-1")
        introspector.check("tok-1")
        assert introspector.request_count == 2

    def test_cache_is_bounded(self, broker: FakeBroker, clock: FrozenClock) -> None:
        """The oldest answers are dropped past max_entries."""
        introspector = Introspector(
            INTROSPECT_URL, API_TOKEN, http=broker.client(), clock=clock, max_entries=2
        )
        for token in ("a", "b", "c", "a"):
            introspector.check(token)
        assert introspector.request_count == 4

    def test_unreachable_broker_fails_closed(
        self, introspector: Introspector, broker: FakeBroker
    ) -> None:
        """A connection error refuses the token."""
        broker.down = True
        with pytest.raises(TokenError, match="revocation status unavailable"):
            introspector.check("tok-1")

    def test_failure_is_not_cached(
        self, introspector: Introspector, broker: FakeBroker
    ) -> None:
        """After an outage, the next check asks again and can pass."""
        broker.down = True
        with pytest.raises(TokenError):
            introspector.check("tok-1")
        broker.down = False
        introspector.check("tok-1")

    def test_error_status_fails_closed(
        self, introspector: Introspector, broker: FakeBroker
    ) -> None:
        """A 5xx answer refuses the token."""
        broker.status = 503
        with pytest.raises(TokenError, match="revocation status unavailable"):
            introspector.check("tok-1")

    def test_rejected_api_token_fails_closed_and_is_reread(
        self, broker: FakeBroker, clock: FrozenClock
    ) -> None:
        """A 401 refuses the token and the api token is read again next time."""
        values = iter(["wrong", API_TOKEN])
        introspector = Introspector(
            INTROSPECT_URL,
            lambda: Secret(next(values)),
            http=broker.client(),
            clock=clock,
        )
        with pytest.raises(TokenError):
            introspector.check("tok-1")
        introspector.check("tok-1")

    def test_unreadable_api_token_fails_closed(
        self, broker: FakeBroker, clock: FrozenClock
    ) -> None:
        """An api token source that fails refuses the token."""

        def missing() -> str:
            raise ConfigurationError("no token file")

        introspector = Introspector(
            INTROSPECT_URL, missing, http=broker.client(), clock=clock
        )
        with pytest.raises(TokenError, match="revocation status unavailable"):
            introspector.check("tok-1")
        assert broker.requests == []

    def test_repr_hides_the_api_token(self, introspector: Introspector) -> None:
        """The api token never shows in repr."""
        assert API_TOKEN not in repr(introspector)
        introspector.close()
