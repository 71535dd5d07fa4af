"""``[signals]`` settings and how rules plan actions (issue 14)."""

from __future__ import annotations

import datetime as dt

import pytest
from pydantic import ValidationError

from gatepass.ssf.events import CAEP, SubjectIdentifier
from gatepass.ssf.rules import (
    SignalRuleSettings,
    SignalSettings,
    TransmitterSettings,
    plan,
)

NOW = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
SUBJECT = SubjectIdentifier("opaque", (("id", "demo-agent"),))


def rule(**fields: object) -> SignalRuleSettings:
    """Return a rule with defaults."""
    base: dict[str, object] = {
        "events": ["session-revoked"],
        "match": "agent",
        "effect": "revoke_tasks",
    }
    return SignalRuleSettings.model_validate({**base, **fields})


class TestPlan:
    """Matching rules become actions, in order."""

    def test_matching_rules(self) -> None:
        """Every rule naming the event (and the transmitter) acts."""
        rules = [
            rule(),
            rule(effect="set_risk", risk="medium", duration_seconds=60),
            rule(events=["credential-change"]),
            rule(transmitters=["https://other.test"]),
        ]
        actions = plan(
            rules,
            event_type=CAEP + "session-revoked",
            issuer="https://idp.test",
            subject=SUBJECT,
            now=NOW,
        )
        assert [(a.effect, a.rule) for a in actions] == [
            ("revoke_tasks", 0),
            ("set_risk", 1),
        ]
        assert actions[1].until == NOW + dt.timedelta(seconds=60)
        assert actions[1].risk == "medium"
        assert actions[0].names == ("demo-agent",)


class TestSettings:
    """Configuration mistakes are refused at start."""

    def test_effect_needs_a_fitting_match(self) -> None:
        """freeze_environment acts on environments only."""
        with pytest.raises(ValidationError, match="match = environment"):
            rule(effect="freeze_environment")

    def test_one_key_source(self) -> None:
        """A transmitter needs exactly one of jwks_file and jwks_uri."""
        with pytest.raises(ValidationError, match="exactly one"):
            TransmitterSettings(issuer="i", audience="a")
        with pytest.raises(ValidationError, match="exactly one"):
            TransmitterSettings(
                issuer="i", audience="a", jwks_file="k.json", jwks_uri="https://k"
            )

    def test_symmetric_algorithms_are_refused(self) -> None:
        """RFC 8725 §3.1: HS256 is never a transmitter's algorithm."""
        with pytest.raises(ValidationError, match="unsupported algorithms"):
            TransmitterSettings(
                issuer="i", audience="a", jwks_file="k.json", algorithms=["HS256"]
            )

    def test_unique_issuers(self) -> None:
        """Two transmitters cannot share an issuer."""
        one = {"issuer": "i", "audience": "a", "jwks_file": "k.json"}
        with pytest.raises(ValidationError, match="unique"):
            SignalSettings.model_validate({"transmitters": [one, one]})
