"""terminal_safe() and safe_json(): what the audit commands print is inert."""

from __future__ import annotations

import json
import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

from gatepass.cli.output import cell, safe_json, terminal_safe

UNSAFE = {"Cc", "Cf", "Zl", "Zp", "Cs"}


def _inert(text: str) -> bool:
    return all(unicodedata.category(char) not in UNSAFE for char in text)


class TestTerminalSafe:
    """Unsafe characters become escapes; everything else stays as it is."""

    def test_issue13_named_characters(self) -> None:
        """Each character of the issue prints as its escape."""
        cases = {
            "\u2028": "\\u2028",
            "\u2029": "\\u2029",
            "\u202e": "\\u202e",
            "\x1b[2J": "\\u001b[2J",
            "\x9b": "\\u009b",
            "\x7f": "\\u007f",
            "\u200d": "\\u200d",
            "\U000e0041": "\\udb40\\udc41",
        }
        for raw, shown in cases.items():
            assert terminal_safe(raw) == shown

    def test_cells_are_escaped(self) -> None:
        """Table cells (agents, tasks, leases) are escaped too."""
        assert cell({"team": "a\u202eb"}) == "team=a\\u202eb"
        assert cell(["x\ny"]) == "x\\u000ay"

    @settings(max_examples=200, deadline=None)
    @given(st.text())
    def test_output_is_always_inert(self, text: str) -> None:
        """No character a terminal acts on survives."""
        assert _inert(terminal_safe(text))

    @settings(max_examples=200, deadline=None)
    @given(st.text().filter(_inert))
    def test_plain_text_is_unchanged(self, text: str) -> None:
        """Text without unsafe characters is printed exactly."""
        assert terminal_safe(text) == text

    @settings(max_examples=200, deadline=None)
    @given(
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(),
            lambda children: (
                st.lists(children, max_size=3)
                | st.dictionaries(st.text(max_size=5), children, max_size=3)
            ),
            max_leaves=10,
        )
    )
    def test_safe_json_decodes_to_the_same_value(self, value: object) -> None:
        """The escaped JSON is still JSON, with the same value, on one line."""
        text = safe_json(value)
        assert _inert(text)
        assert json.loads(text) == value
        indented = safe_json(value, indent=2)
        assert json.loads(indented) == value
