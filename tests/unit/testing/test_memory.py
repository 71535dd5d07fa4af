"""The fake engine keeps the promises of a real one: it passes the contract."""

from __future__ import annotations

import pytest

from gatepass.engines import IssuedCredential
from gatepass.testing import (
    EngineProbe,
    FrozenClock,
    LiveSession,
    MemoryEngine,
    SecretEngineContract,
    fresh_clock,
)


class MemoryProbe:
    """Looks into the fake's dictionaries, as a probe looks into a real target."""

    def __init__(self, engine: MemoryEngine) -> None:
        """Probe ``engine``'s in-memory target."""
        self.engine = engine

    async def can_login(self, credential: IssuedCredential) -> bool:
        """Tell whether the credential is held with this very secret."""
        current = self.engine.passwords.get(credential.handle)
        return current is not None and current == credential.secret

    async def exists(self, handle: str) -> bool:
        """Tell whether the fake target holds the credential."""
        return handle in self.engine.credentials

    async def open_session(self, credential: IssuedCredential) -> LiveSession:
        """Refuse: the fake has no sessions (``cuts_live_sessions`` is off)."""
        raise NotImplementedError

    async def create_foreign(self) -> list[str]:
        """Create nothing: the fake's target holds only what the engine made."""
        return []

    async def drop_foreign(self, names: list[str]) -> None:
        """Nothing to drop."""


class TestMemoryEngineContract(SecretEngineContract):
    """MemoryEngine under the shared engine contract."""

    cuts_live_sessions = False

    @pytest.fixture
    def clock(self) -> FrozenClock:
        """A frozen clock starting now."""
        return fresh_clock()

    @pytest.fixture
    def actions(self) -> tuple[str, ...]:
        """The fake grants any action."""
        return ("read",)

    @pytest.fixture
    def engine(self) -> MemoryEngine:
        """An empty fake target."""
        return MemoryEngine()

    @pytest.fixture
    def probe(self, engine: MemoryEngine) -> EngineProbe:
        """A probe of the same fake."""
        return MemoryProbe(engine)
