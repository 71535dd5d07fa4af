"""In-process signals: no revocation is missed between a read and a wait."""

from __future__ import annotations

import anyio
import pytest

from gatepass.broker.signals import Signals

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    """Run on asyncio, as the broker does."""
    return "asyncio"


class TestNextRevocation:
    """Issue 12: the revocation stream's lost wake-up."""

    async def test_issue12_a_revocation_between_read_and_wait_wakes_the_waiter(
        self,
    ) -> None:
        """Revoked while the stream was reading: its wait returns at once."""
        signals = Signals()
        watch = signals.next_revocation()
        signals.revoked()
        # Without ``after`` this would wait the whole minute: the deadline fails it.
        with anyio.fail_after(10):
            await signals.wait_for_revocations(60, after=watch)
        assert watch.is_set()

    async def test_a_later_watch_waits_for_the_next_revocation(self) -> None:
        """An event taken after a revocation is a fresh one: it is not already set."""
        signals = Signals()
        signals.revoked()
        watch = signals.next_revocation()
        assert not watch.is_set()
        signals.revoked()
        assert watch.is_set()
