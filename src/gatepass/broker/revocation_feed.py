"""
Revoked access tokens as a stream, for resource servers and the proxy.

The API serves it as Server-Sent Events (``GET /v1/revocations/stream``): the
broker pushes the moment this process revokes something (:class:`Signals`) and
polls the store every second for what other replicas revoked.
"""

from __future__ import annotations

import datetime as dt

from gatepass.broker.context import BrokerContext
from gatepass.models import Lease
from gatepass.store import leases as lease_rows

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

    async def revoked_since(self, cursor: dt.datetime) -> list[Lease]:
        """Return access-token leases revoked after ``cursor``, oldest first."""
        return await self._context.database.read(
            lambda conn: lease_rows.revoked_since(conn, cursor, limit=_PAGE)
        )

    async def wait(self, timeout: float) -> None:  # noqa: ASYNC109
        """Return when this process revokes something, or after ``timeout`` s."""
        await self._context.signals.wait_for_revocations(timeout)
