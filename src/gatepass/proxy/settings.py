"""
The proxy's configuration: one TOML file, parsed and validated once at start.

The file has a ``[proxy]`` table (where the proxy listens, the origin agents call,
the broker it trusts) and one ``[[routes]]`` table per upstream. Every problem is
reported with its location in the file (``routes[1].prefix: ...``) and stops the
start (exit code 78), like the broker's own configuration.
"""

from __future__ import annotations

import ipaddress
import itertools
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from gatepass.documents import read_toml, validate_document
from gatepass.proxy.compartments import UpstreamAuth
from gatepass.proxy.encodings import DECODABLE_ENCODINGS
from gatepass.proxy.rules import RuleSet

__all__ = [
    "MIB",
    "RESERVED_PATHS",
    "ProxyServerSettings",
    "ProxySettings",
    "RouteSettings",
    "load_proxy_settings",
    "parse_proxy_settings",
]

MIB = 1_048_576
_NAME = r"^[a-z0-9][a-z0-9._-]{0,63}$"
# A prefix is one or more plain path segments between slashes: no dot segments, no
# percent-encoding and no empty segment, so that the prefix a request matched by its
# raw path is the same prefix its normalised path lies under.
_PREFIX = re.compile(r"^/(?:[A-Za-z0-9_~-][A-Za-z0-9._~-]*/)+$")
_HEADER_NAME = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$"
# Paths the proxy answers itself; a route prefix may not cover them.
RESERVED_PATHS = frozenset({"/healthz", "/metrics"})


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _origin(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError("must be an http(s) URL such as https://proxy.example")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not carry user info")
    if parts.query or parts.fragment or parts.path not in {"", "/"}:
        raise ValueError("must be an origin without path, query or fragment")
    return f"{parts.scheme}://{parts.netloc}"


def _is_loopback(host: str) -> bool:
    # RFC 6761 §6.3: "localhost" names the loopback interface.
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ProxyServerSettings(_Section):
    """Where the proxy listens, what it calls itself and which broker it trusts."""

    host: str = "127.0.0.1"
    port: int = Field(default=8402, ge=1, le=65535)
    public_url: str
    broker: str
    api_token_file: Path = Path(".gatepass/proxy.token")
    revocation: Literal["stream", "poll"] = "stream"
    poll_interval_seconds: float = Field(default=2.0, ge=0, le=60)
    token_max_lifetime_seconds: int = Field(default=900, ge=60, le=86_400)
    max_header_bytes: int = Field(default=16_384, ge=1024, le=65_536)
    audit_queue_size: int = Field(default=10_000, ge=100, le=1_000_000)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # The library that calls upstreams (docs/performance.md measures both).
    upstream_client: Literal["aiohttp", "httpx"] = "aiohttp"
    # Where spent DPoP proofs are remembered: this process ("memory"), or a Redis
    # every proxy process behind one address shares ("redis", with redis_url).
    replay: Literal["memory", "redis"] = "memory"
    redis_url: str | None = None
    redis_prefix: str = Field(default="gatepass:proxy:dpop:", min_length=1)
    # Several `gatepass proxy` processes on one port (SO_REUSEPORT: the kernel
    # spreads connections over them); only with the shared replay ledger.
    reuse_port: bool = False

    @field_validator("public_url", "broker")
    @classmethod
    def _is_origin(cls, value: str) -> str:
        return _origin(value)

    @model_validator(mode="after")
    def _redis_for_shared_replay(self) -> Self:
        if self.replay == "redis" and not self.redis_url:
            raise ValueError('replay = "redis" needs redis_url = "redis://host:6379/0"')
        if self.redis_url is not None and urlsplit(self.redis_url).scheme not in {
            "redis",
            "rediss",
            "unix",
        }:
            raise ValueError("redis_url must be a redis://, rediss:// or unix:// URL")
        if self.reuse_port and self.replay != "redis":
            # Processes sharing a port must share their spent proofs (RFC 9449
            # §11.1), or a proof accepted by one is accepted again by the next.
            raise ValueError('reuse_port = true needs replay = "redis" and redis_url')
        return self


class RouteSettings(_Section):
    """One upstream reached under a path prefix of the proxy."""

    name: Annotated[str, Field(pattern=_NAME)]
    prefix: str
    target: str
    upstream: str
    allow_plain_http: bool = False
    accept_encoding: list[Literal["gzip", "deflate", "br"]] = Field(
        default_factory=list, max_length=3
    )
    auth: UpstreamAuth
    rules: dict[
        Annotated[str, Field(pattern=r"^[a-z][a-z0-9_.:-]{0,63}$")],
        list[str],
    ] = Field(min_length=1, max_length=32)
    allowed_headers: list[Annotated[str, Field(pattern=_HEADER_NAME)]] = Field(
        default_factory=list, max_length=64
    )
    max_body_bytes: int = Field(default=MIB, ge=0, le=1024 * MIB)
    timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    rate_per_lease: float = Field(default=10.0, gt=0, le=100_000)
    burst_per_lease: int = Field(default=20, ge=1, le=100_000)
    rate_per_route: float = Field(default=100.0, gt=0, le=1_000_000)
    burst_per_route: int = Field(default=200, ge=1, le=1_000_000)

    @field_validator("prefix")
    @classmethod
    def _plain_prefix(cls, value: str) -> str:
        if not _PREFIX.match(value) or any(
            segment in {".", ".."} for segment in value.split("/")
        ):
            raise ValueError(
                "must be plain path segments between slashes, such as /tickets-saas/"
            )
        if value.rstrip("/") in RESERVED_PATHS:
            raise ValueError("is reserved for the proxy's own endpoints")
        return value

    @field_validator("target")
    @classmethod
    def _target_uri(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError("must be an absolute http(s) URI")
        if parts.query or parts.fragment:
            raise ValueError("must have no query or fragment")
        return value

    @field_validator("upstream")
    @classmethod
    def _upstream_base(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError("must be an absolute http(s) URL")
        if parts.username is not None or parts.password is not None:
            raise ValueError("must not carry user info; put credentials in [auth]")
        if parts.query or parts.fragment:
            raise ValueError("must have no query or fragment")
        return value

    @model_validator(mode="after")
    def _secret_travels_encrypted(self) -> Self:
        # The route's secret goes to the upstream with every request: over plain
        # http anyone on the path reads it (RFC 9110 §4.2.2, RFC 6750 §5.3). Only a
        # loopback upstream, for development, may opt out, and only explicitly.
        scheme = urlsplit(self.upstream).scheme
        host = urlsplit(self.upstream).hostname or ""
        if scheme == "http" and not self.allow_plain_http:
            raise ValueError(
                f"route {self.name!r}: upstream uses plain http, which would send "
                "the route's secret unencrypted; use https, or set "
                "allow_plain_http = true for a loopback development upstream"
            )
        if scheme == "http" and not _is_loopback(host):
            raise ValueError(
                f"route {self.name!r}: allow_plain_http is accepted only for a "
                "loopback upstream (127.0.0.1, ::1 or localhost)"
            )
        return self

    @field_validator("accept_encoding")
    @classmethod
    def _decodable(cls, value: list[str]) -> list[str]:
        if not set(value) <= DECODABLE_ENCODINGS:
            raise ValueError("the proxy cannot decode one of these encodings")
        return sorted(set(value), key=value.index)

    @field_validator("rules")
    @classmethod
    def _rules_parse(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        try:
            RuleSet.from_mapping(value)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"invalid rule: {exc}") from None
        return value

    @field_validator("allowed_headers")
    @classmethod
    def _lower_headers(cls, value: list[str]) -> list[str]:
        return sorted({name.lower() for name in value})

    def rule_set(self) -> RuleSet:
        """Return the parsed rules."""
        return RuleSet.from_mapping(self.rules)

    def upstream_url(self, relative_path: str) -> str:
        """
        Return the upstream URL of a path relative to the prefix.

        Args:
            relative_path: the normalised path after the prefix, starting with ``/``.

        Returns:
            The upstream base joined with the path.
        """
        return self.upstream.rstrip("/") + "/" + relative_path.lstrip("/")


def _default_targets(data: Any) -> Any:  # noqa: ANN401 - raw TOML before validation
    # A route's target (the access token's audience) defaults to public_url + prefix.
    if not isinstance(data, dict):
        return data
    proxy = data.get("proxy")
    routes = data.get("routes")
    public_url = proxy.get("public_url") if isinstance(proxy, dict) else None
    if not isinstance(public_url, str) or not isinstance(routes, list):
        return data
    filled = []
    for route in routes:
        if isinstance(route, dict) and "target" not in route:
            prefix = route.get("prefix")
            if isinstance(prefix, str):
                route = {**route, "target": public_url.rstrip("/") + prefix}  # noqa: PLW2901
        filled.append(route)
    return {**data, "routes": filled}


class ProxySettings(_Section):
    """The whole proxy configuration file."""

    proxy: ProxyServerSettings
    routes: list[RouteSettings] = Field(min_length=1, max_length=1000)

    @model_validator(mode="before")
    @classmethod
    def _fill_targets(cls, data: Any) -> Any:  # noqa: ANN401 - raw TOML
        return _default_targets(data)

    @field_validator("routes")
    @classmethod
    def _distinct_routes(cls, value: list[RouteSettings]) -> list[RouteSettings]:
        for attribute in ("name", "target"):
            seen: set[str] = set()
            for route in value:
                key = getattr(route, attribute)
                if key in seen:
                    raise ValueError(f"duplicate route {attribute} {key!r}")
                seen.add(key)
        prefixes = sorted(route.prefix for route in value)
        # Sorted, a prefix that covers another comes right before it.
        for shorter, longer in itertools.pairwise(prefixes):
            if longer.startswith(shorter):
                raise ValueError(f"route prefixes {shorter!r} and {longer!r} overlap")
        return value

    @property
    def public_url(self) -> str:
        """The origin agents call, from which DPoP ``htu`` values are rebuilt."""
        return self.proxy.public_url

    @property
    def broker(self) -> str:
        """The broker's issuer URL."""
        return self.proxy.broker


def parse_proxy_settings(raw: dict[str, Any], *, source: str) -> ProxySettings:
    """
    Validate an already parsed configuration.

    Args:
        raw: the TOML document as a dict.
        source: where it came from, for the messages.

    Returns:
        The validated settings.

    Raises:
        ConfigurationError: the document is invalid; the message names every
            problem with its location.
    """
    return validate_document(ProxySettings, raw, source=source)


def load_proxy_settings(path: Path) -> ProxySettings:
    """
    Read and validate a proxy configuration file.

    Args:
        path: the TOML file.

    Returns:
        The validated settings.

    Raises:
        ConfigurationError: the file is missing, not TOML, or invalid; the message
            names every problem with its location.
    """
    return parse_proxy_settings(read_toml(path), source=str(path))
