"""
What the broker's use cases tell each other within one process.

* **Revocations happened**: revocation streams wait on :meth:`wait_for_revocations`
  and push at once instead of at their next poll of the store. Revocations of
  this process are also told to the other broker processes on the same
  PostgreSQL (:meth:`wait_for_local_revocations`); theirs arrive as
  :meth:`revoked_elsewhere`.
* **Issuances in flight**: a lease whose engine call has not returned is in
  :attr:`issuing`; its revocation waits until the call returns, so a credential is
  never created after its lease was reported revoked.
"""

from __future__ import annotations

import anyio

__all__ = ["Signals"]


class Signals:
    """In-process signals between use cases."""

    def __init__(self) -> None:
        """Start with nothing in flight."""
        self._revoked = anyio.Event()
        self._local = anyio.Event()
        self.issuing: set[str] = set()

    def revoked_elsewhere(self) -> None:
        """Wake every revocation stream of this process (another one revoked)."""
        event, self._revoked = self._revoked, anyio.Event()
        event.set()

    async def wait_for_local_revocations(self) -> None:
        """Return once this process has revoked something since the last return."""
        await self._local.wait()
        self._local = anyio.Event()

    def revoked(self) -> None:
        """Wake every revocation stream of this process, and tell the others."""
        self._local.set()
        event, self._revoked = self._revoked, anyio.Event()
        event.set()

    def next_revocation(self) -> anyio.Event:
        """
        Return the event the next revocation of this process sets.

        A stream takes it *before* it reads the store: a revocation that commits
        between that read and the wait then still wakes it, instead of being
        noticed only at the next poll.
        """
        return self._revoked

    async def wait_for_revocations(
        self,
        timeout: float,  # noqa: ASYNC109
        *,
        after: anyio.Event | None = None,
    ) -> None:
        """
        Return when this process revokes something, or after ``timeout`` s.

        Args:
            timeout: the most seconds to wait.
            after: an event from :meth:`next_revocation`; when given, a revocation
                since it was taken returns at once.
        """
        event = self._revoked if after is None else after
        with anyio.move_on_after(timeout):
            await event.wait()
