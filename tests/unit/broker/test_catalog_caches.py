"""Target lookup and the token-path caches."""

from __future__ import annotations

import datetime as dt

import pytest

from gatepass.broker import TargetCatalog
from gatepass.broker.caches import ExpiringCache
from gatepass.errors import InvalidTargetError
from gatepass.models import Target

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def target(name: str, uri: str, actions: tuple[str, ...] = ("read",)) -> Target:
    """Build a target."""
    return Target(
        name=name,
        uri=uri,
        kind="http",
        environment="dev",
        tenant="acme",
        risk="low",
        actions=actions,
        max_ttl=dt.timedelta(minutes=5),
    )


class TestTargetCatalog:
    """Targets resolve by URI (slash-insensitive) or by name."""

    def test_resolve(self) -> None:
        """URI with or without trailing slash and the name all resolve."""
        catalog = TargetCatalog([target("tickets", "https://t.example/api/")])
        assert catalog.resolve("https://t.example/api").name == "tickets"
        assert catalog.resolve("https://t.example/api/").name == "tickets"
        assert catalog.resolve("tickets").name == "tickets"

    def test_unknown(self) -> None:
        """An unknown reference is invalid_target."""
        with pytest.raises(InvalidTargetError):
            TargetCatalog([]).resolve("https://nowhere/")

    def test_scopes(self) -> None:
        """Scopes are the sorted union of actions."""
        catalog = TargetCatalog(
            [target("a", "https://a/", ("write", "read")), target("b", "https://b/")]
        )
        assert catalog.scopes() == ["read", "write"]
        assert catalog.get("missing") is None


class TestExpiringCache:
    """Entries expire at their own time and the cache stays bounded."""

    def test_expiry(self) -> None:
        """An entry is served until its expiry and not after."""
        cache: ExpiringCache[str, int] = ExpiringCache()
        cache.put("k", 1, T0 + dt.timedelta(seconds=10))
        assert cache.get("k", T0) == 1
        assert cache.get("k", T0 + dt.timedelta(seconds=10)) is None

    def test_bounded_lru(self) -> None:
        """The least recently used entry is evicted first."""
        cache: ExpiringCache[str, int] = ExpiringCache(max_entries=2)
        later = T0 + dt.timedelta(hours=1)
        cache.put("a", 1, later)
        cache.put("b", 2, later)
        assert cache.get("a", T0) == 1
        cache.put("c", 3, later)
        assert cache.get("b", T0) is None
        assert cache.get("a", T0) == 1
        cache.discard("a")
        assert cache.get("a", T0) is None
        cache.clear()
        assert cache.get("c", T0) is None
