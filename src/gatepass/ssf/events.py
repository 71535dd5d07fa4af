"""
The events and subjects of Security Event Tokens: CAEP and RISC types, RFC 9493 ids.

Event types are URIs (RFC 8417 §2.2); the ones gatepass knows are listed here with
a short name for configuration (``session-revoked`` for
``https://schemas.openid.net/secevent/caep/event-type/session-revoked``). Subjects
are RFC 9493 subject identifiers, in the SET's ``sub_id`` claim (SSF 1.0 §3) or,
as CAEP 1.0 transmitters still send them, in the event's ``subject`` member.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

__all__ = [
    "CAEP",
    "KNOWN_EVENTS",
    "RISC",
    "SSF",
    "SubjectIdentifier",
    "event_uri",
    "is_known",
    "parse_subject",
]

CAEP: Final = "https://schemas.openid.net/secevent/caep/event-type/"
"""The prefix of CAEP 1.0 event types."""
RISC: Final = "https://schemas.openid.net/secevent/risc/event-type/"
"""The prefix of RISC 1.0 event types."""
SSF: Final = "https://schemas.openid.net/secevent/ssf/event-type/"
"""The prefix of SSF 1.0's own event types (stream verification and updates)."""

_CAEP_NAMES = (
    "session-revoked",
    "token-claims-change",
    "credential-change",
    "assurance-level-change",
    "device-compliance-change",
    "session-established",
    "session-presented",
    "risk-level-change",
)
_RISC_NAMES = (
    "account-credential-change-required",
    "account-purged",
    "account-disabled",
    "account-enabled",
    "identifier-changed",
    "identifier-recycled",
    "credential-compromise",
    "opt-in",
    "opt-out-initiated",
    "opt-out-cancelled",
    "opt-out-effective",
    "recovery-activated",
    "recovery-information-changed",
)
_SSF_NAMES = ("verification", "stream-updated")

KNOWN_EVENTS: Final[Mapping[str, str]] = {
    **{name: CAEP + name for name in _CAEP_NAMES},
    **{name: RISC + name for name in _RISC_NAMES},
    **{f"ssf-{name}": SSF + name for name in _SSF_NAMES},
}
"""Short name -> event type URI of every event gatepass knows."""
_KNOWN_URIS: Final = frozenset(KNOWN_EVENTS.values())

# RFC 9493 §3.2: the members that identify a subject, by format.
_IDENTIFYING: Final[Mapping[str, tuple[str, ...]]] = {
    "account": ("uri",),
    "email": ("email",),
    "iss_sub": ("sub",),
    "opaque": ("id",),
    "phone_number": ("phone_number",),
    "did": ("url",),
    "uri": ("uri",),
}
# SSF 1.0 §3.2: a complex subject names several entities at once.
_COMPLEX_MEMBERS: Final = (
    "user",
    "device",
    "session",
    "application",
    "tenant",
    "org_unit",
    "group",
)
_MAX_VALUE = 512
_MAX_ALIASES = 16


def event_uri(name: str) -> str:
    """
    Return the event type URI of a short name, or the name when it is a URI.

    Args:
        name: ``session-revoked``, ``account-disabled`` or a full URI.
    """
    return KNOWN_EVENTS.get(name, name)


def is_known(uri: str) -> bool:
    """Tell whether an event type URI is one gatepass knows."""
    return uri in _KNOWN_URIS


@dataclass(frozen=True, slots=True)
class SubjectIdentifier:
    """
    A subject as a SET names it (RFC 9493).

    Attributes:
        format: the identifier format (``email``, ``iss_sub``, ``opaque``,
            ``aliases``, ``complex``...).
        values: the identifying strings, by member (``email``, ``sub``...;
            ``user.email`` inside a complex subject).
        issuer: the ``iss`` of an ``iss_sub`` identifier.
    """

    format: str
    values: tuple[tuple[str, str], ...]
    issuer: str | None = None

    def names(self) -> tuple[str, ...]:
        """Return every identifying value, in order, without duplicates."""
        return tuple(dict.fromkeys(value for _, value in self.values))


def _simple(
    entry: Mapping[str, object], prefix: str = ""
) -> tuple[str, list[tuple[str, str]], str | None]:
    fmt = entry.get("format")
    if not isinstance(fmt, str) or fmt not in _IDENTIFYING:
        raise ValueError("subject has an unsupported format")
    found: list[tuple[str, str]] = []
    for member in _IDENTIFYING[fmt]:
        value = entry.get(member)
        if not isinstance(value, str) or not 0 < len(value) <= _MAX_VALUE:
            raise ValueError(f"subject of format {fmt} lacks a valid {member}")
        found.append((prefix + member, value))
    issuer = entry.get("iss")
    if fmt == "iss_sub" and (not isinstance(issuer, str) or not issuer):
        raise ValueError("iss_sub subject lacks iss")
    return fmt, found, issuer if isinstance(issuer, str) else None


def _aliases(entry: Mapping[str, object]) -> SubjectIdentifier:
    identifiers = entry.get("identifiers")
    if not isinstance(identifiers, list) or not 0 < len(identifiers) <= _MAX_ALIASES:
        raise ValueError("aliases subject needs 1 to 16 identifiers")
    values: list[tuple[str, str]] = []
    for item in identifiers:
        if not isinstance(item, Mapping):
            raise ValueError("alias is not an object")  # noqa: TRY004 - bad input
        _, found, _ = _simple(item)
        values.extend(found)
    return SubjectIdentifier("aliases", tuple(values))


def _complex(entry: Mapping[str, object]) -> SubjectIdentifier:
    values: list[tuple[str, str]] = []
    for member in _COMPLEX_MEMBERS:
        item = entry.get(member)
        if item is None:
            continue
        if not isinstance(item, Mapping):
            msg = f"complex subject member {member} is not an object"
            raise ValueError(msg)  # noqa: TRY004 - bad input
        _, found, _ = _simple(item, prefix=f"{member}.")
        values.extend(found)
    if not values:
        raise ValueError("complex subject names nothing")
    return SubjectIdentifier("complex", tuple(values))


def parse_subject(entry: object) -> SubjectIdentifier:
    """
    Read an RFC 9493 subject identifier (or an SSF complex subject).

    Args:
        entry: the JSON value of ``sub_id`` (or of an event's ``subject``).

    Returns:
        The subject.

    Raises:
        ValueError: it is not an object of a supported format with its members.
    """
    if not isinstance(entry, Mapping):
        raise ValueError("subject is not an object")  # noqa: TRY004 - bad input
    fmt = entry.get("format")
    if fmt == "aliases":
        return _aliases(entry)
    if fmt == "complex" or (fmt is None and any(m in entry for m in _COMPLEX_MEMBERS)):
        return _complex(entry)
    simple_format, found, issuer = _simple(entry)
    return SubjectIdentifier(simple_format, tuple(found), issuer)
