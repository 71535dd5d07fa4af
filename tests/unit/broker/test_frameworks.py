"""The framework report's facts: sections that other parts of issue 14 add."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from gatepass.broker.frameworks import _section


class Section(BaseModel):
    """A stand-in for a signals or reuse section."""

    enabled: bool = True
    window_seconds: int = 60
    receivers: list[str] = []


class Holder:
    """Settings with some sections and not others."""

    signals = Section()
    reuse = Section(receivers=["idp"])
    other = Section(enabled=False, receivers=["idp"])


class TestSections:
    """The signals and reuse sections are read defensively (they land separately)."""

    def test_absent_defaults_off_and_configured(self) -> None:
        """Absent, defaults only or switched off: not configured; a list: configured."""
        holder: Any = Holder()
        assert _section(holder, "absent") is None
        assert _section(holder, "signals") is None
        assert _section(holder, "other") is None
        assert _section(holder, "reuse") == {"receivers": ["idp"]}
