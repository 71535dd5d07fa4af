"""The framework report's facts: whether the signals and reuse sections are on."""

from __future__ import annotations

from gatepass.broker.frameworks import _section
from gatepass.config import ReuseSettings, Settings


class TestSections:
    """A section is configured when it holds something to act on."""

    def test_defaults_configure_nothing(self) -> None:
        """A deployment without transmitters or rules: not configured."""
        settings = Settings()
        assert _section(settings.signals) is None
        assert _section(settings.reuse) is None

    def test_rules_configure_reuse(self) -> None:
        """One reuse rule is enough, and the report sees what it is."""
        reuse = ReuseSettings.model_validate(
            {"rules": [{"kinds": ["two_keys"], "response": "alert"}]}
        )
        found = _section(reuse)
        assert found is not None
        assert found["rules"][0]["response"] == "alert"
