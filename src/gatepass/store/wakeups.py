"""
Revocations made by one broker process, told to every other one (PostgreSQL).

Each process pushes the revocations it commits to its own revocation streams at
once; without help it would learn of another replica's (or another worker's) only
at its next poll of the store, a second later. On PostgreSQL every broker process
holds two extra connections: one listens on a channel (``LISTEN``), the other
sends ``NOTIFY`` after each of its own revocations, so the others wake their
streams and read the store at once. A notification carries nothing (the store is
what is read, so a forged or lost one can at most cause a read or leave the
one-second poll in charge); a connection that fails is reopened with backoff, and
the poll stays the guarantee meanwhile.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable

import anyio
import psycopg

from gatepass.observability import get_logger

__all__ = ["CHANNEL", "follow_revocations"]

CHANNEL = "gatepass_revocations"

_log = get_logger("gatepass.store.wakeups")


def _libpq_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


async def _listen(url: str, on_notified: Callable[[], None]) -> None:
    async with await psycopg.AsyncConnection.connect(
        _libpq_url(url), autocommit=True
    ) as conn:
        await conn.execute(f"LISTEN {CHANNEL}")
        async for _ in conn.notifies():
            on_notified()


async def _publish(url: str, wait_local: Callable[[], Awaitable[None]]) -> None:
    async with await psycopg.AsyncConnection.connect(
        _libpq_url(url), autocommit=True
    ) as conn:
        while True:
            await wait_local()
            await conn.execute(f"NOTIFY {CHANNEL}")


async def _forever(
    name: str, run: Callable[[], Awaitable[None]], *, retry_max: float
) -> None:
    delay = 0.1
    while True:
        try:
            await run()
        except (psycopg.Error, OSError) as error:
            _log.warning(
                "revocation wakeups down; polling the store meanwhile",
                part=name,
                error=type(error).__name__,
            )
        await anyio.sleep(delay * random.uniform(0.5, 1.0))  # noqa: S311 - jitter
        delay = min(delay * 2, retry_max)


async def follow_revocations(
    url: str,
    *,
    on_notified: Callable[[], None],
    wait_local: Callable[[], Awaitable[None]],
    retry_max: float = 10.0,
) -> None:
    """
    Tell other processes of this process's revocations, and hear of theirs.

    Runs until cancelled.

    Args:
        url: the PostgreSQL URL of the store.
        on_notified: called when any process (this one included) revoked.
        wait_local: returns when this process has revoked something.
        retry_max: the longest pause, in seconds, before reconnecting.
    """
    async with anyio.create_task_group() as group:
        group.start_soon(
            lambda: _forever(
                "listen", lambda: _listen(url, on_notified), retry_max=retry_max
            )
        )
        group.start_soon(
            lambda: _forever(
                "notify", lambda: _publish(url, wait_local), retry_max=retry_max
            )
        )
