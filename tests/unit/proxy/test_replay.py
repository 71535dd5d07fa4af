"""The shared replay ledger's parts: deferred claims and the configuration."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import anyio
import pytest

from gatepass.errors import ConfigurationError
from gatepass.proxy.replay import (
    DeferredReplayCache,
    ReplayUnavailableError,
    claim_proofs,
    collecting_claims,
)
from gatepass.proxy.settings import parse_proxy_settings
from gatepass.single_use import SingleUse
from gatepass.testing import FrozenClock
from gatepass.tokens import MemoryReplayCache

LATER = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


class FakeLedger:
    """A ledger in a set; ``down`` makes it unable to answer."""

    def __init__(self, *, down: bool = False) -> None:
        """Start empty."""
        self.values: set[str] = set()
        self.down = down

    async def claim(self, value: SingleUse) -> bool:
        """Record unless recorded."""
        if self.down:
            raise ReplayUnavailableError("ConnectionError")
        if value.key in self.values:
            return False
        self.values.add(value.key)
        return True

    async def aclose(self) -> None:
        """Nothing to close."""


def _cache() -> DeferredReplayCache:
    clock = FrozenClock(dt.datetime(2029, 1, 1, tzinfo=dt.UTC))
    return DeferredReplayCache(MemoryReplayCache(clock))


class TestDeferredReplayCache:
    """The verifier's view: memory first, new values listed for the ledger."""

    def test_new_values_are_listed_inside_the_context(self) -> None:
        """A first sight returns False and is collected."""
        cache = _cache()
        with collecting_claims() as claims:
            assert cache.seen("dpop", "k:1", LATER) is False
        assert [v.value for v in claims.values] == ["k:1"]

    def test_a_value_held_in_memory_is_a_replay_and_not_listed(self) -> None:
        """The second sight in one process is refused at once."""
        cache = _cache()
        assert cache.seen("dpop", "k:1", LATER) is False
        with collecting_claims() as claims:
            assert cache.seen("dpop", "k:1", LATER) is True
        assert claims.values == []

    def test_outside_the_context_nothing_is_collected(self) -> None:
        """Without collecting_claims the cache behaves as the memory one."""
        cache = _cache()
        with collecting_claims() as claims:
            pass
        assert cache.seen("dpop", "k:2", LATER) is False
        assert claims.values == []

    def test_values_seen_in_a_worker_thread_are_collected(self) -> None:
        """asyncio.to_thread copies the context; the list is still shared."""
        cache = _cache()

        async def main() -> list[str]:
            with collecting_claims() as claims:
                await asyncio.to_thread(cache.seen, "dpop", "k:3", LATER)
            return [v.value for v in claims.values]

        assert asyncio.run(main()) == ["k:3"]


class TestClaimProofs:
    """Claiming in the ledger: the first claim wins, a dead ledger raises."""

    def test_second_claim_is_the_replay(self) -> None:
        """The same value claimed twice: None, then the value."""
        ledger = FakeLedger()
        value = SingleUse("dpop", "k:1", LATER)

        async def main() -> tuple[Any, Any]:
            return (
                await claim_proofs(ledger, [value]),
                await claim_proofs(ledger, [value]),
            )

        assert anyio.run(main) == (None, value)

    def test_a_ledger_that_cannot_answer_raises(self) -> None:
        """Fail closed: the caller refuses the request."""
        ledger = FakeLedger(down=True)
        with pytest.raises(ReplayUnavailableError):
            anyio.run(claim_proofs, ledger, [SingleUse("dpop", "k", LATER)])


def _document(**proxy: Any) -> dict[str, Any]:
    return {
        "proxy": {
            "public_url": "https://p.example",
            "broker": "https://b.example",
            **proxy,
        },
        "routes": [
            {
                "name": "tickets",
                "prefix": "/tickets/",
                "upstream": "https://api.example",
                "auth": {"method": "bearer", "secret_env": "X"},
                "rules": {"read": ["GET /**"]},
            }
        ],
    }


class TestSettings:
    """``replay`` and ``redis_url`` in ``[proxy]``."""

    def test_memory_is_the_default(self) -> None:
        """One process needs nothing shared."""
        settings = parse_proxy_settings(_document(), source="t")
        assert settings.proxy.replay == "memory"
        assert settings.proxy.upstream_client == "aiohttp"

    def test_redis_without_a_url_is_refused(self) -> None:
        """Replay = "redis" names the missing key."""
        with pytest.raises(ConfigurationError, match="redis_url"):
            parse_proxy_settings(_document(replay="redis"), source="t")

    @pytest.mark.parametrize("url", ["http://r:6379", "postgresql://db/x", "r:6379"])
    def test_a_url_that_is_not_redis_is_refused(self, url: str) -> None:
        """Only redis://, rediss:// and unix:// URLs."""
        with pytest.raises(ConfigurationError, match="redis_url"):
            parse_proxy_settings(_document(replay="redis", redis_url=url), source="t")

    def test_redis_with_a_url_is_accepted(self) -> None:
        """The shared ledger's address."""
        settings = parse_proxy_settings(
            _document(replay="redis", redis_url="redis://127.0.0.1:6379/0"),
            source="t",
        )
        assert settings.proxy.redis_url == "redis://127.0.0.1:6379/0"

    def test_reuse_port_without_the_shared_ledger_is_refused(self) -> None:
        """Processes on one port must share their spent proofs."""
        with pytest.raises(ConfigurationError, match="reuse_port"):
            parse_proxy_settings(_document(reuse_port=True), source="t")

    def test_reuse_port_with_redis_is_accepted(self) -> None:
        """The supported way to run several proxy processes on one port."""
        settings = parse_proxy_settings(
            _document(
                reuse_port=True, replay="redis", redis_url="redis://127.0.0.1:6379"
            ),
            source="t",
        )
        assert settings.proxy.reuse_port
