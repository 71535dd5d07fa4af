"""
Trusted issuers: each ``[[identity.issuers]]`` table, compiled once at start.

A :class:`TrustedIssuer` holds what verification needs: the ``iss`` (or SPIFFE trust
domain) that selects it, the one audience its tokens must carry, the pinned
algorithms, the lifetime cap, the claim rules and its cached keys.
"""

from __future__ import annotations

import datetime as dt
import functools
import ipaddress
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import httpcore

from gatepass.clock import Clock
from gatepass.identity.addresses import Resolver
from gatepass.identity.fetch import DocumentFetcher, FetchLimits
from gatepass.identity.keycache import IssuerKeys, read_key_file
from gatepass.identity.keysets import parse_key_set
from gatepass.identity.rules import ClaimRule
from gatepass.identity.settings import IdentitySettings, IssuerSettings
from gatepass.tokens import canonical_algorithm

__all__ = ["OIDC_METHOD", "SPIFFE_METHOD", "TrustedIssuer", "build_issuers"]

OIDC_METHOD = "oidc"
SPIFFE_METHOD = "spiffe-jwt-svid"


@dataclass(frozen=True, slots=True, kw_only=True)
class TrustedIssuer:
    """
    One configured issuer, ready to verify its tokens.

    Attributes:
        name: the table's name (``github``, ``prod-cluster``).
        kind: ``oidc`` or ``spiffe``.
        issuer: the exact ``iss`` its tokens carry; None for a SPIFFE issuer
            whose JWT-SVIDs carry none.
        trust_domain: the SPIFFE trust domain, for ``spiffe`` issuers.
        audience: the one audience its tokens must carry.
        algorithms: the pinned algorithms (``Ed25519`` written as ``EdDSA``).
        max_lifetime: the longest token lifetime accepted.
        single_use: whether each token (its ``jti``) may open one task only.
        register_on_first_use: whether an unknown subject becomes an agent.
        rules: the claim rules, in order.
        keys: the issuer's cached keys.
    """

    name: str
    kind: Literal["spiffe", "oidc"]
    issuer: str | None
    trust_domain: str | None
    audience: str
    algorithms: frozenset[str]
    max_lifetime: dt.timedelta
    single_use: bool
    register_on_first_use: bool
    rules: tuple[ClaimRule, ...]
    keys: IssuerKeys

    @property
    def method(self) -> str:
        """Return the identity method recorded for its agents."""
        return SPIFFE_METHOD if self.kind == "spiffe" else OIDC_METHOD

    @property
    def selector(self) -> str:
        """Return the issuer marker: the ``iss``, else ``spiffe://<trust domain>``."""
        return self.issuer or f"spiffe://{self.trust_domain}"


def _loader(
    table: IssuerSettings,
    identity: IdentitySettings,
    *,
    resolver: Resolver | None,
    backend: httpcore.AsyncNetworkBackend | None,
) -> Callable[[], Awaitable[bytes]]:
    limits = FetchLimits(
        timeout=dt.timedelta(seconds=identity.fetch_timeout_seconds),
        max_bytes=identity.max_document_bytes,
    )
    url = table.key_url
    if url is not None:
        fetcher = DocumentFetcher(
            limits=limits,
            resolver=resolver,
            allowed_networks=[ipaddress.ip_network(n) for n in table.allowed_networks],
            allow_http_loopback=table.allow_http_loopback,
            ca_file=table.ca_file,
            backend=backend,
        )
        return functools.partial(fetcher.fetch, url)
    path = table.key_file
    if path is None:  # pragma: no cover - the settings require one source
        raise ValueError("issuer has no key source")
    return functools.partial(read_key_file, path, limits.max_bytes)


def build_issuers(
    identity: IdentitySettings,
    *,
    clock: Clock,
    resolver: Resolver | None = None,
    backend: httpcore.AsyncNetworkBackend | None = None,
) -> list[TrustedIssuer]:
    """
    Compile the configured issuers.

    Args:
        identity: the ``[identity]`` settings.
        clock: the time source of the key caches.
        resolver: resolves key-server names (the system resolver by default).
        backend: the socket layer of the fetchers (tests may wrap it).

    Returns:
        The issuers, in configuration order; nothing is fetched yet.
    """
    issuers: list[TrustedIssuer] = []
    for table in identity.issuers:
        algorithms = frozenset(
            canonical_algorithm(name) or name for name in table.algorithms
        )
        keys = IssuerKeys(
            issuer=table.name,
            load=_loader(table, identity, resolver=resolver, backend=backend),
            parse=functools.partial(
                parse_key_set,
                algorithms=algorithms,
                max_keys=identity.max_keys,
                spiffe_bundle=table.is_spiffe_bundle,
            ),
            clock=clock,
            refresh_interval=dt.timedelta(seconds=table.refresh_interval_seconds),
            min_refetch_interval=dt.timedelta(
                seconds=identity.min_refetch_interval_seconds
            ),
            max_stale=dt.timedelta(seconds=identity.max_stale_seconds),
        )
        issuers.append(
            TrustedIssuer(
                name=table.name,
                kind=table.kind,
                issuer=table.issuer,
                trust_domain=table.trust_domain,
                audience=table.audience,
                algorithms=algorithms,
                max_lifetime=dt.timedelta(seconds=table.max_token_lifetime_seconds),
                single_use=table.single_use,
                register_on_first_use=table.on_unknown_subject == "register",
                rules=tuple(rule.compile() for rule in table.rules),
                keys=keys,
            )
        )
    return issuers


def issuers_by_selector(issuers: Sequence[TrustedIssuer]) -> dict[str, TrustedIssuer]:
    """
    Index issuers by what selects them.

    Args:
        issuers: the compiled issuers.

    Returns:
        ``iss`` → issuer, and ``spiffe://<trust domain>`` → the SPIFFE issuer
        whose JWT-SVIDs carry no ``iss``.
    """
    return {issuer.selector: issuer for issuer in issuers}
