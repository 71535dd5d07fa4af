"""
SPIFFE IDs, parsed strictly (SPIFFE-ID §2).

gatepass reads SPIFFE IDs, JWT-SVIDs and SPIFFE bundles itself instead of using the
``spiffe`` Python package: that package exists mainly to talk to the Workload API
and pulls grpcio into the broker (FACTS.md), while the broker only needs to parse a
URI and a JWK Set, which this module and ``keysets`` do with the standard library,
PyJWT and cryptography.

The rules are those of the SPIFFE ID standard as the reference implementation
(go-spiffe) applies them: the scheme is ``spiffe``, the trust domain is lower-case
letters, digits, ``.``, ``-`` and ``_``; the path is ``/``-separated segments of
letters, digits, ``.``, ``-`` and ``_``, never empty, ``.`` or ``..``, with no
trailing ``/``; there is no port, user info, query, fragment or percent-encoding.
A text that is not already in that one canonical form is refused, never normalized,
so two spellings can never name one workload.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "MAX_SPIFFE_ID_LENGTH",
    "SpiffeId",
    "parse_spiffe_id",
    "parse_trust_domain",
]

# SPIFFE-ID §2.3: IDs up to 2048 bytes; the host part (trust domain) up to 255.
MAX_SPIFFE_ID_LENGTH = 2048
_MAX_TRUST_DOMAIN_LENGTH = 255
_SCHEME = "spiffe://"
_TRUST_DOMAIN = re.compile(r"[a-z0-9._-]+")
_SEGMENT = re.compile(r"[A-Za-z0-9._-]+")


@dataclass(frozen=True, slots=True)
class SpiffeId:
    """
    A SPIFFE ID: a trust domain and a workload path.

    Attributes:
        trust_domain: the trust domain name (``example.org``).
        path: the path with its leading ``/`` (``/ns/prod/sa/agent``), or ``""``
            for the ID of the trust domain itself.
    """

    trust_domain: str
    path: str

    def __str__(self) -> str:
        """Return the URI form (``spiffe://example.org/ns/prod/sa/agent``)."""
        return f"{_SCHEME}{self.trust_domain}{self.path}"

    @property
    def segments(self) -> tuple[str, ...]:
        """Return the path segments (``("ns", "prod", "sa", "agent")``)."""
        return tuple(self.path.split("/")[1:]) if self.path else ()


def parse_trust_domain(text: object) -> str:
    """
    Check a trust domain name (SPIFFE-ID §2.1).

    Args:
        text: the name, without scheme (``example.org``).

    Returns:
        The name, unchanged.

    Raises:
        ValueError: the value is not a trust domain name in canonical form.
    """
    if not isinstance(text, str) or not text:
        raise ValueError("trust domain is empty")
    if len(text) > _MAX_TRUST_DOMAIN_LENGTH:
        raise ValueError("trust domain is longer than 255 characters")
    if _TRUST_DOMAIN.fullmatch(text) is None:
        raise ValueError(
            "trust domain may contain only lower-case letters, digits, '.', '-', '_'"
        )
    return text


def parse_spiffe_id(text: object) -> SpiffeId:
    """
    Parse a SPIFFE ID in its one canonical form (SPIFFE-ID §2).

    Args:
        text: the URI, e.g. the ``sub`` of a JWT-SVID.

    Returns:
        The parsed ID; ``str()`` of it gives back ``text`` exactly.

    Raises:
        ValueError: the text is not a canonical SPIFFE ID; the message says why.
    """
    if not isinstance(text, str):
        raise ValueError("spiffe id is not a string")  # noqa: TRY004 - one error
    if len(text.encode("utf-8")) > MAX_SPIFFE_ID_LENGTH:
        raise ValueError("spiffe id is longer than 2048 bytes")
    if not text.startswith(_SCHEME):
        raise ValueError("spiffe id must start with spiffe://")
    rest = text[len(_SCHEME) :]
    slash = rest.find("/")
    trust_domain, path = (rest, "") if slash < 0 else (rest[:slash], rest[slash:])
    # Ports, user info, queries and fragments use characters that neither part
    # allows, so the character rules below refuse them too.
    trust_domain = parse_trust_domain(trust_domain)
    if path:
        for segment in path.split("/")[1:]:
            if not segment:
                raise ValueError("spiffe id path has an empty segment")
            if segment in {".", ".."}:
                raise ValueError("spiffe id path has a '.' or '..' segment")
            if _SEGMENT.fullmatch(segment) is None:
                raise ValueError(
                    "spiffe id path may contain only letters, digits, '.', '-', '_'"
                )
    return SpiffeId(trust_domain, path)
