"""``gatepass signals`` (issue 14)."""

from __future__ import annotations

import datetime as dt

import pytest

from gatepass.cli.signals import parse_until
from gatepass.errors import InvalidRequestError

NOW = dt.datetime(2026, 1, 6, 10, 0, tzinfo=dt.UTC)


class TestSignalsSend:
    """``gatepass signals send`` sets and clears signals, and they take effect."""

    def test_risk_high_closes_the_agents_task(self, cli):
        """A high risk closes the demo agent's open task; list shows the signal."""
        task_id, _ = cli.broker.open_lease()
        answer = cli.json("signals", "send", "risk", "demo-agent", "high")
        assert task_id in answer["closed_tasks"]
        (signal,) = cli.json("signals", "list")["signals"]
        assert (signal["kind"], signal["value"]) == ("risk", "high")
        assert signal["scope"] == cli.broker.demo_agent_id
        listed = cli("signals", "list")
        assert listed.exit_code == 0, listed.output
        assert "risk" in listed.stdout

    def test_low_risk_clears_it(self, cli):
        """Sending low clears the agent's risk."""
        cli.json("signals", "send", "risk", "demo-agent", "medium")
        cli.json("signals", "send", "risk", "demo-agent", "low")
        assert cli.json("signals", "list") == {"signals": []}

    def test_freeze_with_until_then_clear(self, cli):
        """A freeze with --until shows its end; --clear ends it."""
        result = cli("signals", "send", "freeze", "dev", "--until", "2h")
        assert result.exit_code == 0, result.output
        assert "signal freeze sent" in result.stdout
        (signal,) = cli.json("signals", "list")["signals"]
        assert signal["until"] is not None
        cli.json("signals", "send", "freeze", "dev", "--clear")
        assert cli.json("signals", "list") == {"signals": []}

    def test_incident(self, cli):
        """An incident is listed for its tenant."""
        cli.json("signals", "send", "incident", "acme", "--reason", "breach drill")
        (signal,) = cli.json("signals", "list")["signals"]
        assert (signal["kind"], signal["scope"], signal["reason"]) == (
            "incident",
            "acme",
            "breach drill",
        )

    def test_unknown_agent_exits_66(self, cli):
        """A risk for an agent that does not exist is not_found."""
        assert cli("signals", "send", "risk", "nobody", "high").exit_code == 66

    def test_bad_level_exits_64(self, cli):
        """A level outside high/medium/low is a usage error."""
        assert cli("signals", "send", "risk", "demo-agent", "extreme").exit_code == 64

    def test_empty_list(self, cli):
        """With no signal the table says so."""
        result = cli("signals", "list")
        assert "no signals in force" in result.stdout


class TestParseUntil:
    """``--until`` is a duration from now or a time with a zone."""

    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("30s", NOW + dt.timedelta(seconds=30)),
            ("10m", NOW + dt.timedelta(minutes=10)),
            ("2h", NOW + dt.timedelta(hours=2)),
            ("1d", NOW + dt.timedelta(days=1)),
            ("2026-01-07T00:00:00+00:00", dt.datetime(2026, 1, 7, tzinfo=dt.UTC)),
        ],
    )
    def test_accepted(self, value, expected):
        """Durations and zoned times are read."""
        assert parse_until(value, NOW) == expected

    @pytest.mark.parametrize("value", ["soon", "10y", "2026-01-07T00:00:00", ""])
    def test_refused(self, value):
        """Anything else is invalid_request."""
        with pytest.raises(InvalidRequestError):
            parse_until(value, NOW)
