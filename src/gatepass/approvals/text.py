r"""
Agent-supplied text made inert for the humans who approve.

An approval shows an approver words the agent chose: the task's intent and the
request's justification. An agent that was prompt-injected, or written to deceive,
can put anything there, so before it reaches a terminal, a log line, a chat message
or the console, every character that could act instead of being shown is replaced by
a visible ``\u{…}`` escape (its code point in hex):

* C0 and C1 control characters and DEL (Unicode category Cc): ESC starts ANSI
  sequences that recolour, move the cursor, clear the screen or set the window
  title; U+009B is a one-byte CSI; CR rewrites the line; BS erases the previous
  character;
* format characters (Cf): the bidirectional embeddings, overrides and isolates
  (U+202A-U+202E, U+2066-U+2069), U+200E/U+200F and U+061C that reorder what is
  displayed ("Trojan Source", CVE-2021-42574), zero-width spaces and joiners, the
  BOM, the invisible tag characters (U+E0000-U+E007F);
* line and paragraph separators (Zl, Zp: U+2028, U+2029), lone surrogates (Cs) and
  unassigned code points (Cn: a newer terminal may know them as something that
  acts);
* the Hangul fillers and the blank braille pattern (U+115F, U+1160, U+3164,
  U+FFA0, U+2800): letters and symbols that render as nothing, used to hide text;
* combining marks past the fourth in a row (Mn, Me): "Zalgo" stacks that spill
  over the lines above and below, where the broker's own fields are printed.

**One line.** A newline (``\n``, or ``\r\n``) becomes ``⏎`` (U+23CE); every other line
break is escaped. The output is always a single line, so agent text can never start
a line of its own that looks like one of the broker's fields ("approved by: …") in
``gatepass approvals show``, nor forge a log record (CWE-117).

**Bounded.** The output is at most ``limit`` characters: longer text is cut at a
character boundary (never inside an escape) and ends with ``…[+N more]``, N the
number of input characters not shown.

**Stable.** The output holds nothing this function would change, and fits its limit,
so ``inert(inert(x)) == inert(x)``: text may pass through it twice (the broker, then
a webhook) without growing. The price is that the escapes are not unique: a literal
``\u{202e}`` typed by the agent looks like an escaped U+202E, and a typed ``⏎`` like
a newline. That only ever makes text look *more* suspicious, never less.

Text without any of these characters, of at most ``limit`` characters and with no
newline, is returned unchanged.
"""

from __future__ import annotations

import html
import unicodedata
from typing import Final

__all__ = ["MARKS_IN_A_ROW", "NEWLINE", "inert", "inert_html"]

NEWLINE: Final = "\u23ce"
MARKS_IN_A_ROW: Final = 4
_ESCAPED_CATEGORIES: Final = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Cn"})
_MARK_CATEGORIES: Final = frozenset({"Mn", "Me"})
_BLANK_LETTERS: Final = frozenset("\u115f\u1160\u3164\uffa0\u2800")
# The marker for the largest possible count fits in this, so any limit at least this
# long leaves room for it.
_MIN_LIMIT: Final = 32


def _escape(char: str) -> str:
    return f"\\u{{{ord(char):x}}}"


def _marker(hidden: int) -> str:
    return f"\u2026[+{hidden} more]"


def inert(text: str, *, limit: int = 1000) -> str:
    r"""
    Return ``text`` as one line of at most ``limit`` characters that cannot act.

    Args:
        text: any text, typically chosen by an agent.
        limit: the longest the result may be, in characters (at least 32).

    Returns:
        The text with the characters the module docstring lists written as
        ``\u{…}`` escapes, newlines as ``⏎``, cut with a marker when too long.

    Raises:
        ValueError: ``limit`` is below 32 (no room for the marker).
    """
    if limit < _MIN_LIMIT:
        msg = f"limit must be at least {_MIN_LIMIT}"
        raise ValueError(msg)
    reserve = len(_marker(len(text)))
    pieces: list[str] = []
    length = 0
    # The last place the text could be cut with the marker still fitting.
    fits = (0, 0)
    marks = 0
    index = 0
    while index < len(text):
        char = text[index]
        step = 1
        category = unicodedata.category(char)
        if char == "\n" or text.startswith("\r\n", index):
            piece = NEWLINE
            step = len("\r\n") if char == "\r" else 1
        elif category in _ESCAPED_CATEGORIES or char in _BLANK_LETTERS:
            piece = _escape(char)
        elif category in _MARK_CATEGORIES:
            marks += 1
            piece = char if marks <= MARKS_IN_A_ROW else _escape(char)
        else:
            piece = char
        if category not in _MARK_CATEGORIES:
            marks = 0
        pieces.append(piece)
        length += len(piece)
        index += step
        if length + reserve <= limit:
            fits = (len(pieces), index)
        if length > limit:
            break
    if index >= len(text) and length <= limit:
        return "".join(pieces)
    shown, consumed = fits
    return "".join(pieces[:shown]) + _marker(len(text) - consumed)


def inert_html(text: str, *, limit: int = 1000) -> str:
    """
    Return ``text`` made inert, then escaped for HTML text and attribute values.

    ``&``, ``<``, ``>``, ``"`` and ``'`` become character references, so the
    result is safe between tags and inside a quoted attribute. Put it inside a
    ``<bdi>`` element (or ``dir="auto"``) so that right-to-left letters in it
    cannot reorder the page's own text around it (the controls are escaped; the
    letters' own direction remains).

    Args:
        text: any text, typically chosen by an agent.
        limit: as for :func:`inert`, before the HTML escaping.

    Raises:
        ValueError: ``limit`` is below 32.
    """
    return html.escape(inert(text, limit=limit), quote=True)
