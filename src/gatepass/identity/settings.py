"""
The ``[identity]`` section of the configuration: trusted workload-identity issuers.

Declared here, beside the verifiers that use them, and included in
``gatepass.config.Settings``; each table is validated once at start with the same
checks the verifiers rely on (a claim rule that compiles, exactly one key source,
a fetch URL the fetcher will accept).
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gatepass.errors import FetchError
from gatepass.identity.fetch import check_fetch_url
from gatepass.identity.presets import PRESETS, apply_preset
from gatepass.identity.rules import ClaimRule
from gatepass.identity.spiffe import parse_trust_domain

__all__ = [
    "ClaimRuleSettings",
    "FederatedAlgorithm",
    "IdentitySettings",
    "IssuerSettings",
]

Name = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


FederatedAlgorithm = Literal["ES256", "ES384", "EdDSA", "Ed25519", "PS256", "RS256"]


class ClaimRuleSettings(_Section):
    """
    One claim rule of a trusted issuer ([[identity.issuers.rules]]).

    ``match`` maps claim paths to a pattern or a list of patterns; ``name``,
    ``tenant`` and ``labels`` are templates (see ``gatepass.identity.rules``).
    """

    match: dict[str, str | list[str]] = Field(default_factory=dict, max_length=32)
    name: str = Field(default="{sub}", min_length=1, max_length=512)
    tenant: str = Field(min_length=1, max_length=512)
    labels: dict[str, str] = Field(default_factory=dict, max_length=32)

    @model_validator(mode="after")
    def _compiles(self) -> ClaimRuleSettings:
        self.compile()
        return self

    def compile(self) -> ClaimRule:
        """
        Return the compiled rule.

        Raises:
            ValueError: a path, pattern, template or label key is not valid.
        """
        return ClaimRule.compile(
            match=self.match, name=self.name, tenant=self.tenant, labels=self.labels
        )


class IssuerSettings(_Section):
    """
    One trusted workload-identity issuer ([[identity.issuers]]).

    ``preset`` (``kubernetes``, ``github-actions``, ``gitlab-ci``, ``spire``) fills in
    defaults; everything written in the table wins. Keys come from exactly one of
    ``jwks_uri``, ``jwks_file``, ``bundle_endpoint`` or ``bundle_file``.
    """

    name: Name
    preset: Literal["kubernetes", "github-actions", "gitlab-ci", "spire"] | None = None
    kind: Literal["spiffe", "oidc"]
    issuer: str | None = Field(default=None, min_length=1, max_length=2048)
    trust_domain: str | None = None
    jwks_uri: str | None = None
    jwks_file: Path | None = None
    bundle_endpoint: str | None = None
    bundle_file: Path | None = None
    ca_file: Path | None = None
    allow_http_loopback: bool = False
    allowed_networks: list[str] = Field(default_factory=list, max_length=64)
    audience: str = Field(min_length=1, max_length=2048)
    algorithms: list[FederatedAlgorithm] = Field(min_length=1, max_length=6)
    max_token_lifetime_seconds: int = Field(default=900, ge=60, le=86_400)
    single_use: bool = False
    on_unknown_subject: Literal["register", "refuse"] = "refuse"
    refresh_interval_seconds: int = Field(default=300, ge=60, le=86_400)
    rules: list[ClaimRuleSettings] = Field(min_length=1, max_length=256)

    @model_validator(mode="before")
    @classmethod
    def _preset(cls, value: object) -> object:
        return apply_preset(value) if isinstance(value, dict) else value

    @model_validator(mode="after")
    def _consistent(self) -> IssuerSettings:
        self._check_kind()
        self._check_sources()
        for network in self.allowed_networks:
            ipaddress.ip_network(network)
        if {"RS256", "PS256"} <= set(self.algorithms):
            raise ValueError("pin one RSA algorithm (RS256 or PS256), not both")
        owners = PRESETS[self.preset].owner_claims if self.preset else ()
        for index, rule in enumerate(self.rules):
            if owners and not rule.compile().exact_claims() & set(owners):
                raise ValueError(
                    f"rules[{index}] must match one of {', '.join(owners)} exactly: "
                    "the issuer signs tokens for every user of the service"
                )
        return self

    def _check_kind(self) -> None:
        if self.kind == "oidc":
            if self.issuer is None:
                raise ValueError("an oidc issuer needs issuer (its iss value)")
            if self.trust_domain is not None or self.is_spiffe_bundle:
                raise ValueError("trust_domain and bundles are for spiffe issuers")
        else:
            if self.trust_domain is None:
                raise ValueError("a spiffe issuer needs trust_domain")
            parse_trust_domain(self.trust_domain)

    def _check_sources(self) -> None:
        sources = [
            source
            for source in (
                self.jwks_uri,
                self.jwks_file,
                self.bundle_endpoint,
                self.bundle_file,
            )
            if source is not None
        ]
        if len(sources) != 1:
            raise ValueError(
                "give exactly one of jwks_uri, jwks_file, bundle_endpoint, bundle_file"
            )
        url = self.jwks_uri or self.bundle_endpoint
        if url is not None:
            try:
                check_fetch_url(url, allow_http_loopback=self.allow_http_loopback)
            except FetchError as error:
                raise ValueError(error.detail) from None

    @property
    def key_url(self) -> str | None:
        """Return the URL keys are fetched from, if they are fetched."""
        return self.jwks_uri or self.bundle_endpoint

    @property
    def key_file(self) -> Path | None:
        """Return the file keys are read from, if they are read from a file."""
        return self.jwks_file or self.bundle_file

    @property
    def is_spiffe_bundle(self) -> bool:
        """Tell whether the key document is a SPIFFE bundle (``use: jwt-svid``)."""
        return self.bundle_endpoint is not None or self.bundle_file is not None

    @property
    def selector(self) -> str:
        """Return what selects this table: its ``iss``, else its SPIFFE trust domain."""
        return self.issuer or f"spiffe://{self.trust_domain}"


class IdentitySettings(_Section):
    """Workload identity federation: trusted issuers and how their keys are fetched."""

    issuers: list[IssuerSettings] = Field(default_factory=list, max_length=64)
    fetch_timeout_seconds: float = Field(default=2.0, gt=0, le=10)
    max_document_bytes: int = Field(default=65_536, ge=1024, le=1_048_576)
    max_keys: int = Field(default=32, ge=1, le=256)
    min_refetch_interval_seconds: int = Field(default=60, ge=1, le=3600)
    max_stale_seconds: int = Field(default=3600, ge=60, le=604_800)

    @field_validator("issuers")
    @classmethod
    def _unique(cls, value: list[IssuerSettings]) -> list[IssuerSettings]:
        names: set[str] = set()
        selectors: set[str] = set()
        for issuer in value:
            if issuer.name in names:
                raise ValueError(f"duplicate issuer name {issuer.name!r}")
            if issuer.selector in selectors:
                raise ValueError(f"two issuers select tokens of {issuer.selector!r}")
            names.add(issuer.name)
            selectors.add(issuer.selector)
        return value
