"""Tables for people: 80 columns, ids and times never broken (issue 17)."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from gatepass.cli.audit_tail import parse_since
from gatepass.cli.output import cell
from gatepass.cli.tables import Column, View, full_time, layout, relative_time
from gatepass.errors import InvalidRequestError

NOW = dt.datetime(2026, 1, 6, 10, 0, tzinfo=dt.UTC)
LONG_ID = "lse_" + "a" * 26
COLUMNS = [
    Column("id", "id", "id"),
    Column("agent", "agent", "text", drop=3),
    Column("task_id", "task", "id", drop=4),
    Column("target", "target", "text", drop=2),
    Column("kind", "kind", "word", drop=5),
    Column("state", "state", "word"),
    Column("issued_at", "issued", "time", wide=True),
    Column("expires_at", "expires", "time", drop=1),
]


def _rows(count: int = 3) -> list[dict[str, object]]:
    return [
        {
            "id": f"lse_{index:026d}",
            "agent": "a-support-agent-with-a-long-name",
            "task_id": f"tsk_{index:026d}",
            "target": "tickets-production-eu-west",
            "kind": "access_token",
            "state": "revoking",
            "issued_at": "2026-01-06T09:58:00.123456Z",
            "expires_at": "2026-01-06T10:14:59Z",
        }
        for index in range(count)
    ]


def _render(width: int, *, wide: bool = False) -> tuple[list[str], tuple[str, ...]]:
    laid = layout(_rows(), COLUMNS, View(now=NOW, wide=wide, width=width), render=cell)
    console = Console(width=laid.width, highlight=False, force_terminal=False)
    with console.capture() as captured:
        console.print(laid.table)
    return captured.get().splitlines(), laid.hidden


class TestIssue17Tables:
    """A table at 80 columns keeps whole ids and times on one line."""

    def test_issue17_80_columns_with_long_ids_and_timestamps(self):
        """No line passes 80 cells, every id is whole, every time is one token."""
        lines, hidden = _render(80)
        assert all(len(line) <= 80 for line in lines)
        text = "\n".join(lines)
        for row in _rows():
            assert str(row["id"]) in text
        assert re.search(r"in 14m\b", text)
        assert "2026" not in text
        assert hidden
        assert "id" not in hidden
        assert "state" not in hidden

    def test_issue17_kind_is_never_split(self):
        """A word column (the lease kind) is whole wherever it is shown."""
        lines, hidden = _render(120)
        assert "kind" not in hidden
        assert "\n".join(lines).count("access_token") == len(_rows())
        assert all("access_token" in line for line in lines if "lse_" in line)

    def test_issue17_wide_shows_every_column_and_full_times(self):
        """--wide shows the wide-only columns and timestamps to the second."""
        lines, hidden = _render(80, wide=True)
        assert hidden == ()
        header = lines[0]
        for title in ("issued", "task", "kind", "expires"):
            assert title in header
        assert "2026-01-06T09:58:00Z" in lines[1]
        assert "2026-01-06T10:14:59Z" in lines[1]

    def test_issue17_dropped_column_comes_back_when_it_fits(self):
        """A narrow column dropped early is shown again once wider ones went."""
        lines, hidden = _render(100)
        assert len(max(lines, key=len)) <= 100
        shown = lines[0].split()
        assert "expires" in shown
        assert set(hidden).isdisjoint(shown)

    def test_issue17_table_through_the_cli_at_80_columns(self, cli):
        """`leases list` and `audit tail` at COLUMNS=80 fit and keep ids whole."""
        _, lease_id = cli.broker.open_lease()
        cli.broker.clock.advance(90)
        for args in (("leases", "list"), ("audit", "tail"), ("tasks", "list")):
            result = cli(*args, env={"COLUMNS": "80"})
            assert result.exit_code == 0, result.output
            lines = result.stdout.splitlines()
            assert all(len(line) <= 80 for line in lines), args
            assert "T10:00" not in result.stdout
        listed = cli("leases", "list", env={"COLUMNS": "80"}).stdout
        assert lease_id in listed
        assert "demo-agent" in listed
        # The task lives 15 minutes; 90 seconds have passed.
        assert "in 13m" in cli("tasks", "list", env={"COLUMNS": "80"}).stdout

    def test_issue17_agent_names_beside_ids(self, cli):
        """Tasks and leases show the agent's name; --wide adds its id."""
        cli.broker.open_lease()
        narrow = cli("tasks", "list").stdout
        wide = cli("tasks", "list", "--wide").stdout
        assert "demo-agent" in narrow
        assert cli.broker.demo_agent_id not in narrow
        assert cli.broker.demo_agent_id in wide
        assert "2026-01-06T10:00:00Z" in wide

    def test_issue17_json_is_the_api_answer(self, cli):
        """-o json prints the API's document, with no names or relative times added."""
        cli.broker.open_lease()
        result = cli("tasks", "list", "-o", "json")
        assert result.exit_code == 0
        assert '"agent_id"' in result.stdout
        assert '"agent":' not in result.stdout
        assert "ago" not in result.stdout


class TestRelativeTime:
    """``relative_time`` names the largest whole unit, past or future."""

    @pytest.mark.parametrize(
        ("seconds", "shown"),
        [
            (0, "now"),
            (-42, "42s ago"),
            (-300, "5m ago"),
            (840, "in 14m"),
            (-3 * 3600 - 59, "3h ago"),
            (2 * 86_400, "in 2d"),
        ],
    )
    def test_examples(self, seconds, shown):
        """A few fixed offsets read as a person would say them."""
        assert relative_time(NOW + dt.timedelta(seconds=seconds), NOW) == shown

    @given(st.integers(min_value=-(10**8), max_value=10**8))
    def test_always_one_short_token(self, seconds):
        """Any offset is 'now', 'N<unit> ago' or 'in N<unit>': never wraps."""
        shown = relative_time(NOW + dt.timedelta(seconds=seconds), NOW)
        assert re.fullmatch(r"now|\d+[smhd] ago|in \d+[smhd]", shown)
        assert len(shown) <= 12

    def test_full_time_is_utc_to_the_second(self):
        """Full times drop fractions and always say Z."""
        moment = dt.datetime(
            2026, 1, 6, 11, 0, 1, 999, tzinfo=dt.timezone(dt.timedelta(hours=1))
        )
        assert full_time(moment) == "2026-01-06T10:00:01Z"


class TestParseSince:
    """``audit tail --since`` reads durations and ISO 8601 times."""

    @given(
        st.integers(min_value=0, max_value=10**12),
        st.sampled_from(["s", "m", "h", "d"]),
    )
    def test_durations(self, amount, unit):
        """A duration counts back from now in its unit, or is refused past year 1."""
        seconds = {"s": 1, "m": 60, "h": 3600, "d": 86_400}[unit] * amount
        try:
            expected: dt.datetime | None = NOW - dt.timedelta(seconds=seconds)
        except OverflowError:
            expected = None
        if expected is not None:
            assert parse_since(f"{amount}{unit}", NOW) == expected
        else:
            with pytest.raises(InvalidRequestError, match="past year 1"):
                parse_since(f"{amount}{unit}", NOW)

    def test_iso_time(self):
        """An ISO 8601 time with a zone is taken as it is."""
        assert parse_since("2026-01-06T09:00:00Z", NOW) == NOW - dt.timedelta(hours=1)

    @given(st.text(max_size=30).filter(lambda t: not re.fullmatch(r"\d+[smhd]", t)))
    def test_anything_else_is_a_time_or_a_clear_error(self, text):
        """Other text is an aware ISO 8601 time, or refused with invalid_request."""
        try:
            moment: dt.datetime | None = dt.datetime.fromisoformat(text.strip())
        except ValueError:
            moment = None
        if moment is not None and moment.tzinfo is not None:
            assert parse_since(text, NOW) == moment
        else:
            with pytest.raises(InvalidRequestError, match="--since must be"):
                parse_since(text, NOW)

    def test_naive_time_is_refused(self):
        """A time without a zone is ambiguous, so it is refused."""
        with pytest.raises(InvalidRequestError, match="with a zone"):
            parse_since("2026-01-06T09:00:00", NOW)
