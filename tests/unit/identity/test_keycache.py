"""Tests for an issuer's key cache: refresh, unknown kids, staleness and health."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from gatepass.clock import FrozenClock
from gatepass.errors import FetchError, InvalidGrantError
from gatepass.identity.keycache import IssuerKeys, read_key_file
from gatepass.identity.keysets import parse_key_set

from .jose import IssuerKey, document, jwks

pytestmark = pytest.mark.anyio


class FakeKeyServer:
    """Serves whatever document it holds, or fails, and counts loads."""

    def __init__(self, body: bytes) -> None:
        """Serve ``body``."""
        self.body = body
        self.error: str | None = None
        self.loads = 0

    async def load(self) -> bytes:
        """Return the document or raise the configured failure."""
        self.loads += 1
        if self.error is not None:
            raise FetchError(self.error)
        return self.body


@pytest.fixture
def keys_a_b() -> tuple[IssuerKey, IssuerKey]:
    """Two EC keys (fast to generate)."""
    return IssuerKey.generate("a", "ES256"), IssuerKey.generate("b", "ES256")


def cache(server: FakeKeyServer, clock: FrozenClock) -> IssuerKeys:
    """A cache with one-minute refetch floor and one-hour staleness bound."""
    return IssuerKeys(
        issuer="test",
        load=server.load,
        parse=lambda data: parse_key_set(
            data, algorithms=frozenset({"ES256"}), max_keys=8, spiffe_bundle=False
        ),
        clock=clock,
        refresh_interval=dt.timedelta(minutes=5),
        min_refetch_interval=dt.timedelta(minutes=1),
        max_stale=dt.timedelta(hours=1),
    )


class TestIssuerKeys:
    """Keys load on demand, refresh on schedule and refetch once per minute."""

    async def test_first_use_loads_and_then_caches(
        self, clock: FrozenClock, keys_a_b: tuple[IssuerKey, IssuerKey]
    ) -> None:
        """The first kid loads the set; later kids are served from the cache."""
        server = FakeKeyServer(document(jwks(*keys_a_b)))
        keys = cache(server, clock)
        assert keys.health().state == "pending"
        assert (await keys.key_for("a")).kid == "a"
        assert (await keys.key_for("b")).kid == "b"
        assert server.loads == 1
        health = keys.health()
        assert (health.state, health.key_count) == ("ok", 2)
        assert health.last_success_at == clock.now()

    async def test_unknown_kid_refetches_at_most_once_per_minute(
        self, clock: FrozenClock, keys_a_b: tuple[IssuerKey, IssuerKey]
    ) -> None:
        """Forged kids cannot make the broker hammer the issuer."""
        server = FakeKeyServer(document(jwks(keys_a_b[0])))
        keys = cache(server, clock)
        await keys.key_for("a")
        for _ in range(5):
            with pytest.raises(InvalidGrantError, match="not in the key set of"):
                await keys.key_for("forged")
        assert server.loads == 1
        clock.advance(60)
        with pytest.raises(InvalidGrantError, match="not in the key set"):
            await keys.key_for("forged")
        assert server.loads == 2

    async def test_rotated_in_key_is_found_by_refetch(
        self, clock: FrozenClock, keys_a_b: tuple[IssuerKey, IssuerKey]
    ) -> None:
        """A new kid after the refetch floor loads the rotated set."""
        a, b = keys_a_b
        server = FakeKeyServer(document(jwks(a)))
        keys = cache(server, clock)
        await keys.key_for("a")
        server.body = document(jwks(a, b))
        clock.advance(61)
        assert (await keys.key_for("b")).kid == "b"

    async def test_removed_key_is_gone_after_scheduled_refresh(
        self, clock: FrozenClock, keys_a_b: tuple[IssuerKey, IssuerKey]
    ) -> None:
        """A refresh replaces the set whole: a key the issuer removed is refused."""
        a, b = keys_a_b
        server = FakeKeyServer(document(jwks(a, b)))
        keys = cache(server, clock)
        await keys.key_for("b")
        server.body = document(jwks(a))
        await keys.refresh_if_due()
        assert server.loads == 1
        clock.advance(dt.timedelta(minutes=5))
        assert keys.refresh_due()
        await keys.refresh_if_due()
        with pytest.raises(InvalidGrantError, match="not in the key set"):
            await keys.key_for("b")
        assert server.loads == 2

    async def test_failed_refresh_serves_stale_keys_for_a_bounded_time(
        self, clock: FrozenClock, keys_a_b: tuple[IssuerKey, IssuerKey]
    ) -> None:
        """The last good set is used, and reported stale, until max_stale passes."""
        server = FakeKeyServer(document(jwks(keys_a_b[0])))
        keys = cache(server, clock)
        await keys.key_for("a")
        server.error = "key server answered http 503"
        clock.advance(dt.timedelta(minutes=5))
        await keys.refresh_if_due()
        health = keys.health()
        assert (health.state, health.last_error) == (
            "stale",
            "key server answered http 503",
        )
        assert health.last_success_at is not None
        assert health.usable_until == health.last_success_at + dt.timedelta(hours=1)
        assert (await keys.key_for("a")).kid == "a"
        clock.advance(dt.timedelta(minutes=55))
        with pytest.raises(
            InvalidGrantError, match="keys of issuer test are unavailable"
        ):
            await keys.key_for("a")
        assert keys.health().state == "unavailable"
        assert keys.health().key_count == 0

    async def test_failure_retries_after_the_refetch_floor(
        self, clock: FrozenClock, keys_a_b: tuple[IssuerKey, IssuerKey]
    ) -> None:
        """After a failure the next scheduled attempt is a minute later, then heals."""
        server = FakeKeyServer(document(jwks(keys_a_b[0])))
        server.error = "fetch did not complete within its deadline"
        keys = cache(server, clock)
        await keys.refresh_if_due()
        assert keys.health().state == "unavailable"
        await keys.refresh_if_due()
        assert server.loads == 1
        clock.advance(60)
        server.error = None
        await keys.refresh_if_due()
        assert keys.health().state == "ok"
        assert keys.health().last_error is None

    async def test_unusable_document_keeps_the_last_good_set(
        self, clock: FrozenClock, keys_a_b: tuple[IssuerKey, IssuerKey]
    ) -> None:
        """A document that does not parse is a failed refresh, not an empty set."""
        server = FakeKeyServer(document(jwks(keys_a_b[0])))
        keys = cache(server, clock)
        await keys.key_for("a")
        server.body = b'{"keys": []}'
        clock.advance(dt.timedelta(minutes=5))
        await keys.refresh_if_due()
        assert keys.health().state == "stale"
        assert keys.health().last_error == "key set has no usable signing key"
        assert (await keys.key_for("a")).kid == "a"

    async def test_refresh_hint_shortens_the_interval(self, clock: FrozenClock) -> None:
        """A SPIFFE refresh hint below the interval (above the floor) is honoured."""
        key = IssuerKey.generate("j", "ES256", use="jwt-svid")
        server = FakeKeyServer(document(jwks(key, spiffe_refresh_hint=120)))
        keys = IssuerKeys(
            issuer="spire",
            load=server.load,
            parse=lambda data: parse_key_set(
                data, algorithms=frozenset({"ES256"}), max_keys=8, spiffe_bundle=True
            ),
            clock=clock,
        )
        await keys.refresh_if_due()
        clock.advance(119)
        assert not keys.refresh_due()
        clock.advance(1)
        assert keys.refresh_due()

    async def test_health_is_json_ready(
        self, clock: FrozenClock, keys_a_b: tuple[IssuerKey, IssuerKey]
    ) -> None:
        """The health renders to plain JSON values for /readyz."""
        keys = cache(FakeKeyServer(document(jwks(*keys_a_b))), clock)
        assert keys.health().to_json()["last_success_at"] is None
        await keys.refresh_if_due()
        rendered = keys.health().to_json()
        assert rendered["state"] == "ok"
        assert rendered["last_success_at"] == clock.now().isoformat()


class TestReadKeyFile:
    """Key files are read with the same size cap as fetches."""

    async def test_reads_within_the_cap(self, tmp_path: Path) -> None:
        """A small file is read whole."""
        path = tmp_path / "jwks.json"
        path.write_bytes(b'{"keys": []}')
        assert await read_key_file(path, 1024) == b'{"keys": []}'

    async def test_refuses_a_large_or_missing_file(self, tmp_path: Path) -> None:
        """A file over the cap, or none at all, is a fetch error."""
        path = tmp_path / "big.json"
        path.write_bytes(b"x" * 2048)
        with pytest.raises(FetchError, match="larger than 1024"):
            await read_key_file(path, 1024)
        with pytest.raises(FetchError, match="cannot be read"):
            await read_key_file(tmp_path / "missing.json", 1024)
