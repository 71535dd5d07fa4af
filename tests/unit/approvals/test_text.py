"""inert() and inert_html(): agent-supplied text reaches approvers as inert text."""

from __future__ import annotations

import html
import re
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gatepass.approvals import inert, inert_html
from gatepass.approvals.text import MARKS_IN_A_ROW, NEWLINE

ACTING = {"Cc", "Cf", "Zl", "Zp", "Cs", "Cn"}
MARKS = {"Mn", "Me"}
BLANKS = set("\u115f\u1160\u3164\uffa0\u2800")
LINE_BREAKS = set("\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")
ENTITY = re.compile(r"&(amp|lt|gt|quot|#x27);")

# Every code point, surrogates included, with the dangerous ones weighted in.
any_text = st.text(
    st.characters(codec=None, min_codepoint=0, max_codepoint=0x10FFFF)
    | st.sampled_from(
        [
            "\x1b",
            "\x9b",
            "\n",
            "\r",
            "\u202e",
            "\u2066",
            "\u200d",
            "\u2028",
            "\ufeff",
            "\U000e0041",
            "\u0301",
            "\u3164",
            "\\",
            "{",
            NEWLINE,
        ]
    ),
    max_size=300,
)
limits = st.integers(min_value=32, max_value=400)


def longest_mark_run(text: str) -> int:
    """The longest run of combining marks in ``text``."""
    longest = run = 0
    for char in text:
        run = run + 1 if unicodedata.category(char) in MARKS else 0
        longest = max(longest, run)
    return longest


def plain(text: str) -> bool:
    """Text with nothing inert() changes."""
    return (
        all(unicodedata.category(c) not in ACTING and c not in BLANKS for c in text)
        and longest_mark_run(text) <= MARKS_IN_A_ROW
    )


class TestNamedCharacters:
    """Each character the issue names is shown as its escape."""

    @pytest.mark.parametrize(
        ("raw", "shown"),
        [
            ("\x1b[2J\x1b]0;pwned\x07", "\\u{1b}[2J\\u{1b}]0;pwned\\u{7}"),
            ("\x9b31m", "\\u{9b}31m"),
            ("\x7f\x08", "\\u{7f}\\u{8}"),
            ("a\u202eb", "a\\u{202e}b"),
            ("\u2066x\u2069", "\\u{2066}x\\u{2069}"),
            ("\u200e\u200f\u061c", "\\u{200e}\\u{200f}\\u{61c}"),
            ("zero\u200bwidth\u200d", "zero\\u{200b}width\\u{200d}"),
            ("\ufeffbom", "\\u{feff}bom"),
            ("tag\U000e0041", "tag\\u{e0041}"),
            ("line\u2028para\u2029", "line\\u{2028}para\\u{2029}"),
            ("\u3164\u115f", "\\u{3164}\\u{115f}"),
            ("lone \ud800", "lone \\u{d800}"),
            ("tab\there", "tab\\u{9}here"),
            ("\ufffe", "\\u{fffe}"),
        ],
    )
    def test_issue9_escapes(self, raw: str, shown: str) -> None:
        """ANSI, C1, bidi, zero-width, separators, fillers: visible escapes."""
        assert inert(raw) == shown

    def test_issue9_newlines_become_one_visible_mark(self) -> None:
        """A newline or CRLF is shown as one symbol; a bare CR is escaped."""
        assert inert("one\ntwo\r\nthree\rfour") == (
            f"one{NEWLINE}two{NEWLINE}three\\u{{d}}four"
        )

    def test_issue9_zalgo_stacks_are_capped(self) -> None:
        """Four combining marks in a row stay; the rest of the run is escaped."""
        assert inert("e" + "\u0301" * 6 + "x\u0301") == (
            "e" + "\u0301" * 4 + "\\u{301}\\u{301}" + "x\u0301"
        )

    def test_issue9_plain_text_is_unchanged(self) -> None:
        """Ordinary text, accents and other scripts are shown exactly."""
        text = "Réparer le ticket 42 — 修复工单 — إصلاح التذكرة {ok} \\ 👍🏽"
        assert inert(text) == text

    def test_issue9_long_text_is_cut_with_a_marker(self) -> None:
        """1000 characters at most, ending with how much was not shown."""
        shown = inert("x" * 5000)
        assert len(shown) <= 1000
        assert shown.endswith("more]")
        hidden = int(shown.rsplit("[+", 1)[1].split(" ")[0])
        assert shown.count("x") + hidden == 5000

    def test_issue9_a_cut_never_splits_an_escape(self) -> None:
        """Cutting escaped text keeps whole escapes only."""
        shown = inert("\u202e" * 100, limit=40)
        body = shown.rsplit("\u2026", 1)[0]
        assert re.fullmatch(r"(\\u\{202e\})*", body)
        assert len(shown) <= 40

    def test_issue9_limit_needs_room_for_the_marker(self) -> None:
        """A limit too small for the marker is a programming error."""
        with pytest.raises(ValueError, match="at least 32"):
            inert("text", limit=10)

    def test_issue9_html_escapes_markup(self) -> None:
        """Markup and quotes are character references; controls are escaped first."""
        assert inert_html('<img src=x onerror="alert(1)">\u202e&\'') == (
            "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;\\u{202e}&amp;&#x27;"
        )


class TestProperties:
    """What holds for any text at all."""

    @given(any_text, limits)
    def test_output_never_acts(self, text: str, limit: int) -> None:
        """No Cc/Cf/Zl/Zp/Cs/Cn character, no ESC, no filler, no long mark run."""
        shown = inert(text, limit=limit)
        assert "\x1b" not in shown
        assert all(unicodedata.category(c) not in ACTING for c in shown)
        assert not BLANKS & set(shown)
        assert longest_mark_run(shown) <= MARKS_IN_A_ROW

    @given(any_text, limits)
    def test_output_is_one_bounded_line(self, text: str, limit: int) -> None:
        """Never a line break, never longer than the limit."""
        shown = inert(text, limit=limit)
        assert not LINE_BREAKS & set(shown)
        assert len(shown) <= limit

    @given(any_text, limits)
    def test_inert_is_stable(self, text: str, limit: int) -> None:
        """inert(inert(x)) == inert(x): a second pass changes nothing."""
        once = inert(text, limit=limit)
        assert inert(once, limit=limit) == once

    @given(any_text.filter(plain).map(lambda t: t.replace("\n", "")))
    def test_plain_text_passes_unchanged(self, text: str) -> None:
        """Text with nothing to escape and within the limit is returned as is."""
        assert inert(text) == text

    @given(any_text, limits)
    def test_untruncated_output_shows_every_character(
        self, text: str, limit: int
    ) -> None:
        """Without a cut, every input character is in the output or escaped."""
        shown = inert(text, limit=limit)
        if shown.endswith("more]"):
            return
        for char in set(text) - {"\n", "\r"}:
            assert char in shown or f"\\u{{{ord(char):x}}}" in shown

    @given(any_text, limits)
    def test_html_output_has_no_markup(self, text: str, limit: int) -> None:
        """No < > " ' and only the five references; it unescapes to inert()."""
        shown = inert_html(text, limit=limit)
        assert not set("<>\"'") & set(shown)
        assert "&" not in ENTITY.sub("", shown)
        assert html.unescape(shown) == inert(text, limit=limit)
