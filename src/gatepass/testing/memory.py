"""
A fake secret engine for broker tests: an in-memory target with failure switches.

It keeps the promises of :class:`~gatepass.engines.SecretEngine` (it passes
:class:`~gatepass.testing.SecretEngineContract` in gatepass's own suite), so a
test of the broker that uses it exercises real engine behaviour, not a mock's.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from typing import ClassVar

from gatepass.engines import IssuedCredential, IssueRequest, SecretEngine
from gatepass.errors import EngineError, EngineUnavailableError
from gatepass.secret import Secret

__all__ = ["MemoryEngine"]


class MemoryEngine:
    """
    Holds credentials in a dict; can be told to fail issue or revoke.

    Attributes:
        credentials: the credentials the "target" holds, by handle.
        fail_issue: raise EngineUnavailableError from issue.
        fail_revoke: raise EngineUnavailableError from revoke.
        during_issue: called inside issue, after the credential exists.
        revoked: every handle revoke was called with, in order.
        passwords: the current secret of every credential, by handle (a
            re-issue under the same name replaces it).
    """

    kind: ClassVar[str] = "memory"

    def __init__(self) -> None:
        """Start with an empty target."""
        self.credentials: dict[str, dt.datetime] = {}
        self.fail_issue = False
        self.fail_revoke = False
        self.during_issue: Callable[[], None] | None = None
        self.revoked: list[str] = []
        self.passwords: dict[str, Secret] = {}

    async def check(self) -> None:
        """Nothing to check."""

    async def issue(self, request: IssueRequest) -> IssuedCredential:
        """Create the credential, or fail as told."""
        self.credentials[request.name] = request.expires_at
        # Fresh on every issue, as a real engine's: a retry replaces the secret.
        password = Secret(f"pw-{request.name}-{secrets.token_urlsafe(8)}")
        self.passwords[request.name] = password
        if self.during_issue is not None:
            self.during_issue()
        if self.fail_issue:
            msg = "target down"
            raise EngineUnavailableError(msg)
        return IssuedCredential(
            handle=request.name,
            expires_at=request.expires_at,
            secret=password,
            fields={"username": request.name},
        )

    async def renew(self, handle: str, expires_at: dt.datetime) -> dt.datetime:
        """Move the credential's expiry."""
        if handle not in self.credentials:
            msg = "credential is gone"
            raise EngineError(msg)
        self.credentials[handle] = expires_at
        return expires_at

    async def revoke(self, handle: str) -> None:
        """Remove the credential, or fail as told."""
        if self.fail_revoke:
            msg = "target down"
            raise EngineUnavailableError(msg)
        self.credentials.pop(handle, None)
        self.passwords.pop(handle, None)
        self.revoked.append(handle)

    async def reap(self, live_handles: AbstractSet[str]) -> list[str]:
        """Remove credentials no live lease accounts for."""
        gone = [h for h in self.credentials if h not in live_handles]
        for handle in gone:
            del self.credentials[handle]
            self.passwords.pop(handle, None)
        return gone

    async def aclose(self) -> None:
        """Nothing to release."""


_: type[SecretEngine] = MemoryEngine
