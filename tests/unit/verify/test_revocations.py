"""
The revocation follower as resource servers use it.

Its parsing and reconnection are tested with the proxy's, in
tests/unit/proxy/test_resilience.py.
"""

from __future__ import annotations

import anyio
import httpx

import gatepass.proxy.revocations
from gatepass.clock import FrozenClock
from gatepass.errors import ConfigurationError
from gatepass.verify import RevocationFeed

BROKER = "https://broker.example"


class TestWaitRevoked:
    """Waiting for one token's revocation."""

    def test_already_revoked(self) -> None:
        """A token revoked before the wait returns at once."""
        feed = RevocationFeed(BROKER, "t", clock=FrozenClock())
        feed.revoke("j1")
        assert anyio.run(feed.wait_revoked, "j1", 60.0)

    def test_revocation_wakes_the_waiter(self) -> None:
        """revoke() wakes every waiter of that jti, and only of that jti."""
        feed = RevocationFeed(BROKER, "t", clock=FrozenClock())
        results: dict[str, bool] = {}

        async def main() -> None:
            async def wait(jti: str, seconds: float) -> None:
                results[jti] = await feed.wait_revoked(jti, seconds)

            async with anyio.create_task_group() as group:
                group.start_soon(wait, "j1", 60.0)
                group.start_soon(wait, "j2", 0.0)
                await anyio.wait_all_tasks_blocked()
                feed.revoke("j1")

        anyio.run(main)
        assert results == {"j1": True, "j2": False}
        assert feed._waiters == {}


class TestApiToken:
    """The follower reads its api token when it connects."""

    def test_unreadable_token_is_retried(self) -> None:
        """A token file the broker has not written yet does not stop the follower."""
        attempts: list[str] = []
        tokens = iter(["missing", "present"])

        def token() -> str:
            value = next(tokens)
            attempts.append(value)
            if value == "missing":
                raise ConfigurationError("introspection token file is not readable")
            return value

        async def main() -> None:
            feed: RevocationFeed

            def handle(request: httpx.Request) -> httpx.Response:
                assert request.headers["authorization"] == "Bearer present"
                return httpx.Response(200, content=b": hello\n\n")

            async def pause(_seconds: float) -> None:
                if len(attempts) >= 2:
                    feed._stopping.set()
                await anyio.lowlevel.checkpoint()

            async with httpx.AsyncClient(transport=httpx.MockTransport(handle)) as http:
                feed = RevocationFeed(BROKER, token, http=http, pause=pause)
                with anyio.fail_after(5):
                    await feed._run()

        anyio.run(main)
        assert attempts == ["missing", "present"]

    def test_the_proxy_uses_the_same_follower(self) -> None:
        """gatepass.proxy.revocations is the verifier's follower, not a copy."""
        assert gatepass.proxy.revocations.RevocationFeed is RevocationFeed
