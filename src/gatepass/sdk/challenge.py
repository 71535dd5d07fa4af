"""
Reading a resource server's ``WWW-Authenticate`` challenge (RFC 9110 §11.6.1).

The agent side needs four parameters of a refusal: ``error`` (``invalid_token``,
``insufficient_scope``, ``use_dpop_nonce``), ``scope`` (what a step-up must ask
for, RFC 6750 §3), ``resource_metadata`` (where the RFC 9728 metadata is, §5.1)
and ``error_description``. A header may hold several challenges (``Bearer …,
DPoP …``); the parameters of the ``DPoP`` challenge win, then those of the first
one. Values are tokens or quoted-strings; anything malformed is skipped, never
raised: a challenge is advice from a server, not input the agent must accept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Challenge", "read_challenge"]

# RFC 9110 §5.6.2 token, §5.6.4 quoted-string (with quoted-pairs), §11.2 auth-param.
_NAME_CHARS = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_QUOTED = r'"(?:[^"\\]|\\.)*"'
_PARAM = re.compile(rf"\s*({_NAME_CHARS})\s*=\s*({_QUOTED}|{_NAME_CHARS})\s*(?:,|$)")
_SCHEME = re.compile(rf"\s*({_NAME_CHARS})(?=\s|,|$)")
_UNQUOTE = re.compile(r"\\(.)")


@dataclass(frozen=True, slots=True)
class Challenge:
    """
    The parameters of one authentication challenge.

    Attributes:
        scheme: the scheme, lower case (``dpop``, ``bearer``); empty when none.
        params: the auth-params, names lower case, values unquoted.
    """

    scheme: str
    params: dict[str, str]

    @property
    def error(self) -> str | None:
        """The ``error`` code, if any."""
        return self.params.get("error")

    @property
    def scopes(self) -> frozenset[str]:
        """The space-separated ``scope`` values, empty when none were named."""
        return frozenset(self.params.get("scope", "").split())

    @property
    def resource_metadata(self) -> str | None:
        """The RFC 9728 metadata URL, if named."""
        return self.params.get("resource_metadata")


def _value(raw: str) -> str:
    if raw.startswith('"'):
        return _UNQUOTE.sub(r"\1", raw[1:-1])
    return raw


def _challenges(header: str) -> list[Challenge]:
    found: list[Challenge] = []
    position = 0
    current: Challenge | None = None
    while position < len(header):
        param = _PARAM.match(header, position)
        if param is not None and current is not None:
            name = param.group(1).lower()
            current.params.setdefault(name, _value(param.group(2)))
            position = param.end()
            continue
        scheme = _SCHEME.match(header, position)
        if scheme is None:
            # Skip one malformed character and try again: no input raises.
            position += 1
            continue
        current = Challenge(scheme=scheme.group(1).lower(), params={})
        found.append(current)
        position = scheme.end()
    return found


def read_challenge(header: str | None) -> Challenge:
    """
    Read the challenge an agent should act on from a ``WWW-Authenticate`` value.

    Args:
        header: the header's value (several headers joined with ``,``), or None.

    Returns:
        The ``DPoP`` challenge if there is one, else the first, else an empty one.
    """
    challenges = _challenges(header or "")
    for challenge in challenges:
        if challenge.scheme == "dpop":
            return challenge
    return challenges[0] if challenges else Challenge(scheme="", params={})
