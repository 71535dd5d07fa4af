"""Tests for turning a federated identity into an agent record, and checking one."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from gatepass.clock import FrozenClock
from gatepass.errors import AccessDeniedError, InvalidGrantError
from gatepass.identity import (
    FEDERATED_ALGORITHM,
    AgentAssertionVerifier,
    FederatedIdentity,
    check_federated_agent,
    federated_agent_fields,
)
from gatepass.ids import new_agent_id
from gatepass.models import Agent, AgentStatus
from gatepass.tokens import MemoryReplayCache, create_assertion

from .conftest import AUDIENCE, DictAgentDirectory, Registered

ISSUER = "https://token.actions.githubusercontent.com"


def identity(**overrides: object) -> FederatedIdentity:
    """A verified GitHub identity."""
    values: dict[str, object] = {
        "issuer": ISSUER,
        "issuer_name": "github",
        "subject": "repo:acme/app:environment:prod",
        "name": "repo:acme/app:environment:prod",
        "tenant": "acme",
        "labels": {"repository": "acme/app"},
        "method": "oidc",
        "register_on_first_use": True,
        "token_id": "j1",
        "expires_at": dt.datetime(2026, 1, 1, 0, 5, tzinfo=dt.UTC),
    }
    values.update(overrides)
    return FederatedIdentity(**values)  # type: ignore[arg-type]


class TestFederatedAgentFields:
    """A new federated agent has no key and records its issuer."""

    def test_fields(self, clock: FrozenClock) -> None:
        """Name, tenant and labels come from the identity; the key is empty."""
        fields = federated_agent_fields(identity())
        assert fields.public_jwk == {}
        assert fields.algorithm == FEDERATED_ALGORITHM
        assert fields.issuer == ISSUER
        agent = fields.to_agent(new_agent_id(), clock.now())
        assert (agent.name, agent.tenant, agent.labels) == (
            "repo:acme/app:environment:prod",
            "acme",
            {"repository": "acme/app"},
        )
        assert agent.public_jwk == {}

    def test_keyless_agent_can_never_sign_an_assertion(
        self,
        directory: DictAgentDirectory,
        register: object,
        clock: FrozenClock,
    ) -> None:
        """An assertion naming a federated agent is refused: it has no key."""
        signer: Registered = register("ES256")  # type: ignore[operator]
        agent = federated_agent_fields(identity()).to_agent(new_agent_id(), clock.now())
        directory.agents[agent.id] = agent
        verifier = AgentAssertionVerifier(
            directory=directory,
            audiences=frozenset({AUDIENCE}),
            clock=clock,
            replay=MemoryReplayCache(clock),
        )
        token = create_assertion(
            signer.key,
            algorithm="ES256",
            agent_id=agent.id,
            audience=AUDIENCE,
            now=clock.now(),
        )
        with pytest.raises(InvalidGrantError, match="agent key is unusable"):
            verifier.verify(token)


class TestCheckFederatedAgent:
    """A found agent may be proved only by its own issuer, in its tenant."""

    def agent(self, clock: FrozenClock, **changes: object) -> Agent:
        """The agent registered for identity()."""
        agent = federated_agent_fields(identity()).to_agent(new_agent_id(), clock.now())
        return dataclasses.replace(agent, **changes)  # type: ignore[arg-type]

    def test_same_issuer_passes(self, clock: FrozenClock) -> None:
        """The registering issuer proves the agent again."""
        check_federated_agent(self.agent(clock), ISSUER, identity())

    @pytest.mark.parametrize(
        ("changes", "issuer", "message"),
        [
            ({}, "https://gitlab.com", "another issuer"),
            ({}, None, "its own key"),
            ({"public_jwk": {"kty": "OKP"}}, ISSUER, "its own key"),
            ({"tenant": "other"}, ISSUER, "another tenant"),
        ],
    )
    def test_mismatches_are_refused(
        self,
        clock: FrozenClock,
        changes: dict[str, object],
        issuer: str | None,
        message: str,
    ) -> None:
        """A name taken by a keyed agent, another issuer or tenant is refused."""
        with pytest.raises(InvalidGrantError, match=message):
            check_federated_agent(self.agent(clock, **changes), issuer, identity())

    def test_disabled_agent(self, clock: FrozenClock) -> None:
        """A disabled federated agent is denied, not unknown."""
        agent = self.agent(clock, status=AgentStatus.DISABLED)
        with pytest.raises(AccessDeniedError, match="disabled"):
            check_federated_agent(agent, ISSUER, identity())
