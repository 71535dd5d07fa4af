"""Tests for AgentAssertionVerifier (RFC 7523 agent assertions)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gatepass.clock import FrozenClock
from gatepass.errors import AccessDeniedError, GatepassError, InvalidGrantError
from gatepass.identity import (
    JWT_TOKEN_TYPE,
    AgentAssertionVerifier,
    WorkloadIdentity,
    WorkloadVerifier,
)
from gatepass.ids import new_agent_id
from gatepass.tokens import b64url

from .conftest import AUDIENCE, DictAgentDirectory, Registered


def sign(registered: Registered, claims: dict[str, Any], **header: Any) -> str:
    """Sign arbitrary claims with the agent's key and algorithm."""
    return jwt.encode(
        claims,
        registered.key,
        algorithm=registered.agent.algorithm,
        headers=header or None,
    )


def claims_of(
    registered: Registered, clock: FrozenClock, **overrides: Any
) -> dict[str, Any]:
    """Valid assertion claims with overrides; None removes a claim."""
    now = int(clock.now().timestamp())
    claims: dict[str, Any] = {
        "iss": registered.agent.id,
        "sub": registered.agent.id,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 60,
        "jti": "assertion-1",
    }
    claims.update(overrides)
    return {name: value for name, value in claims.items() if value is not None}


class TestAgentAssertionVerifier:
    """Valid assertions prove the agent."""

    def test_conforms_to_protocol(self, verifier: AgentAssertionVerifier) -> None:
        """It is a WorkloadVerifier for JWT subject tokens."""
        typed: WorkloadVerifier = verifier
        assert typed.token_types == frozenset({JWT_TOKEN_TYPE})

    def test_round_trip(
        self,
        verifier: AgentAssertionVerifier,
        registered: Registered,
        clock: FrozenClock,
    ) -> None:
        """A fresh assertion yields the agent and its jti as a single-use value."""
        token = registered.assertion(clock, jti="abc")
        identity = verifier.verify(token)
        assert identity == WorkloadIdentity(
            agent=registered.agent,
            method="jwt-assertion",
            assertion_jti="abc",
            single_use=identity.single_use,
        )
        assert identity.single_use is not None
        assert identity.single_use.key == f"assertion:{registered.agent.id}:abc"
        assert identity.single_use.expires_at > clock.now()

    def test_audience_token_endpoint(
        self,
        verifier: AgentAssertionVerifier,
        registered: Registered,
        clock: FrozenClock,
    ) -> None:
        """The token endpoint URL, as one string, is an accepted audience."""
        token = sign(registered, claims_of(registered, clock, aud=f"{AUDIENCE}/token"))
        assert verifier.verify(token).agent == registered.agent


class TestAgentAssertionRejects:
    """Every failure has its own message and never echoes the token."""

    def check(
        self,
        verifier: AgentAssertionVerifier,
        token: str,
        message: str,
        error: type[GatepassError] = InvalidGrantError,
    ) -> None:
        """Assert that verification fails with this class and message."""
        with pytest.raises(error, match=message) as info:
            verifier.verify(token)
        assert type(info.value) is error
        if token:
            assert token not in str(info.value)

    @pytest.mark.parametrize("token", ["", "a.b.c", "x" * 9000, "é.é.é"])
    def test_malformed(self, verifier: AgentAssertionVerifier, token: str) -> None:
        """Garbage is malformed."""
        self.check(verifier, token, "malformed assertion")

    @pytest.mark.parametrize("iss", [None, "bob", "agt_short", "agt_" + "1" * 26])
    def test_issuer_not_agent_id(
        self,
        verifier: AgentAssertionVerifier,
        registered: Registered,
        clock: FrozenClock,
        iss: object,
    ) -> None:
        """The iss must be a well-formed agent id."""
        token = sign(registered, claims_of(registered, clock, iss=iss))
        self.check(verifier, token, "issuer is not an agent id")

    def test_subject_differs(
        self,
        verifier: AgentAssertionVerifier,
        registered: Registered,
        clock: FrozenClock,
    ) -> None:
        """The sub must equal iss."""
        token = sign(registered, claims_of(registered, clock, sub=new_agent_id()))
        self.check(verifier, token, "subject must equal its issuer")

    def test_unknown_agent(
        self,
        verifier: AgentAssertionVerifier,
        registered: Registered,
        clock: FrozenClock,
    ) -> None:
        """An agent id the directory does not know is refused."""
        stranger = new_agent_id()
        token = sign(
            registered, claims_of(registered, clock, iss=stranger, sub=stranger)
        )
        self.check(verifier, token, "unknown agent")

    def test_signed_by_another_agent(
        self,
        verifier: AgentAssertionVerifier,
        register: Callable[[str], Registered],
        clock: FrozenClock,
    ) -> None:
        """An agent cannot sign for another agent."""
        victim, attacker = register("ES256"), register("ES256")
        token = sign(attacker, claims_of(victim, clock))
        self.check(verifier, token, "signature is invalid")

    def test_algorithm_not_pinned(
        self,
        verifier: AgentAssertionVerifier,
        register: Callable[[str], Registered],
        clock: FrozenClock,
    ) -> None:
        """The header alg must be the agent's registered algorithm."""
        victim, attacker = register("ES256"), register("EdDSA")
        token = sign(attacker, claims_of(victim, clock))
        self.check(verifier, token, "algorithm does not match the agent key")

    def test_alg_none(
        self,
        verifier: AgentAssertionVerifier,
        registered: Registered,
        clock: FrozenClock,
    ) -> None:
        """An unsigned assertion is refused."""
        token = jwt.encode(claims_of(registered, clock), "", algorithm="none")
        self.check(verifier, token, "algorithm does not match the agent key")

    @pytest.mark.parametrize("typ", ["dpop+jwt", "at+jwt", 5])
    def test_wrong_typ(
        self,
        verifier: AgentAssertionVerifier,
        registered: Registered,
        clock: FrozenClock,
        typ: object,
    ) -> None:
        """Other JWT kinds are not assertions (RFC 8725 §3.11)."""
        token = sign(registered, claims_of(registered, clock), typ=typ)
        self.check(verifier, token, "unexpected typ")

    def test_unusable_agent_key(
        self,
        verifier: AgentAssertionVerifier,
        directory: DictAgentDirectory,
        registered: Registered,
        clock: FrozenClock,
    ) -> None:
        """A registration whose key does not fit its algorithm is refused."""
        agent = registered.agent
        directory.agents[agent.id] = dataclasses.replace(agent, algorithm="RS256")
        self.check(verifier, registered.assertion(clock), "agent key is unusable")

    def test_corrupt_agent_key(
        self,
        verifier: AgentAssertionVerifier,
        directory: DictAgentDirectory,
        registered: Registered,
        clock: FrozenClock,
    ) -> None:
        """A registration whose key does not parse is refused."""
        agent = registered.agent
        broken = {**agent.public_jwk, "x": b64url(b"\x00")}
        directory.agents[agent.id] = dataclasses.replace(agent, public_jwk=broken)
        self.check(verifier, registered.assertion(clock), "agent key is unusable")

    @pytest.mark.parametrize("aud", [None, "https://other", 5, {"a": 1}])
    def test_audience(
        self,
        verifier: AgentAssertionVerifier,
        registered: Registered,
        clock: FrozenClock,
        aud: object,
    ) -> None:
        """The aud must contain an accepted audience."""
        token = sign(registered, claims_of(registered, clock, aud=aud))
        self.check(verifier, token, "audience is not accepted")

    @pytest.mark.parametrize("exp", [None, "later", True])
    def test_exp_required(
        self,
        verifier: AgentAssertionVerifier,
        registered: Registered,
        clock: FrozenClock,
        exp: object,
    ) -> None:
        """The exp is a required number."""
        token = sign(registered, claims_of(registered, clock, exp=exp))
        self.check(verifier, token, "no valid exp")

    def test_expired(
        self,
        verifier: AgentAssertionVerifier,
        registered: Registered,
        clock: FrozenClock,
    ) -> None:
        """An assertion past exp + leeway is refused."""
        token = registered.assertion(clock)
        clock.advance(90)
        self.check(verifier, token, "assertion has expired")

    def test_lifetime_too_long(
        self,
        verifier: AgentAssertionVerifier,
        registered: Registered,
        clock: FrozenClock,
    ) -> None:
        """The exp more than max_lifetime ahead is refused."""
        token = registered.assertion(clock, lifetime=dt.timedelta(minutes=6))
        self.check(verifier, token, "lifetime is too long")

    @pytest.mark.parametrize("iat", [None, "now"])
    def test_iat_required(
        self,
        verifier: AgentAssertionVerifier,
        registered: Registered,
        clock: FrozenClock,
        iat: object,
    ) -> None:
        """The iat is a required number."""
        token = sign(registered, claims_of(registered, clock, iat=iat))
        self.check(verifier, token, "no valid iat")

    def test_issued_in_the_future(
        self,
        verifier: AgentAssertionVerifier,
        registered: Registered,
        clock: FrozenClock,
    ) -> None:
        """The iat beyond the leeway is refused."""
        now = int(clock.now().timestamp())
        token = sign(registered, claims_of(registered, clock, iat=now + 31))
        self.check(verifier, token, "issued in the future")

    @pytest.mark.parametrize("offset", [31, "x"])
    def test_not_yet_valid(
        self,
        verifier: AgentAssertionVerifier,
        registered: Registered,
        clock: FrozenClock,
        offset: object,
    ) -> None:
        """The nbf beyond the leeway, or not a number, is refused."""
        now = int(clock.now().timestamp())
        nbf = now + offset if isinstance(offset, int) else offset
        token = sign(registered, {**claims_of(registered, clock), "nbf": nbf})
        self.check(verifier, token, "not yet valid")

    @pytest.mark.parametrize("jti", [None, "", 3, "x" * 257])
    def test_jti_required(
        self,
        verifier: AgentAssertionVerifier,
        registered: Registered,
        clock: FrozenClock,
        jti: object,
    ) -> None:
        """The jti is a required, bounded string."""
        token = sign(registered, claims_of(registered, clock, jti=jti))
        self.check(verifier, token, "no valid jti")

    def test_disabled_agent(
        self,
        verifier: AgentAssertionVerifier,
        directory: DictAgentDirectory,
        registered: Registered,
        clock: FrozenClock,
    ) -> None:
        """A disabled agent's valid assertion is access_denied."""
        directory.disable(registered.agent.id)
        self.check(
            verifier,
            registered.assertion(clock),
            "agent is disabled",
            AccessDeniedError,
        )

    def test_disabled_agent_bad_signature_is_invalid_grant(
        self,
        verifier: AgentAssertionVerifier,
        directory: DictAgentDirectory,
        register: Callable[[str], Registered],
        clock: FrozenClock,
    ) -> None:
        """Disabled status is revealed only after the signature verified."""
        victim, attacker = register("ES256"), register("ES256")
        directory.disable(victim.agent.id)
        self.check(
            verifier, sign(attacker, claims_of(victim, clock)), "signature is invalid"
        )

    def test_replayed(
        self,
        verifier: AgentAssertionVerifier,
        registered: Registered,
        clock: FrozenClock,
    ) -> None:
        """An assertion is single use."""
        token = registered.assertion(clock)
        verifier.verify(token)
        self.check(verifier, token, "assertion replayed")

    def test_failed_assertion_does_not_spend_jti(
        self,
        verifier: AgentAssertionVerifier,
        directory: DictAgentDirectory,
        registered: Registered,
        clock: FrozenClock,
    ) -> None:
        """A rejected assertion leaves its jti unspent."""
        directory.disable(registered.agent.id)
        token = registered.assertion(clock)
        self.check(verifier, token, "disabled", AccessDeniedError)
        directory.agents[registered.agent.id] = registered.agent
        assert verifier.verify(token).agent == registered.agent

    @settings(
        max_examples=100, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(token=st.text(max_size=300))
    def test_arbitrary_text(self, verifier: AgentAssertionVerifier, token: str) -> None:
        """Any text raises InvalidGrantError, never another exception."""
        with pytest.raises(InvalidGrantError):
            verifier.verify(token)


class TestAgentAssertionNumbers:
    """Time claims are finite numbers."""

    def test_nan_exp(
        self,
        verifier: AgentAssertionVerifier,
        registered: Registered,
        clock: FrozenClock,
    ) -> None:
        """NaN is not a NumericDate."""
        token = sign(registered, claims_of(registered, clock, exp=float("nan")))
        # RFC 8259 §6: NaN is not JSON, so the claims do not even parse.
        with pytest.raises(InvalidGrantError, match="malformed assertion"):
            verifier.verify(token)

    def test_past_nbf(
        self,
        verifier: AgentAssertionVerifier,
        registered: Registered,
        clock: FrozenClock,
    ) -> None:
        """An nbf already reached is accepted."""
        now = int(clock.now().timestamp())
        token = sign(registered, {**claims_of(registered, clock), "nbf": now})
        assert verifier.verify(token).agent == registered.agent
