"""
Agent assertions: a JWT signed by the agent's registered key (RFC 7523 §3).

The assertion names the agent in ``iss`` and ``sub``; the key and algorithm come
from the agent's registration, never from the token (RFC 8725 §3.1). Each assertion
is single use: its ``jti`` is recorded once everything else has been checked.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import jwt

from gatepass.clock import Clock
from gatepass.errors import AccessDeniedError, InvalidGrantError
from gatepass.identity.workload import (
    JWT_TOKEN_TYPE,
    AgentDirectory,
    ReplayCache,
    WorkloadIdentity,
)
from gatepass.ids import AgentId, is_id
from gatepass.models import Agent, AgentStatus
from gatepass.single_use import SingleUse

__all__ = ["AgentAssertionVerifier"]

_MAX_ASSERTION_LENGTH = 8 * 1024
_MAX_JTI_LENGTH = 256
# RFC 8725 §3.1: agents sign with the algorithm pinned to their key type, and only
# asymmetric algorithms are ever accepted.
_AGENT_ALGORITHMS = {"ES256": ("EC", "P-256"), "EdDSA": ("OKP", "Ed25519")}
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})

# PyJWT checks the signature only; every claim is checked below against the
# injected clock, because PyJWT would read the wall clock.
_SIGNATURE_ONLY = jwt.PyJWT(
    options={
        "verify_signature": True,
        "verify_exp": False,
        "verify_nbf": False,
        "verify_iat": False,
        "verify_aud": False,
        "verify_iss": False,
        "verify_sub": False,
        "verify_jti": False,
        "require": [],
    }
)


def _invalid(message: str) -> InvalidGrantError:
    return InvalidGrantError(message)


def _numeric(value: object) -> float | None:
    # RFC 7519 §2: a NumericDate is a JSON number; NaN, infinities and booleans
    # are not.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return float(value)


def _agent_key(agent: Agent) -> jwt.PyJWK:
    expected = _AGENT_ALGORITHMS.get(agent.algorithm)
    jwk = agent.public_jwk
    if (
        expected is None
        or _PRIVATE_MEMBERS.intersection(jwk)
        or (jwk.get("kty"), jwk.get("crv")) != expected
    ):
        raise _invalid("agent key is unusable")
    try:
        return jwt.PyJWK(dict(jwk), algorithm=agent.algorithm)
    except jwt.PyJWTError:
        raise _invalid("agent key is unusable") from None


class AgentAssertionVerifier:
    """
    Verify agent assertions presented as ``subject_token`` or ``actor_token``.

    Args:
        directory: looks up registered agents.
        audiences: accepted ``aud`` values (the issuer, the token endpoint URL).
        clock: the time source.
        replay: records assertion ids until they expire.
        max_lifetime: the longest an assertion may still be valid when presented.
        leeway: tolerated clock skew.
    """

    token_types: frozenset[str] = frozenset({JWT_TOKEN_TYPE})

    def __init__(
        self,
        *,
        directory: AgentDirectory,
        audiences: frozenset[str],
        clock: Clock,
        replay: ReplayCache,
        max_lifetime: dt.timedelta = dt.timedelta(minutes=5),
        leeway: dt.timedelta = dt.timedelta(seconds=30),
    ) -> None:
        """Keep the configuration."""
        self._directory = directory
        self._audiences = audiences
        self._clock = clock
        self._replay = replay
        self._max_lifetime = max_lifetime.total_seconds()
        self._leeway = leeway.total_seconds()

    def verify(self, token: str) -> WorkloadIdentity:
        """
        Verify an assertion and return the agent it proves.

        Args:
            token: the compact JWS.

        Returns:
            The agent's identity.

        Raises:
            InvalidGrantError: the assertion is malformed, unknown, badly signed,
                for another audience, expired, too long-lived or replayed.
            AccessDeniedError: the assertion is valid but the agent is disabled.
        """
        agent_id, header = self._claimed_agent(token)
        agent = self._directory.get_agent(agent_id)
        if agent is None:
            raise _invalid("unknown agent")
        claims = self._verified_claims(token, header, agent)
        exp, jti = self._check_claims(claims)
        if agent.status is not AgentStatus.ACTIVE:
            raise AccessDeniedError("agent is disabled")
        # RFC 7523 §3 item 7: a jti may be used once; checked last so that only a
        # valid assertion spends it.
        single_use = SingleUse(
            "assertion",
            f"{agent.id}:{jti}",
            dt.datetime.fromtimestamp(exp + self._leeway, dt.UTC),
        )
        if self._replay.seen(
            single_use.namespace, single_use.value, single_use.expires_at
        ):
            raise _invalid("assertion replayed")
        return WorkloadIdentity(
            agent=agent,
            method="jwt-assertion",
            assertion_jti=jti,
            single_use=single_use,
        )

    @staticmethod
    def _claimed_agent(token: str) -> tuple[AgentId, dict[str, Any]]:
        if len(token) > _MAX_ASSERTION_LENGTH or not token.isascii():
            raise _invalid("malformed assertion")
        try:
            # Unverified: only to learn which agent's key to verify with.
            parsed = jwt.decode_complete(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise _invalid("malformed assertion") from None
        header: dict[str, Any] = parsed["header"]
        unverified: dict[str, Any] = parsed["payload"]
        issuer = unverified.get("iss")
        if not is_id(issuer, "agt"):
            raise _invalid("assertion issuer is not an agent id")
        # RFC 7523 §3 items 1-2: the agent asserts itself, so iss and sub agree.
        if unverified.get("sub") != issuer:
            raise _invalid("assertion subject must equal its issuer")
        return AgentId(str(issuer)), header

    @staticmethod
    def _verified_claims(
        token: str, header: dict[str, Any], agent: Agent
    ) -> dict[str, Any]:
        key = _agent_key(agent)
        if header.get("alg") != agent.algorithm:
            raise _invalid("assertion algorithm does not match the agent key")
        # RFC 8725 §3.11: a DPoP proof or an access token is never an assertion.
        typ = header.get("typ", "JWT")
        if not isinstance(typ, str) or typ.lower() not in {"jwt", "application/jwt"}:
            raise _invalid("assertion has an unexpected typ")
        try:
            claims: dict[str, Any] = _SIGNATURE_ONLY.decode(
                token, key, algorithms=[agent.algorithm]
            )
        except jwt.InvalidSignatureError:
            raise _invalid("assertion signature is invalid") from None
        except jwt.PyJWTError:  # pragma: no cover - the token parsed above
            raise _invalid("malformed assertion") from None
        return claims

    def _check_claims(self, claims: dict[str, Any]) -> tuple[float, str]:
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if not any(
            isinstance(item, str) and item in self._audiences for item in audiences
        ):
            raise _invalid("assertion audience is not accepted")
        now = self._clock.now().timestamp()
        leeway = self._leeway
        exp = _numeric(claims.get("exp"))
        if exp is None:
            raise _invalid("assertion has no valid exp")
        if exp <= now - leeway:
            raise _invalid("assertion has expired")
        if exp > now + self._max_lifetime + leeway:
            raise _invalid("assertion lifetime is too long")
        iat = _numeric(claims.get("iat"))
        if iat is None:
            raise _invalid("assertion has no valid iat")
        if iat > now + leeway:
            raise _invalid("assertion was issued in the future")
        if "nbf" in claims:
            nbf = _numeric(claims["nbf"])
            if nbf is None or nbf > now + leeway:
                raise _invalid("assertion is not yet valid")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti or len(jti) > _MAX_JTI_LENGTH:
            raise _invalid("assertion has no valid jti")
        return exp, jti
