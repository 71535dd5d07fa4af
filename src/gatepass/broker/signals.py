"""
What the broker's use cases tell each other within one process.

* **Revocations happened**: revocation streams wait on :meth:`wait_for_revocations`
  and push at once instead of at their next poll of the store.
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
        self.issuing: set[str] = set()
        self.revocations = 0

    def revoked(self) -> None:
        """Wake every revocation stream of this process."""
        self.revocations += 1
        event, self._revoked = self._revoked, anyio.Event()
        event.set()

    async def wait_for_revocations_after(
        self,
        seen: int,
        timeout: float,  # noqa: ASYNC109
    ) -> None:
        """
        Return once this process revoked something since the count was ``seen``.

        A waiter that read the count before looking at the store misses no
        revocation that happened while it looked (it returns at once).
        """
        if self.revocations != seen:
            return
        with anyio.move_on_after(timeout):
            await self._revoked.wait()

    async def wait_for_revocations(self, timeout: float) -> None:  # noqa: ASYNC109
        """Return when this process revokes something, or after ``timeout`` s."""
        with anyio.move_on_after(timeout):
            await self._revoked.wait()
