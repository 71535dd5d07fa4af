"""
``[signals]``: the transmitters gatepass trusts and the rules that map their events.

A rule says which events (by type, optionally only from some transmitters) touch
what (the agent, the owner, the tenant or the environment the event's subject
names) and how: revoke the tasks, set the agent's risk, freeze the environment or
declare an incident for the tenant. :func:`plan` turns one verified event into the
actions of every matching rule; the broker resolves the names and acts::

    [[signals.transmitters]]
    issuer = "https://idp.example.com"
    jwks_file = "idp-ssf-jwks.json"        # or jwks_uri = "https://..."
    audience = "https://gatepass.example.com/ssf"
    algorithms = ["ES256"]
    push_token_file = "idp-push.token"     # optional: Authorization: Bearer

    [[signals.rules]]
    events = ["session-revoked", "account-disabled"]
    match = "agent"                         # agent | owner | tenant | environment
    effect = "revoke_tasks"
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gatepass.ssf.events import SubjectIdentifier, event_uri

__all__ = [
    "Effect",
    "Match",
    "SignalAction",
    "SignalRuleSettings",
    "SignalSettings",
    "TransmitterSettings",
    "plan",
]

Match = Literal["agent", "owner", "tenant", "environment"]
Effect = Literal["revoke_tasks", "set_risk", "freeze_environment", "declare_incident"]
_ALGORITHMS = frozenset({"ES256", "ES384", "EdDSA", "Ed25519", "RS256", "PS256"})
# Which subjects each effect can act on.
_EFFECT_MATCHES: dict[str, frozenset[str]] = {
    "revoke_tasks": frozenset({"agent", "owner", "tenant", "environment"}),
    "set_risk": frozenset({"agent", "owner"}),
    "freeze_environment": frozenset({"environment"}),
    "declare_incident": frozenset({"tenant"}),
}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TransmitterSettings(_Section):
    """
    One SSF transmitter whose SETs are accepted.

    Attributes:
        issuer: the transmitter's ``iss``, compared exactly.
        jwks_file: its JWK Set, read from a file.
        jwks_uri: its JWK Set, fetched from this configured URL (never from a
            URL a SET names), cached and refreshed like identity issuers' keys.
        allow_http_loopback: allow an ``http://127.0.0.1`` JWKS URL (tests, a
            local sidecar).
        audience: the ``aud`` the SETs must carry (this receiver).
        algorithms: the JWS algorithms accepted (RFC 8725 §3.1: pinned here,
            never read from the token).
        push_token_file: a file holding the bearer token the transmitter sends in
            ``Authorization`` (RFC 8935 §2: push authentication); optional.
        max_age_seconds: the oldest ``iat`` accepted.
    """

    issuer: Annotated[str, Field(min_length=1, max_length=512)]
    jwks_file: Path | None = None
    jwks_uri: str | None = None
    allow_http_loopback: bool = False
    audience: Annotated[str, Field(min_length=1, max_length=512)]
    algorithms: list[str] = Field(default_factory=lambda: ["ES256"], min_length=1)
    push_token_file: Path | None = None
    max_age_seconds: int = Field(default=300, ge=10, le=86_400)

    @field_validator("algorithms")
    @classmethod
    def _asymmetric(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - _ALGORITHMS)
        if unknown:
            raise ValueError(
                f"unsupported algorithms {unknown}: use {sorted(_ALGORITHMS)}"
            )
        return value

    @model_validator(mode="after")
    def _one_key_source(self) -> TransmitterSettings:
        if (self.jwks_file is None) == (self.jwks_uri is None):
            raise ValueError("set exactly one of jwks_file and jwks_uri")
        return self


class SignalRuleSettings(_Section):
    """
    One rule: these events, from these transmitters, do this to what they name.

    Attributes:
        events: event types (URIs or short names: ``session-revoked``).
        transmitters: only events from these issuers; empty means any.
        match: what the event's subject names: an ``agent`` (its name or id), an
            ``owner`` (an operator name: every agent it owns), a ``tenant`` or an
            ``environment``.
        effect: ``revoke_tasks``, ``set_risk``, ``freeze_environment`` or
            ``declare_incident``.
        risk: the level ``set_risk`` sets.
        duration_seconds: how long a risk, freeze or incident lasts; none means
            until cleared.
    """

    events: list[Annotated[str, Field(min_length=1, max_length=512)]] = Field(
        min_length=1, max_length=64
    )
    transmitters: list[str] = Field(default_factory=list)
    match: Match
    effect: Effect
    risk: Literal["low", "medium", "high"] = "high"
    duration_seconds: int | None = Field(default=None, ge=1, le=30 * 86_400)

    @model_validator(mode="after")
    def _effect_fits(self) -> SignalRuleSettings:
        if self.match not in _EFFECT_MATCHES[self.effect]:
            allowed = " or ".join(sorted(_EFFECT_MATCHES[self.effect]))
            raise ValueError(f"effect {self.effect} needs match = {allowed}")
        return self

    @property
    def event_types(self) -> frozenset[str]:
        """The rule's events as URIs."""
        return frozenset(event_uri(name) for name in self.events)


class SignalSettings(_Section):
    """
    ``[signals]``: the SSF receiver and its rules.

    Attributes:
        transmitters: the trusted transmitters (none: the receiver refuses all).
        rules: how events map to effects, in order.
    """

    transmitters: list[TransmitterSettings] = Field(default_factory=list, max_length=64)
    rules: list[SignalRuleSettings] = Field(default_factory=list, max_length=256)

    @field_validator("transmitters")
    @classmethod
    def _unique(cls, value: list[TransmitterSettings]) -> list[TransmitterSettings]:
        issuers = [transmitter.issuer for transmitter in value]
        if len(set(issuers)) != len(issuers):
            raise ValueError("transmitter issuers must be unique")
        return value

    def transmitter(self, issuer: str) -> TransmitterSettings | None:
        """Return the transmitter with this exact issuer."""
        return next((t for t in self.transmitters if t.issuer == issuer), None)

    def handles(self, event_type: str) -> bool:
        """Tell whether some rule names this event type."""
        return any(event_type in rule.event_types for rule in self.rules)


@dataclass(frozen=True, slots=True, kw_only=True)
class SignalAction:
    """
    One thing to do because of one event.

    Attributes:
        effect: what to do.
        match: what kind of thing ``names`` are.
        names: the subject's identifying values, to resolve.
        risk: the risk level (``set_risk``).
        until: when the risk, freeze or incident ends; None means until cleared.
        rule: the rule's position in ``[[signals.rules]]``.
    """

    effect: Effect
    match: Match
    names: tuple[str, ...]
    risk: str
    until: dt.datetime | None
    rule: int


def plan(
    rules: Sequence[SignalRuleSettings],
    *,
    event_type: str,
    issuer: str,
    subject: SubjectIdentifier,
    now: dt.datetime,
) -> list[SignalAction]:
    """
    Return the actions of every rule that matches an event, in rule order.

    Args:
        rules: the configured rules.
        event_type: the event's type URI.
        issuer: the transmitter's issuer.
        subject: the event's subject.
        now: the time the event was accepted.
    """
    actions: list[SignalAction] = []
    for index, rule in enumerate(rules):
        if event_type not in rule.event_types:
            continue
        if rule.transmitters and issuer not in rule.transmitters:
            continue
        until = (
            None
            if rule.duration_seconds is None
            else now + dt.timedelta(seconds=rule.duration_seconds)
        )
        actions.append(
            SignalAction(
                effect=rule.effect,
                match=rule.match,
                names=subject.names(),
                risk=rule.risk,
                until=until,
                rule=index,
            )
        )
    return actions
