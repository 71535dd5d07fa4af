"""Revocation wakeups between broker processes over PostgreSQL LISTEN/NOTIFY."""

from __future__ import annotations

import functools

import anyio
import pytest

from gatepass.broker.signals import Signals
from gatepass.store.wakeups import follow_revocations

pytestmark = pytest.mark.postgres


def test_a_revocation_in_one_process_wakes_the_other(postgres_database: str) -> None:
    """Two followers on one database: one's local revocation reaches the other."""
    first, second = Signals(), Signals()
    heard: list[str] = []

    async def main() -> None:
        async with anyio.create_task_group() as group:
            for name, signals in (("first", first), ("second", second)):

                def notified(name: str = name, signals: Signals = signals) -> None:
                    heard.append(name)
                    signals.revoked_elsewhere()

                group.start_soon(
                    functools.partial(
                        follow_revocations,
                        postgres_database,
                        on_notified=notified,
                        wait_local=signals.wait_for_local_revocations,
                    )
                )
            # Both listen before the revocation: wait until a probe is heard.
            with anyio.fail_after(20):
                while "second" not in heard:
                    first.revoked()
                    with anyio.move_on_after(0.2):
                        await second.wait_for_revocations(0.2)
            heard.clear()
            with anyio.fail_after(20):
                first.revoked()
                while "second" not in heard:
                    await second.wait_for_revocations(0.2)
            group.cancel_scope.cancel()

    anyio.run(main)
    assert "second" in heard


def test_signals_tell_local_revocations_apart() -> None:
    """A revocation heard from elsewhere is not told again to the others."""
    signals = Signals()

    async def main() -> tuple[bool, bool]:
        signals.revoked_elsewhere()
        quiet = True
        with anyio.move_on_after(0.05):
            await signals.wait_for_local_revocations()
            quiet = False
        signals.revoked()
        told = False
        with anyio.fail_after(5):
            await signals.wait_for_local_revocations()
            told = True
        return quiet, told

    assert anyio.run(main) == (True, True)
