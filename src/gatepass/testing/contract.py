"""
The behaviour every secret engine shows, as a base class engine tests subclass.

This module imports pytest: install gatepass with its ``dev`` extra (or pytest and
anyio next to ``gatepass[server]``) to use it. A subclass provides four fixtures
and inherits the tests::

    class TestMyEngine(SecretEngineContract):
        @pytest.fixture
        def engine(self, clock): ...     # a SecretEngine of one mount, using clock
        @pytest.fixture
        def probe(self): ...             # an EngineProbe looking at the same target
        @pytest.fixture
        def clock(self): ...             # the FrozenClock the engine was given
        @pytest.fixture
        def actions(self): ...           # actions the mount grants, e.g. ("read",)

It may override ``make_request`` (an SSH engine needs a public key), the class
attributes below, and ``other_installation`` (the same mount built by another
broker deployment, for engines whose credentials live in a namespace deployments
can share). Tests are synchronous and drive the engine with ``anyio.run``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Iterator
from typing import ClassVar, Protocol

import anyio
import pytest

from gatepass.clock import FrozenClock, SystemClock
from gatepass.engines import (
    IssuedCredential,
    IssueRequest,
    SecretEngine,
    credential_name,
)
from gatepass.ids import new_lease_id

__all__ = [
    "EngineProbe",
    "LiveSession",
    "RequestFactory",
    "SecretEngineContract",
    "eventually",
    "fresh_clock",
]

POLL_INTERVAL_SECONDS = 0.02


class LiveSession(Protocol):
    """An open session of a credential in the target (a connection)."""

    async def alive(self) -> bool:
        """Tell whether the session still answers a trivial command."""
        ...

    async def aclose(self) -> None:
        """Close the session if it is still open."""
        ...


class EngineProbe(Protocol):
    """Looks at the target with its own means, independently of the engine."""

    async def can_login(self, credential: IssuedCredential) -> bool:
        """Tell whether the credential opens a new session now."""
        ...

    async def exists(self, handle: str) -> bool:
        """Tell whether the target still holds the credential of ``handle``."""
        ...

    async def open_session(self, credential: IssuedCredential) -> LiveSession:
        """Open a session with the credential."""
        ...

    async def create_foreign(self) -> list[str]:
        """Create credentials the engine must never remove; return their names."""
        ...

    async def drop_foreign(self, names: list[str]) -> None:
        """Remove what :meth:`create_foreign` created."""
        ...


class RequestFactory(Protocol):
    """Makes a fresh issue request (a new lease id and name) for the mount."""

    def __call__(self) -> IssueRequest:
        """Return a fresh request."""
        ...


def fresh_clock() -> FrozenClock:
    """Return a frozen clock starting now, so that credentials are valid today."""
    return FrozenClock(SystemClock().now())


async def eventually(check: Callable[[], Awaitable[bool]], *, within: float) -> bool:
    """
    Poll ``check`` until it returns True or ``within`` seconds pass.

    Returns:
        Whether ``check`` returned True before the deadline.
    """
    with anyio.move_on_after(within):
        while not await check():
            # One step of the poll: wait on an event nobody sets, bounded.
            with anyio.move_on_after(POLL_INTERVAL_SECONDS):
                await anyio.Event().wait()
        return True
    return False


class SecretEngineContract:
    """Behaviours every engine must show; subclass it with the fixtures above."""

    # Whether revoking cuts sessions already open (ground rule 6). Engines whose
    # credentials cannot be cut (SSH certificates) set it to False.
    cuts_live_sessions: ClassVar[bool] = True
    # How long after revoke a live session must be gone.
    cut_within_seconds: ClassVar[float] = 2.0
    # How far the clock moves before reaping, past any grace an engine keeps.
    reap_after: ClassVar[dt.timedelta] = dt.timedelta(hours=1)
    concurrency: ClassVar[int] = 50
    ttl: ClassVar[dt.timedelta] = dt.timedelta(hours=1)

    @pytest.fixture
    def make_request(
        self, actions: tuple[str, ...], clock: FrozenClock
    ) -> RequestFactory:
        """Fresh requests for the mount's actions, expiring ``ttl`` from now."""

        def make() -> IssueRequest:
            lease_id = new_lease_id()
            return IssueRequest(
                lease_id=lease_id,
                name=credential_name(lease_id),
                actions=actions,
                principal="agt_contractcontractcontract",
                expires_at=clock.now() + self.ttl,
            )

        return make

    @pytest.fixture
    def other_installation(self) -> SecretEngine | None:
        """
        The same mount built by another deployment (another installation id).

        None (the default) skips the namespace test: for engines whose credentials
        live in the broker's own state, nothing is shared between deployments.
        """
        return None

    @pytest.fixture
    def handles(self, engine: SecretEngine) -> Iterator[list[str]]:
        """Handles a test issued; each is revoked after the test, even on failure."""
        issued: list[str] = []
        try:
            yield issued
        finally:

            async def revoke_all() -> None:
                for handle in issued:
                    await engine.revoke(handle)

            anyio.run(revoke_all)

    def test_issue_then_revoke(
        self,
        engine: SecretEngine,
        probe: EngineProbe,
        make_request: RequestFactory,
        handles: list[str],
    ) -> None:
        """An issued credential works until it is revoked, then no longer exists."""

        async def main() -> None:
            credential = await engine.issue(make_request())
            handles.append(credential.handle)
            assert await probe.can_login(credential)
            await engine.revoke(credential.handle)
            assert not await probe.can_login(credential)
            assert not await probe.exists(credential.handle)

        anyio.run(main)

    def test_issue_respects_the_requested_expiry(
        self,
        engine: SecretEngine,
        make_request: RequestFactory,
        handles: list[str],
    ) -> None:
        """The credential never outlives the request, and its secret stays hidden."""

        async def main() -> None:
            request = make_request()
            credential = await engine.issue(request)
            handles.append(credential.handle)
            assert credential.expires_at <= request.expires_at
            assert credential.handle
            if credential.secret is not None:
                assert credential.secret.reveal() not in repr(credential)
                assert credential.secret.reveal() not in str(dict(credential.fields))

        anyio.run(main)

    def test_revoke_is_idempotent(
        self,
        engine: SecretEngine,
        probe: EngineProbe,
        make_request: RequestFactory,
        handles: list[str],
    ) -> None:
        """Revoking twice, or revoking what never existed, succeeds."""

        async def main() -> None:
            credential = await engine.issue(make_request())
            handles.append(credential.handle)
            await engine.revoke(credential.handle)
            await engine.revoke(credential.handle)
            await engine.revoke(make_request().name)
            assert not await probe.exists(credential.handle)

        anyio.run(main)

    def test_revoke_cuts_a_live_session(
        self,
        engine: SecretEngine,
        probe: EngineProbe,
        make_request: RequestFactory,
        handles: list[str],
    ) -> None:
        """A session opened before revocation is cut within the deadline."""
        if not self.cuts_live_sessions:
            pytest.skip("this engine's credentials cannot be cut once in use")

        async def main() -> None:
            credential = await engine.issue(make_request())
            handles.append(credential.handle)
            session = await probe.open_session(credential)
            try:
                assert await session.alive()
                await engine.revoke(credential.handle)

                async def cut() -> bool:
                    return not await session.alive()

                assert await eventually(cut, within=self.cut_within_seconds)
                assert not await probe.can_login(credential)
            finally:
                await session.aclose()

        anyio.run(main)

    def test_issue_of_the_same_name_replaces(
        self,
        engine: SecretEngine,
        probe: EngineProbe,
        make_request: RequestFactory,
        handles: list[str],
    ) -> None:
        """Issuing again under the same name (a retry) leaves one working credential."""

        async def main() -> None:
            request = make_request()
            first = await engine.issue(request)
            handles.append(first.handle)
            second = await engine.issue(request)
            handles.append(second.handle)
            assert second.handle == first.handle
            assert await probe.can_login(second)
            if first.secret is not None and second.secret is not None:
                assert first.secret != second.secret
                assert not await probe.can_login(first)
            await engine.revoke(second.handle)
            assert not await probe.exists(second.handle)

        anyio.run(main)

    def test_reap_removes_only_stray_gatepass_credentials(
        self,
        engine: SecretEngine,
        probe: EngineProbe,
        clock: FrozenClock,
        make_request: RequestFactory,
        handles: list[str],
    ) -> None:
        """Reap removes a credential no live lease accounts for, and nothing else."""

        async def main() -> None:
            live = await engine.issue(make_request())
            handles.append(live.handle)
            # A crash between issue and activation leaves this one behind.
            stray = await engine.issue(make_request())
            handles.append(stray.handle)
            foreign = await probe.create_foreign()
            try:
                clock.advance(self.reap_after)
                removed = await engine.reap({live.handle})
                assert stray.handle in removed
                assert live.handle not in removed
                assert not set(foreign) & set(removed)
                assert not await probe.exists(stray.handle)
                assert await probe.exists(live.handle)
                assert await probe.can_login(live)
                for name in foreign:
                    assert await probe.exists(name), name
            finally:
                await probe.drop_foreign(foreign)

        anyio.run(main)

    def test_issue9_reap_keeps_a_credential_whose_lease_is_pending(
        self,
        engine: SecretEngine,
        probe: EngineProbe,
        clock: FrozenClock,
        make_request: RequestFactory,
        handles: list[str],
    ) -> None:
        """A pending lease is live by its id and recorded name; its credential stays."""

        async def main() -> None:
            request = make_request()
            credential = await engine.issue(request)
            handles.append(credential.handle)
            clock.advance(self.reap_after)
            # What the broker's live set holds for a lease not yet activated.
            removed = await engine.reap({request.lease_id, request.name})
            assert credential.handle not in removed
            assert await probe.exists(credential.handle)

        anyio.run(main)

    def test_issue9_reap_spares_another_installations_credentials(
        self,
        engine: SecretEngine,
        other_installation: SecretEngine | None,
        probe: EngineProbe,
        clock: FrozenClock,
        make_request: RequestFactory,
    ) -> None:
        """Another deployment's live credential survives; each reaps its own strays."""
        if other_installation is None:
            pytest.skip("deployments share no namespace in this engine")
        other = other_installation

        async def main() -> None:
            theirs = await other.issue(make_request())
            ours = await engine.issue(make_request())
            try:
                clock.advance(self.reap_after)
                # Neither broker knows the other's leases: both live sets are empty.
                removed = await engine.reap(set())
                assert ours.handle in removed
                assert theirs.handle not in removed
                assert await probe.exists(theirs.handle)
                assert await probe.can_login(theirs)
                assert await other.reap(set()) == [theirs.handle]
                assert not await probe.exists(theirs.handle)
            finally:
                await other.revoke(theirs.handle)
                await engine.revoke(ours.handle)

        anyio.run(main)

    def test_concurrent_issue_and_revoke_leave_nothing_behind(
        self,
        engine: SecretEngine,
        probe: EngineProbe,
        make_request: RequestFactory,
        handles: list[str],
    ) -> None:
        """Many issue/revoke pairs at once leave no credential in the target."""

        async def pair() -> None:
            credential = await engine.issue(make_request())
            handles.append(credential.handle)
            await engine.revoke(credential.handle)

        async def main() -> None:
            async with anyio.create_task_group() as group:
                for _ in range(self.concurrency):
                    group.start_soon(pair)
            assert len(handles) == self.concurrency
            for handle in handles:
                assert not await probe.exists(handle), handle

        anyio.run(main)
