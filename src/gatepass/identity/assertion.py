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

from gatepass.clock import Clock
from gatepass.errors import AccessDeniedError, InvalidGrantError, InvalidRequestError
from gatepass.identity.workload import (
    JWT_TOKEN_TYPE,
    AgentDirectory,
    ReplayCache,
    WorkloadIdentity,
)
from gatepass.ids import AgentId, is_id
from gatepass.models import Agent, AgentStatus
from gatepass.single_use import SingleUse
from gatepass.tokens import (
    PRIVATE_MEMBERS,
    CompactJWS,
    PublicKey,
    algorithm_matches,
    canonical_algorithm,
    parse_compact,
    public_key_from_jwk,
    verify_signature,
)

__all__ = ["AgentAssertionVerifier"]

_MAX_ASSERTION_LENGTH = 8 * 1024
_MAX_JTI_LENGTH = 256
# RFC 8725 §3.1: agents sign with the algorithm pinned to their key type, and only
# asymmetric algorithms are ever accepted. "Ed25519" is the RFC 9864 name of EdDSA
# with an Ed25519 key: a registration may carry either name.
_AGENT_ALGORITHMS = {"ES256": ("EC", "P-256"), "EdDSA": ("OKP", "Ed25519")}


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


def _agent_key(agent: Agent) -> tuple[PublicKey, str]:
    algorithm = canonical_algorithm(agent.algorithm)
    expected = _AGENT_ALGORITHMS.get(algorithm or "")
    jwk = agent.public_jwk
    if (
        algorithm is None
        or expected is None
        or PRIVATE_MEMBERS.intersection(jwk)
        or (jwk.get("kty"), jwk.get("crv")) != expected
    ):
        raise _invalid("agent key is unusable")
    try:
        return public_key_from_jwk(jwk), algorithm
    except InvalidRequestError:
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
        agent_id, jws = self._claimed_agent(token)
        agent = self._directory.get_agent(agent_id)
        if agent is None:
            raise _invalid("unknown agent")
        claims = self._verified_claims(jws, agent)
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
    def _claimed_agent(token: str) -> tuple[AgentId, CompactJWS]:
        if len(token) > _MAX_ASSERTION_LENGTH:
            raise _invalid("malformed assertion")
        try:
            # RFC 7515 §2 and §7.1: every segment is unpadded, canonical base64url;
            # "=" padding or unused bits set are a second spelling of the same
            # token and are refused (issue 11), as everywhere gatepass parses a JWS.
            jws = parse_compact(token)
            # Unverified: only to learn which agent's key to verify with.
            unverified = jws.claims()
        except ValueError:
            raise _invalid("malformed assertion") from None
        issuer = unverified.get("iss")
        if not is_id(issuer, "agt"):
            raise _invalid("assertion issuer is not an agent id")
        # RFC 7523 §3 items 1-2: the agent asserts itself, so iss and sub agree.
        if unverified.get("sub") != issuer:
            raise _invalid("assertion subject must equal its issuer")
        return AgentId(str(issuer)), jws

    @staticmethod
    def _verified_claims(jws: CompactJWS, agent: Agent) -> dict[str, Any]:
        key, algorithm = _agent_key(agent)
        header = jws.header
        # RFC 8725 §3.1: the algorithm pinned to the agent's key decides; the header
        # may only name it (as EdDSA or, per RFC 9864, Ed25519).
        if not algorithm_matches(header.get("alg"), algorithm):
            raise _invalid("assertion algorithm does not match the agent key")
        # RFC 8725 §3.11: a DPoP proof or an access token is never an assertion.
        typ = header.get("typ", "JWT")
        if not isinstance(typ, str) or typ.lower() not in {"jwt", "application/jwt"}:
            raise _invalid("assertion has an unexpected typ")
        if not verify_signature(jws, key, algorithm):
            raise _invalid("assertion signature is invalid")
        return jws.claims()

    def _check_claims(self, claims: dict[str, Any]) -> tuple[float, str]:
        self._check_audience(claims.get("aud"))
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

    def _check_audience(self, audience: object) -> None:
        # RFC 7523bis (draft-ietf-oauth-rfc7523bis, after the 2025 audience-injection
        # findings on private_key_jwt): the aud is one string naming this broker,
        # its issuer or its token endpoint. An array could also name another server,
        # so an assertion minted for that server would be accepted here (issue 11).
        if isinstance(audience, list):
            raise _invalid("assertion audience must be a single string")
        if not isinstance(audience, str) or audience not in self._audiences:
            raise _invalid("assertion audience is not accepted")
