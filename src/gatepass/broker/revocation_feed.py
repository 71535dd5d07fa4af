"""
Revoked access tokens as a stream, for resource servers and the proxy.

The API serves it as Server-Sent Events (``GET /v1/revocations/stream``): the
broker pushes the moment this process revokes something (:class:`Signals`), the
moment another process on the same PostgreSQL does (``LISTEN``/``NOTIFY``,
:mod:`gatepass.store.wakeups`), and polls the store every second whatever
happens, so a lost notification delays an event by a second at most.
"""

from __future__ import annotations

import datetime as dt

import anyio

from gatepass.broker.context import BrokerContext
from gatepass.models import Lease
from gatepass.store import leases as lease_rows
from gatepass.store.wakeups import follow_revocations

__all__ = ["RevocationFeed"]

_PAGE = 500


class RevocationFeed:
    """
    Read revocations in order.

    Args:
        context: the broker's collaborators.
    """

    def __init__(self, context: BrokerContext) -> None:
        """Keep the context."""
        self._context = context

    def now(self) -> dt.datetime:
        """Return the broker's time (where a stream without ``since`` starts)."""
        return self._context.clock.now()

    async def follow_other_processes(self) -> None:
        """
        Exchange revocation wakeups with the other processes (PostgreSQL only).

        Runs until cancelled; returns at once on SQLite (one process).
        """
        database = self._context.database
        if database.dialect != "postgresql":
            return
        signals = self._context.signals
        await follow_revocations(
            database.url,
            on_notified=signals.revoked_elsewhere,
            wait_local=signals.wait_for_local_revocations,
        )

    async def revoked_since(self, cursor: dt.datetime) -> list[Lease]:
        """Return access-token leases revoked after ``cursor``, oldest first."""
        return await self._context.database.read(
            lambda conn: lease_rows.revoked_since(conn, cursor, limit=_PAGE)
        )

    def watch(self) -> anyio.Event:
        """
        Start watching for revocations: call it before :meth:`revoked_since`.

        Returns:
            the event to pass to :meth:`wait`, so nothing revoked between the read
            and the wait is missed.
        """
        return self._context.signals.next_revocation()

    async def wait(
        self,
        timeout: float,  # noqa: ASYNC109
        watch: anyio.Event | None = None,
    ) -> None:
        """
        Return when this process revokes something, or after ``timeout`` s.

        Args:
            timeout: the most seconds to wait.
            watch: the event :meth:`watch` returned before the last read.
        """
        await self._context.signals.wait_for_revocations(timeout, after=watch)
