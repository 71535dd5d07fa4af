"""Tests for stateless DPoP nonces."""

from __future__ import annotations

import datetime as dt

import pytest

from gatepass.clock import FrozenClock
from gatepass.errors import ConfigurationError
from gatepass.tokens import NonceService, b64url
from gatepass.tokens.jwk import b64url_decode

SECRET = b"s" * 32


class TestNonceService:
    """Issue and check."""

    def test_fresh_nonce_is_valid(self, clock: FrozenClock) -> None:
        """A nonce just issued is valid."""
        service = NonceService(SECRET, clock=clock)
        assert service.is_valid(service.issue())

    def test_expires(self, clock: FrozenClock) -> None:
        """A nonce is valid for its lifetime and not after."""
        service = NonceService(SECRET, clock=clock, lifetime=dt.timedelta(minutes=5))
        nonce = service.issue()
        clock.advance(dt.timedelta(minutes=5) - dt.timedelta(seconds=1))
        assert service.is_valid(nonce)
        clock.advance(1)
        assert not service.is_valid(nonce)

    def test_from_the_future(self) -> None:
        """A nonce stamped later than now is refused."""
        later = FrozenClock()
        later.advance(10)
        nonce = NonceService(SECRET, clock=later).issue()
        assert not NonceService(SECRET, clock=FrozenClock()).is_valid(nonce)

    def test_other_secret(self, clock: FrozenClock) -> None:
        """A nonce from another secret is refused."""
        nonce = NonceService(b"o" * 32, clock=clock).issue()
        assert not NonceService(SECRET, clock=clock).is_valid(nonce)

    def test_tampered(self, clock: FrozenClock) -> None:
        """Changing the timestamp breaks the MAC."""
        service = NonceService(SECRET, clock=clock)
        raw = bytearray(b64url_decode(service.issue()))
        raw[7] ^= 1
        assert not service.is_valid(b64url(bytes(raw)))

    @pytest.mark.parametrize("nonce", ["", "!!!", "AAAA", "A" * 100, 42, None])
    def test_garbage(self, clock: FrozenClock, nonce: object) -> None:
        """Anything else is simply invalid."""
        assert not NonceService(SECRET, clock=clock).is_valid(nonce)

    def test_short_secret(self, clock: FrozenClock) -> None:
        """Secrets under 32 bytes are refused."""
        with pytest.raises(ConfigurationError, match="at least 32 bytes"):
            NonceService(b"short", clock=clock)
