"""A strict reader of one ``WWW-Authenticate`` challenge, to parse challenges back."""

from __future__ import annotations

import re

__all__ = ["RFC6750_VALUE", "parse_challenge"]

# RFC 9110 §5.6.2 token, §5.6.4 quoted-string (qdtext and quoted-pair).
_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_QUOTED = r'"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*"'
_SCHEME = re.compile(rf"({_TOKEN})(?: +(.*))?", re.DOTALL)
# RFC 9110 §11.2: auth-param = token BWS "=" BWS ( token / quoted-string ).
_PARAM = re.compile(rf"({_TOKEN})[ \t]*=[ \t]*({_TOKEN}|{_QUOTED})")
_SEPARATOR = re.compile(r"[ \t]*,[ \t]*")
_QUOTED_PAIR = re.compile(r"\\(.)", re.DOTALL)
# RFC 6750 §3: the characters error, error_description and scope may hold.
RFC6750_VALUE = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]*")


def parse_challenge(value: str) -> tuple[str, dict[str, str]]:
    """
    Parse one challenge as RFC 9110 §11.6.1 defines it, or raise ValueError.

    Args:
        value: a ``WWW-Authenticate`` field value holding one challenge.

    Returns:
        The scheme and its parameters (names lower-cased, quoted-pairs undone).

    Raises:
        ValueError: the value is not one well-formed challenge, or it repeats a
            parameter (RFC 9110 §11.2 allows each name once).
    """
    head = _SCHEME.fullmatch(value)
    if head is None:
        raise ValueError("no auth-scheme")
    scheme, rest = head.group(1), head.group(2) or ""
    params: dict[str, str] = {}
    position = 0
    while position < len(rest):
        found = _PARAM.match(rest, position)
        if found is None:
            raise ValueError(f"malformed auth-param at {position}")
        name, raw = found.group(1).lower(), found.group(2)
        if name in params:
            raise ValueError(f"repeated parameter {name}")
        if raw.startswith('"'):
            raw = _QUOTED_PAIR.sub(r"\1", raw[1:-1])
        params[name] = raw
        position = found.end()
        if position == len(rest):
            break
        separator = _SEPARATOR.match(rest, position)
        if separator is None or separator.end() == len(rest):
            raise ValueError(f"malformed separator at {position}")
        position = separator.end()
    return scheme, params
