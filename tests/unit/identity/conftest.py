"""Fixtures for identity tests: a directory of agents and their keys."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from gatepass.clock import FrozenClock
from gatepass.identity import AgentAssertionVerifier
from gatepass.ids import AgentId, new_agent_id
from gatepass.models import Agent, AgentStatus
from gatepass.tokens import MemoryReplayCache, create_assertion, public_jwk_from_key

AUDIENCE = "https://broker.example"
PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


class DictAgentDirectory:
    """An AgentDirectory over a dict: a fake, not a mock."""

    def __init__(self) -> None:
        """Start empty."""
        self.agents: dict[AgentId, Agent] = {}

    def get_agent(self, agent_id: AgentId) -> Agent | None:
        """Return the agent, or None."""
        return self.agents.get(agent_id)

    def disable(self, agent_id: AgentId) -> None:
        """Mark an agent disabled."""
        self.agents[agent_id] = dataclasses.replace(
            self.agents[agent_id], status=AgentStatus.DISABLED
        )


@dataclasses.dataclass
class Registered:
    """An agent and its private key."""

    agent: Agent
    key: PrivateKey

    def assertion(self, clock: FrozenClock, **kwargs: Any) -> str:
        """Sign an assertion for this agent now."""
        kwargs.setdefault("audience", AUDIENCE)
        return create_assertion(
            self.key,
            algorithm=self.agent.algorithm,
            agent_id=self.agent.id,
            now=clock.now(),
            **kwargs,
        )


@pytest.fixture
def clock() -> FrozenClock:
    """A frozen clock."""
    return FrozenClock()


@pytest.fixture
def directory() -> DictAgentDirectory:
    """An empty directory."""
    return DictAgentDirectory()


@pytest.fixture
def replay(clock: FrozenClock) -> MemoryReplayCache:
    """A replay cache."""
    return MemoryReplayCache(clock)


@pytest.fixture
def register(
    directory: DictAgentDirectory, clock: FrozenClock
) -> Callable[[str], Registered]:
    """Register an agent with a fresh key of the given algorithm."""

    def build(algorithm: str = "ES256") -> Registered:
        key: PrivateKey = (
            ec.generate_private_key(ec.SECP256R1())
            if algorithm == "ES256"
            else ed25519.Ed25519PrivateKey.generate()
        )
        agent = Agent(
            id=new_agent_id(),
            name=f"agent-{len(directory.agents)}",
            tenant="acme",
            public_jwk=public_jwk_from_key(key),
            algorithm=algorithm,
            created_at=clock.now(),
        )
        directory.agents[agent.id] = agent
        return Registered(agent, key)

    return build


@pytest.fixture(params=["ES256", "EdDSA"])
def registered(
    request: pytest.FixtureRequest, register: Callable[[str], Registered]
) -> Registered:
    """A registered agent, once per algorithm."""
    algorithm: str = request.param
    return register(algorithm)


@pytest.fixture
def verifier(
    directory: DictAgentDirectory, clock: FrozenClock, replay: MemoryReplayCache
) -> AgentAssertionVerifier:
    """An assertion verifier for the broker's audience."""
    return AgentAssertionVerifier(
        directory=directory,
        audiences=frozenset({AUDIENCE, f"{AUDIENCE}/token"}),
        clock=clock,
        replay=replay,
    )


@pytest.fixture
def anyio_backend() -> str:
    """Run async identity tests on asyncio, the broker's event loop."""
    return "asyncio"
