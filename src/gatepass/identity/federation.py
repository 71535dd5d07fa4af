"""
Workload identity federation: verify a token from a trusted issuer, map it to an agent.

An agent may open a task with a token its platform gave it instead of an assertion
signed by a registered key: a Kubernetes projected service-account token, a GitHub
Actions or GitLab CI ID token, or a SPIRE JWT-SVID. :class:`FederatedVerifier`
checks such a token completely and returns a :class:`FederatedIdentity`; the broker
turns that into an agent (see ``gatepass.identity.registration``).

The order of the checks is the security argument:

1. the token is parsed strictly (canonical base64url, JSON objects, no ``crit``);
2. its unverified ``iss`` only *selects* a configured issuer table (a JWT-SVID
   without ``iss`` selects by the trust domain of its ``sub``); an unknown issuer is
   refused before anything is fetched, so a token can never make the broker reach a
   server it does not already trust;
3. headers that name key locations (``jku``, ``x5u``) or carry keys (``jwk``,
   ``x5c``) are refused outright (RFC 8725 §3.10): keys come from configuration;
4. the ``alg`` must be pinned for the issuer and equal to the algorithm pinned to
   the key its ``kid`` names (RFC 8725 §3.1), then the signature is checked;
5. ``iss``, one ``aud``, ``exp``, ``nbf``, ``iat`` and the lifetime cap are checked
   against the injected clock (RFC 7519 §4.1, RFC 8725 §3.8-3.9);
6. a JWT-SVID's ``sub`` must be a SPIFFE ID of the issuer's trust domain;
7. the claim rules map the token to an agent name, tenant and labels, or refuse it.

Every refusal is an :class:`~gatepass.errors.InvalidGrantError` (RFC 8693 §2.2.2)
whose message says which check failed and never contains the token.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpcore

from gatepass.clock import Clock
from gatepass.errors import InvalidGrantError
from gatepass.identity.addresses import Resolver
from gatepass.identity.issuers import (
    TrustedIssuer,
    build_issuers,
    issuers_by_selector,
)
from gatepass.identity.keycache import IssuerHealth
from gatepass.identity.rules import map_claims
from gatepass.identity.settings import IdentitySettings
from gatepass.identity.spiffe import SpiffeId, parse_spiffe_id
from gatepass.identity.workload import JWT_TOKEN_TYPE
from gatepass.single_use import ReplayCache, SingleUse
from gatepass.tokens import (
    CompactJWS,
    algorithm_matches,
    canonical_algorithm,
    parse_compact,
    verify_signature,
)

__all__ = [
    "FEDERATED_TOKEN_TYPES",
    "ID_TOKEN_TYPE",
    "FederatedIdentity",
    "FederatedVerifier",
]

# RFC 8693 §3: the token types a federated identity may be presented as.
ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"  # noqa: S105 - a URN
FEDERATED_TOKEN_TYPES = frozenset({JWT_TOKEN_TYPE, ID_TOKEN_TYPE})

# RFC 8725 §3.10 / RFC 7515 §4.1.2-4.1.6: members that name or carry keys.
_KEY_HEADERS = ("jku", "x5u", "jwk", "x5c")
# RFC 8725 §3.11: tokens of other kinds (at+jwt, dpop+jwt, txntoken+jwt) are not
# identity tokens; JWT-SVIDs may say JOSE (JWT-SVID §2.3).
_TYPES = frozenset({"jwt", "application/jwt"})
_SPIFFE_TYPES = _TYPES | {"jose", "application/jose"}
_MAX_SUBJECT = 2048
_MAX_JTI = 256
_SPIFFE_SCHEME = "spiffe://"


def _refuse(message: str) -> InvalidGrantError:
    return InvalidGrantError(message)


def _number(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    # RFC 7519 §2: a NumericDate is a finite JSON number, never a boolean.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _check_spiffe_id(spiffe_id: SpiffeId | None, issuer: TrustedIssuer) -> None:
    if spiffe_id is None:
        raise _refuse("jwt-svid subject is not a spiffe id")
    # SPIFFE Trust Domain and Bundle §6.4: a trust domain's keys vouch only for
    # its own IDs.
    if spiffe_id.trust_domain != issuer.trust_domain:
        raise _refuse("spiffe id is not in the issuer's trust domain")
    if not spiffe_id.path:
        raise _refuse("spiffe id names a trust domain, not a workload")


@dataclass(frozen=True, slots=True, kw_only=True)
class FederatedIdentity:
    """
    A verified federated workload, mapped to the agent it is.

    Attributes:
        issuer: the issuer marker: the token's ``iss`` or, for a JWT-SVID without
            one, ``spiffe://<trust domain>``; an agent registered on first use
            records it, and only this issuer may prove that agent again.
        issuer_name: the configured issuer table's name.
        subject: the token's ``sub`` (the SPIFFE ID for a JWT-SVID).
        name: the agent name the claim rules mapped it to.
        tenant: the agent's tenant.
        labels: the agent's labels, from this token's claims.
        method: ``"spiffe-jwt-svid"`` or ``"oidc"``.
        register_on_first_use: whether an unknown agent of this name may be
            registered now.
        token_id: the token's ``jti``, if it has one.
        expires_at: the token's expiry.
        single_use: the ``jti`` as a single-use value when the issuer is
            configured single use; the broker records it durably with the task.
    """

    issuer: str
    issuer_name: str
    subject: str
    name: str
    tenant: str
    labels: dict[str, str] = field(default_factory=dict)
    method: str
    register_on_first_use: bool
    token_id: str | None
    expires_at: dt.datetime
    single_use: SingleUse | None = None


class FederatedVerifier:
    """
    Verify identity tokens of the configured issuers.

    Args:
        issuers: the compiled issuers (see :meth:`from_settings`).
        clock: the time source.
        leeway: tolerated clock skew.
        replay: remembers single-use token ids in this process (the broker also
            records them durably); None to leave that to the broker.
    """

    token_types: frozenset[str] = FEDERATED_TOKEN_TYPES

    def __init__(
        self,
        issuers: Sequence[TrustedIssuer],
        *,
        clock: Clock,
        leeway: dt.timedelta = dt.timedelta(seconds=30),
        replay: ReplayCache | None = None,
    ) -> None:
        """Index the issuers."""
        self._issuers = issuers_by_selector(issuers)
        self._clock = clock
        self._leeway = leeway.total_seconds()
        self._replay = replay

    @classmethod
    def from_settings(
        cls,
        settings: IdentitySettings,
        *,
        clock: Clock,
        leeway: dt.timedelta = dt.timedelta(seconds=30),
        replay: ReplayCache | None = None,
        resolver: Resolver | None = None,
        backend: httpcore.AsyncNetworkBackend | None = None,
    ) -> FederatedVerifier:
        """
        Build the verifier for the ``[identity]`` settings.

        Args:
            settings: the identity settings.
            clock: the time source.
            leeway: tolerated clock skew (``tokens.clock_leeway_seconds``).
            replay: an in-process replay cache, if wanted.
            resolver: resolves key-server names (the system resolver by default).
            backend: the fetchers' socket layer (tests may wrap it).

        Returns:
            The verifier; no key is fetched until :meth:`refresh_due` or a token.
        """
        issuers = build_issuers(
            settings, clock=clock, resolver=resolver, backend=backend
        )
        return cls(issuers, clock=clock, leeway=leeway, replay=replay)

    @property
    def issuers(self) -> tuple[TrustedIssuer, ...]:
        """Return the configured issuers."""
        return tuple(self._issuers.values())

    def health(self) -> dict[str, IssuerHealth]:
        """Return each issuer's key state, by issuer name."""
        return {issuer.name: issuer.keys.health() for issuer in self._issuers.values()}

    async def refresh_due(self) -> None:
        """Refresh every issuer's keys whose time has come (the background job)."""
        # Concurrently: one slow issuer (up to its fetch deadline) must not hold
        # back the others. refresh_if_due records failures and never raises.
        async with anyio.create_task_group() as group:
            for issuer in self._issuers.values():
                group.start_soon(issuer.keys.refresh_if_due)

    def select_issuer(self, token: str) -> TrustedIssuer:
        """
        Pick the configured issuer of a token from its unverified ``iss``.

        Nothing read here is trusted: it only decides whose keys and rules apply.

        Args:
            token: the compact JWS.

        Returns:
            The issuer.

        Raises:
            InvalidGrantError: the token is malformed or its issuer is not
                configured; nothing has been fetched.
        """
        return self._select(self._parse(token))[0]

    @staticmethod
    def _parse(token: str) -> CompactJWS:
        try:
            return parse_compact(token)
        except ValueError:
            raise _refuse("malformed identity token") from None

    def _select(
        self, jws: CompactJWS
    ) -> tuple[TrustedIssuer, dict[str, Any], SpiffeId | None]:
        try:
            claims = jws.claims()
        except ValueError:
            raise _refuse("malformed identity token claims") from None
        iss = claims.get("iss")
        subject = claims.get("sub")
        spiffe_id: SpiffeId | None = None
        if isinstance(subject, str) and subject.startswith(_SPIFFE_SCHEME):
            try:
                spiffe_id = parse_spiffe_id(subject)
            except ValueError as error:
                message = f"token subject is not a valid spiffe id: {error}"
                raise _refuse(message) from None
        if iss is None and spiffe_id is not None:
            # JWT-SVID §3: iss is optional; the trust domain names the issuer.
            selector = f"{_SPIFFE_SCHEME}{spiffe_id.trust_domain}"
        elif isinstance(iss, str):
            selector = iss
        else:
            raise _refuse("token has no issuer")
        issuer = self._issuers.get(selector)
        if issuer is None:
            raise _refuse("token issuer is not trusted")
        return issuer, claims, spiffe_id

    async def verify(self, token: str, token_type: str) -> FederatedIdentity:
        """
        Verify a federated identity token completely.

        Args:
            token: the ``subject_token``.
            token_type: its ``subject_token_type`` (``…:token-type:jwt``, or
                ``…:token-type:id_token`` for an OIDC issuer).

        Returns:
            The verified, mapped identity.

        Raises:
            InvalidGrantError: any check failed; the message says which.
        """
        if token_type not in FEDERATED_TOKEN_TYPES:
            raise _refuse("token type is not accepted for a workload identity")
        jws = self._parse(token)
        issuer, claims, spiffe_id = self._select(jws)
        if issuer.kind == "spiffe" and token_type != JWT_TOKEN_TYPE:
            raise _refuse("a jwt-svid must be presented as token-type:jwt")
        await self._check_signature(jws, issuer)
        exp = self._check_times(claims, issuer)
        self._check_identity(claims, issuer, spiffe_id)
        derived = {"$issuer": issuer.name}
        if spiffe_id is not None:
            derived |= {
                "$trust_domain": spiffe_id.trust_domain,
                "$path": spiffe_id.path.removeprefix("/"),
            }
        mapped = map_claims(issuer.rules, claims, derived, issuer=issuer.name)
        jti = claims.get("jti")
        token_id = jti if isinstance(jti, str) else None
        expires_at = dt.datetime.fromtimestamp(exp, dt.UTC)
        single_use = self._single_use(issuer, token_id, exp)
        return FederatedIdentity(
            issuer=issuer.selector,
            issuer_name=issuer.name,
            subject=str(claims["sub"]),
            name=mapped.name,
            tenant=mapped.tenant,
            labels=mapped.labels,
            method=issuer.method,
            register_on_first_use=issuer.register_on_first_use,
            token_id=token_id,
            expires_at=expires_at,
            single_use=single_use,
        )

    @staticmethod
    async def _check_signature(jws: CompactJWS, issuer: TrustedIssuer) -> None:
        header = jws.header
        if any(name in header for name in _KEY_HEADERS):
            raise _refuse("token header names or carries a key; keys come from config")
        typ = header.get("typ")
        allowed = _SPIFFE_TYPES if issuer.kind == "spiffe" else _TYPES
        if typ is not None and (not isinstance(typ, str) or typ.lower() not in allowed):
            raise _refuse("token typ is not an identity token")
        algorithm = canonical_algorithm(header.get("alg"))
        if algorithm is None or algorithm not in issuer.algorithms:
            raise _refuse(f"token algorithm is not pinned for issuer {issuer.name}")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise _refuse("token has no kid")
        key = await issuer.keys.key_for(kid)
        # RFC 8725 §3.1: the key's own algorithm decides.
        if not algorithm_matches(header.get("alg"), key.algorithm):
            raise _refuse("token algorithm does not match its signing key")
        if not verify_signature(jws, key.key, key.algorithm):
            raise _refuse("token signature is invalid")

    def _check_times(self, claims: Mapping[str, Any], issuer: TrustedIssuer) -> float:
        now = self._clock.now().timestamp()
        leeway = self._leeway
        exp = _number(claims, "exp")
        if exp is None:
            raise _refuse("token has no valid exp")
        if exp <= now - leeway:
            raise _refuse("token has expired")
        iat = _number(claims, "iat")
        if "iat" in claims and iat is None:
            raise _refuse("token has no valid iat")
        if iat is None and issuer.kind == "oidc":
            # OpenID Connect Core §2: an ID token always says when it was issued.
            raise _refuse("token has no valid iat")
        if iat is not None and iat > now + leeway:
            raise _refuse("token was issued in the future")
        if "nbf" in claims:
            nbf = _number(claims, "nbf")
            if nbf is None or nbf > now + leeway:
                raise _refuse("token is not yet valid")
        # The cap bounds both the issued lifetime and what is left of it, so a
        # token without iat cannot be long-lived either.
        cap = issuer.max_lifetime.total_seconds() + leeway
        start = iat if iat is not None else now
        if exp - start > cap or exp - now > cap:
            raise _refuse(f"token lifetime exceeds the cap of issuer {issuer.name}")
        return exp

    @staticmethod
    def _check_identity(
        claims: Mapping[str, Any], issuer: TrustedIssuer, spiffe_id: SpiffeId | None
    ) -> None:
        if issuer.issuer is not None and claims.get("iss") != issuer.issuer:
            raise _refuse("token issuer is not trusted")  # pragma: no cover - selected
        audience = claims.get("aud")
        if isinstance(audience, list):
            # RFC 8725 §3.9 / JWT-SVID §6.2: one audience, or the token could be
            # replayed by any other audience it names.
            if len(audience) != 1:
                raise _refuse("token must have exactly one audience")
            audience = audience[0]
        if audience != issuer.audience:
            raise _refuse(f"token audience is not the one of issuer {issuer.name}")
        subject = claims.get("sub")
        if not isinstance(subject, str) or not 0 < len(subject) <= _MAX_SUBJECT:
            raise _refuse("token has no valid sub")
        if issuer.kind == "spiffe":
            _check_spiffe_id(spiffe_id, issuer)
        jti = claims.get("jti")
        if jti is not None and not (isinstance(jti, str) and 0 < len(jti) <= _MAX_JTI):
            raise _refuse("token has no valid jti")

    def _single_use(
        self, issuer: TrustedIssuer, token_id: str | None, exp: float
    ) -> SingleUse | None:
        if not issuer.single_use:
            return None
        if token_id is None:
            raise _refuse(f"issuer {issuer.name} requires a jti (single use)")
        single_use = SingleUse(
            "federated",
            f"{issuer.name}:{token_id}",
            dt.datetime.fromtimestamp(exp + self._leeway, dt.UTC),
        )
        replay = self._replay
        if replay is not None and replay.seen(
            single_use.namespace, single_use.value, single_use.expires_at
        ):
            raise _refuse("identity token replayed")
        return single_use
