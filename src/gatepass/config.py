"""
The broker's configuration: one TOML file, parsed and validated once at start.

Relative paths resolve against the working directory, so the quickstart runs from the
repository root. Every problem is reported with its location in the file
(``targets[1].max_ttl_seconds: ...``) and stops the start (exit code 78).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from gatepass.approvals import ApprovalSettings
from gatepass.documents import read_toml, validate_document
from gatepass.identity import ClaimRuleSettings, IdentitySettings, IssuerSettings
from gatepass.models import Target
from gatepass.ssf.rules import SignalRuleSettings, SignalSettings, TransmitterSettings

__all__ = [
    "AuditSettings",
    "ClaimRuleSettings",
    "ConsoleOIDCSettings",
    "ConsoleSettings",
    "DPoPSettings",
    "DelegationSettings",
    "DemoSettings",
    "EngineSettings",
    "IdentitySettings",
    "IssuerSettings",
    "PolicySettings",
    "ReuseRuleSettings",
    "ReuseSettings",
    "SSFSettings",
    "ServerSettings",
    "Settings",
    "SignalRuleSettings",
    "SignalSettings",
    "StoreSettings",
    "TLSSettings",
    "TargetSettings",
    "TokenSettings",
    "TransmitterSettings",
    "load_settings",
]

_NAME = r"^[a-z0-9][a-z0-9._-]{0,63}$"
Name = Annotated[str, Field(pattern=_NAME)]
Seconds = Annotated[int, Field(ge=1, le=86_400)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TLSSettings(_Section):
    """
    ``[server.tls]``: the broker terminates TLS (and may ask for client certificates).

    With ``client_ca_file``, a client certificate verified against it binds the
    tokens issued over that connection (RFC 8705: ``cnf.x5t#S256``).
    """

    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None
    client_certificates: Literal["none", "optional", "required"] = "optional"


class ServerSettings(_Section):
    """Where the broker listens and what it calls itself."""

    issuer: str = "http://127.0.0.1:8400"
    host: str = "127.0.0.1"
    port: int = Field(default=8400, ge=1, le=65535)
    state_dir: Path = Path(".gatepass")
    max_body_bytes: int = Field(default=65_536, ge=1024, le=10_485_760)
    max_inflight_token_requests: int = Field(default=16, ge=1, le=1024)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # RFC 8414 service_documentation: where operators and clients read the API.
    service_documentation: str = (
        "https://github.com/gatepass/gatepass/blob/main/docs/api.md"
    )
    tls: TLSSettings | None = None

    @model_validator(mode="before")
    @classmethod
    def _issuer_from_address(cls, data: object) -> object:
        # The port lives in one place: without an issuer, the broker is named by
        # the address it listens on (set one behind TLS or on 0.0.0.0).
        if isinstance(data, dict) and "issuer" not in data:
            host = str(data.get("host", "127.0.0.1"))
            port = data.get("port", 8400)
            shown = f"[{host}]" if ":" in host else host
            return {**data, "issuer": f"http://{shown}:{port}"}
        return data

    @field_validator("issuer")
    @classmethod
    def _issuer_is_origin(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise ValueError("must be an http(s) URL such as https://gatepass.example")
        if parts.query or parts.fragment or parts.path not in {"", "/"}:
            raise ValueError("must be an origin without path, query or fragment")
        return f"{parts.scheme}://{parts.netloc}"


class StoreSettings(_Section):
    """The database: SQLite (embedded default) or PostgreSQL."""

    url: str | None = None
    pool_size: int = Field(default=10, ge=1, le=200)

    @field_validator("url")
    @classmethod
    def _supported_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(
            ("sqlite:///", "postgresql://", "postgresql+psycopg://")
        ):
            raise ValueError("must start with sqlite:/// or postgresql+psycopg://")
        return value.replace("postgresql://", "postgresql+psycopg://", 1)


class TokenSettings(_Section):
    """Lifetimes and algorithms of the tokens the broker signs."""

    algorithm: Literal["ES256", "EdDSA"] = "ES256"
    task_default_ttl_seconds: Seconds = 900
    task_max_ttl_seconds: Seconds = 3600
    access_default_ttl_seconds: Seconds = 300
    access_max_ttl_seconds: Seconds = 900
    key_retire_after_seconds: Seconds = 7200
    assertion_max_lifetime_seconds: int = Field(default=300, ge=10, le=3600)
    clock_leeway_seconds: int = Field(default=30, ge=0, le=300)


class DPoPSettings(_Section):
    """RFC 9449 proof checks."""

    require_nonce: bool = False
    max_age_seconds: int = Field(default=60, ge=5, le=600)
    nonce_lifetime_seconds: int = Field(default=300, ge=10, le=3600)


class PolicySettings(_Section):
    """Where the Cedar policies live and how often they are checked for changes."""

    directory: Path = Path("policies")
    reload_interval_seconds: int = Field(default=5, ge=0, le=3600)


class AuditSettings(_Section):
    """How often the audit chain head is signed."""

    checkpoint_interval_seconds: int = Field(default=10, ge=1, le=3600)


class EngineSettings(_Section):
    """How the broker drives secret engines."""

    call_timeout_seconds: int = Field(default=10, ge=1, le=300)
    reap_interval_seconds: int = Field(default=30, ge=1, le=86_400)


class TargetSettings(_Section):
    """One target, as written in the file."""

    name: Name
    uri: str
    kind: Literal["http", "postgres", "redis", "ssh"] = "http"
    environment: Name
    tenant: Name
    risk: Literal["low", "medium", "high"] = "low"
    actions: list[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_.:-]{0,63}$")]] = Field(
        min_length=1, max_length=32
    )
    max_ttl_seconds: Seconds = 900
    # The engine's own settings ([targets.engine]); each engine validates them.
    engine: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _absolute_uri(self) -> TargetSettings:
        parts = urlsplit(self.uri)
        # RFC 8707 §2: a resource indicator is an absolute URI without a fragment.
        # Tokens for http targets are checked by resource servers, so those must be
        # http(s); engine targets name their system (postgresql://, redis://, ssh://).
        web = parts.scheme in {"http", "https"}
        if not parts.scheme or not parts.netloc or parts.fragment:
            raise ValueError("uri must be an absolute URI without a fragment")
        if self.kind == "http" and not web:
            raise ValueError("uri of an http target must be an http(s) URI")
        return self

    def to_target(self) -> Target:
        """Return the runtime record."""
        return Target(
            name=self.name,
            uri=self.uri,
            kind=self.kind,
            environment=self.environment,
            tenant=self.tenant,
            risk=self.risk,
            actions=tuple(self.actions),
            max_ttl=dt.timedelta(seconds=self.max_ttl_seconds),
        )


class DelegationSettings(_Section):
    """
    ``[delegation]``: how deep a chain of agents may grow, how long a grant lives.

    A delegation token is single use and lives ``grant_ttl_seconds`` (the child
    must accept it within that time); a chain is at most ``max_depth`` hops below
    its root task.
    """

    max_depth: int = Field(default=4, ge=1, le=16)
    grant_ttl_seconds: int = Field(default=120, ge=10, le=600)


class DemoSettings(_Section):
    """The quickstart's demo agent and resource server."""

    enabled: bool = False
    agent_name: Name = "demo-agent"
    tenant: Name = "acme"
    labels: dict[str, str] = Field(default_factory=dict)
    resource_port: int = Field(default=8401, ge=1, le=65535)
    resource_target: Name = "tickets"
    # The target `gatepass demo --approval` asks to write to (it needs approval).
    approval_target: Name = "tickets-prod"


class SSFSettings(_Section):
    """
    ``[ssf]``: the Shared Signals transmitter (docs/ssf.md).

    Receivers (resource servers and other systems, each with an ``ssf_receiver``
    API token limited to some targets) subscribe to CAEP events about the access
    tokens those targets accept. ``push_http_hosts`` are the only hosts a push
    stream may use over plain http (say ``127.0.0.1`` for a receiver on the same
    machine); every other push endpoint must be https and one of ``push_hosts``
    (deny by default: with both lists empty, streams can only poll).
    """

    enabled: bool = True
    poll_wait_seconds: int = Field(default=20, ge=1, le=40)
    max_poll_events: int = Field(default=100, ge=1, le=1000)
    push_timeout_seconds: int = Field(default=5, ge=1, le=60)
    push_max_attempts: int = Field(default=10, ge=1, le=100)
    push_hosts: list[str] = Field(default_factory=list, max_length=1000)
    push_http_hosts: list[str] = Field(default_factory=list, max_length=100)
    max_streams_per_receiver: int = Field(default=16, ge=1, le=1000)
    inactivity_timeout_seconds: int = Field(default=86_400, ge=60, le=2_592_000)


# --- console (issue 13) ---------------------------------------------------------


_IdTokenAlgorithm = Literal["RS256", "PS256", "ES256", "EdDSA"]


class ConsoleOIDCSettings(_Section):
    """
    ``[console.oidc]``: sign operators in with an OpenID Connect provider.

    Authorization code flow with PKCE (S256). The client authenticates with a
    secret read from ``client_secret_file`` or, with ``private_key_file`` (a
    private JWK), by ``private_key_jwt``. The ID token's claim named by ``claim``
    is looked up in ``operators`` (claim value -> operator name); an ``email``
    claim counts only with ``email_verified`` true.
    """

    issuer: str
    client_id: Annotated[str, Field(min_length=1, max_length=255)]
    client_secret_file: Path | None = None
    private_key_file: Path | None = None
    redirect_uri: str
    scopes: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]] = Field(
        default_factory=lambda: ["openid", "email"]
    )
    algorithms: list[_IdTokenAlgorithm] = Field(
        default_factory=lambda: list[_IdTokenAlgorithm](["RS256", "ES256"]),
        min_length=1,
    )
    claim: Literal["sub", "email"] = "email"
    operators: dict[str, Name] = Field(default_factory=dict)

    @field_validator("issuer", "redirect_uri")
    @classmethod
    def _web_url(cls, value: str) -> str:
        parts = urlsplit(value)
        local = parts.hostname in {"127.0.0.1", "localhost", "::1"}
        if parts.scheme != "https" and not (parts.scheme == "http" and local):
            raise ValueError("must be an https URL (http only for a local address)")
        if parts.fragment or not parts.netloc:
            raise ValueError("must be an absolute URL without a fragment")
        return value.rstrip("/") if value.endswith("/") and parts.path == "/" else value

    @model_validator(mode="after")
    def _one_client_credential(self) -> ConsoleOIDCSettings:
        if (self.client_secret_file is None) == (self.private_key_file is None):
            raise ValueError("give exactly one of client_secret_file, private_key_file")
        if "openid" not in self.scopes:
            raise ValueError("scopes must include openid")
        return self


class ConsoleSettings(_Section):
    """
    ``[console]``: the web console at ``/console``.

    Sessions live ``session_ttl_seconds``; a one-time login link
    (``gatepass console login``) lives ``link_ttl_seconds``, at most five minutes.
    ``bootstrap_operator`` names the admin operator a link is made for when the
    admin token asks without naming one (the quickstart sets it); without it, the
    operator must be named.
    """

    enabled: bool = True
    session_ttl_seconds: int = Field(default=28_800, ge=300, le=86_400)
    link_ttl_seconds: int = Field(default=300, ge=30, le=300)
    bootstrap_operator: Name | None = None
    oidc: ConsoleOIDCSettings | None = None


# --- signals-in (issue 14): credential reuse rules -------------------------------
ReuseKind = Literal[
    "closed_task_use", "foreign_key", "replayed_proof", "wrong_audience", "two_keys"
]


class ReuseRuleSettings(_Section):
    """
    ``[[reuse.rules]]``: after N reuse events of these kinds in a window, respond.

    Attributes:
        kinds: the ``credential.reuse`` kinds counted (all when empty).
        threshold: how many events of one agent, in the window, trigger it.
        window_seconds: the window.
        response: ``alert`` (audit and log only), ``revoke_task`` (close the
            task the event is about) or ``quarantine`` (disable the agent, close
            its tasks, notify its owners' approver groups by webhook).
        notify_groups: approver groups told of a quarantine besides the owners'.
    """

    kinds: list[ReuseKind] = Field(default_factory=list)
    threshold: int = Field(default=1, ge=1, le=10_000)
    window_seconds: int = Field(default=300, ge=1, le=86_400)
    response: Literal["alert", "revoke_task", "quarantine"] = "alert"
    notify_groups: list[Name] = Field(default_factory=list)


class ReuseSettings(_Section):
    """``[reuse]``: what detected credential reuse leads to (docs/signals.md)."""

    rules: list[ReuseRuleSettings] = Field(default_factory=list, max_length=64)


# --- end signals-in ----------------------------------------------------------------


class Settings(_Section):
    """The whole configuration file."""

    server: ServerSettings = ServerSettings()
    store: StoreSettings = StoreSettings()
    tokens: TokenSettings = TokenSettings()
    dpop: DPoPSettings = DPoPSettings()
    policy: PolicySettings = PolicySettings()
    audit: AuditSettings = AuditSettings()
    engines: EngineSettings = EngineSettings()
    targets: list[TargetSettings] = Field(default_factory=list, max_length=10_000)
    demo: DemoSettings = DemoSettings()
    identity: IdentitySettings = IdentitySettings()
    approvals: ApprovalSettings = ApprovalSettings()
    delegation: DelegationSettings = DelegationSettings()
    ssf: SSFSettings = SSFSettings()
    console: ConsoleSettings = ConsoleSettings()
    signals: SignalSettings = SignalSettings()
    reuse: ReuseSettings = ReuseSettings()

    @model_validator(mode="before")
    @classmethod
    def _demo_port_from_target(cls, data: object) -> object:
        # The demo resource serves its target's URI: without a resource_port, the
        # port is read from that URI, so it is written in one place only.
        if not isinstance(data, dict):
            return data
        demo, targets = data.get("demo"), data.get("targets")
        if not isinstance(demo, dict) or "resource_port" in demo:
            return data
        if not isinstance(targets, list):
            return data
        name = demo.get("resource_target", "tickets")
        for target in targets:
            if isinstance(target, dict) and target.get("name") == name:
                try:
                    port = urlsplit(str(target.get("uri", ""))).port
                except ValueError:
                    return data
                if port is not None:
                    return {**data, "demo": {**demo, "resource_port": port}}
        return data

    @field_validator("targets")
    @classmethod
    def _unique_targets(cls, value: list[TargetSettings]) -> list[TargetSettings]:
        for attribute in ("name", "uri"):
            seen: set[str] = set()
            for target in value:
                key = getattr(target, attribute)
                if key in seen:
                    raise ValueError(f"duplicate target {attribute} {key!r}")
                seen.add(key)
        return value

    @property
    def store_url(self) -> str:
        """Return the database URL, defaulting to SQLite under the state directory."""
        return self.store.url or f"sqlite:///{self.server.state_dir / 'gatepass.db'}"

    @property
    def token_endpoint(self) -> str:
        """Return the token endpoint URL, the ``htu`` of token requests."""
        return f"{self.server.issuer}/token"

    def target_list(self) -> list[Target]:
        """Return the configured targets as runtime records."""
        return [target.to_target() for target in self.targets]


def load_settings(path: Path) -> Settings:
    """
    Read and validate a configuration file.

    Args:
        path: the TOML file.

    Returns:
        The validated settings.

    Raises:
        ConfigurationError: the file is missing, not TOML, or invalid; the message
            names every problem with its location.
    """
    return validate_document(Settings, read_toml(path), source=str(path))
