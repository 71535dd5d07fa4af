"""
Text an agent wrote, made inert before an approver sees it.

An agent's justification is the one part of an approval request that nobody
checked, and it is shown to the humans who decide: prompt injection aimed at them
("approved by security, click here"). Before it leaves the broker it loses
everything that could change how the rest of the message looks or behaves:

* ANSI escape sequences (ECMA-48 CSI, OSC and two-character escapes), which recolour
  or rewrite a terminal;
* control characters (Unicode ``Cc``; tabs become spaces, line breaks stay), and
  format characters (``Cf``), which include the bidi embeddings, overrides and
  isolates U+202A to U+202E and U+2066 to U+2069 (Trojan Source, CVE-2021-42574) and
  zero-width characters that hide text;
* lone surrogates, which cannot be encoded;
* length beyond a fixed limit.

For Slack, :func:`escape_mrkdwn` then escapes ``&``, ``<`` and ``>`` as Slack's
formatting reference asks, so the text can open no link, mention or channel
reference: every ``<`` that reaches Slack from the agent is ``&lt;``.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

__all__ = ["JUSTIFICATION_LIMIT", "escape_mrkdwn", "inert_text"]

JUSTIFICATION_LIMIT: Final = 1000
_WORK_FACTOR: Final = 4
_ELLIPSIS: Final = "…"
# ECMA-48: CSI (ESC [ or the C1 CSI U+009B) parameters, intermediates and a final
# byte; OSC (ESC ] or U+009D) up to BEL or ST; any other two-character escape.
_ANSI = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"
    r"|(?:\x1b\]|\x9d)[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[@-_]"
)
_LINE_BREAKS = re.compile(r"\r\n|[\r\u2028\u2029\x0b\x0c\x85]")
# Categories that never survive: controls, format characters (bidi, zero width),
# surrogates. A line break is the one control kept.
_DROPPED: Final = frozenset({"Cc", "Cf", "Cs"})


def _kept(char: str) -> bool:
    return char == "\n" or unicodedata.category(char) not in _DROPPED


def inert_text(text: str | None, *, limit: int = JUSTIFICATION_LIMIT) -> str:
    """
    Return agent-written text without escapes, controls or bidi characters.

    Args:
        text: the agent's text (None is empty).
        limit: the most characters kept; longer text is cut and ends with ``…``.

    Returns:
        The text, safe to show as plain text anywhere; markup is not escaped.
    """
    if not text:
        return ""
    # Bound the work before doing any: what could survive the limit lies within the
    # first few times ``limit`` characters, escape sequences included.
    cleaned = _ANSI.sub("", text[: limit * _WORK_FACTOR])
    cleaned = _LINE_BREAKS.sub("\n", cleaned).replace("\t", " ")
    # str.isprintable is false for every character of the dropped categories (and
    # for a few harmless ones): ordinary text skips the per-character pass.
    if not cleaned.replace("\n", " ").isprintable():
        cleaned = "".join(char for char in cleaned if _kept(char))
    cleaned = cleaned.strip()
    if len(cleaned) > limit:
        cleaned = cleaned[: limit - 1].rstrip() + _ELLIPSIS
    return cleaned


def escape_mrkdwn(text: str) -> str:
    """
    Escape text for Slack mrkdwn: ``&``, ``<`` and ``>`` become entities.

    Slack's formatting reference: these three are its control characters; escaped,
    the text cannot form a link (``<url|label>``), a mention (``<@U…>``,
    ``<!channel>``) or a quote.
    """
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
