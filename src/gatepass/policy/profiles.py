"""
Issuance profiles: what a permit asks of the credential it allows.

A permit's annotations describe how the credential it allows is issued::

    @id("prod-write-needs-approval")
    @ttl("60")                       // the credential lives at most 60 s
    @approval("prod-approvers")      // an approver group must approve (a list: "a, b")
    @quorum("2")                     // distinct approvals needed from each group
    @approval_ttl("900")             // the request expires unapproved after 900 s
    @max_uses("1")                   // credentials one approval may be redeemed for
    @exclude_owners("true")          // the agent's owners may not approve
    permit (principal, action == Gatepass::Action::"write", resource)
    when { resource.environment == "prod" };

When several permits decide a request (and when a request asks several actions),
the strictest profile wins: the shortest TTL, every named group, the largest
quorum, the shortest approval window, the fewest uses, owners excluded if any permit
excludes them. Annotations are checked when the policy set loads; a bad value
refuses the whole set, like any other policy error.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "NO_PROFILE",
    "PROFILE_ANNOTATIONS",
    "IssuanceProfile",
    "ProfileError",
    "parse_profile",
]

# Whole seconds; ten digits is over 300 years, enough for any cap.
_SECONDS = re.compile(r"[1-9][0-9]{0,9}")
_SMALL = re.compile(r"[1-9][0-9]{0,2}")
_GROUP = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_MAX_QUORUM = 16
_MAX_USES = 100
_MIN_APPROVAL_TTL = 30
_MAX_APPROVAL_TTL = 7 * 24 * 3600

PROFILE_ANNOTATIONS = frozenset(
    {"ttl", "approval", "quorum", "approval_ttl", "max_uses", "exclude_owners"}
)
"""The annotations that make up a profile (``@id`` names the policy)."""


class ProfileError(ValueError):
    """An annotation is malformed; the message says which and why."""


@dataclass(frozen=True, slots=True, kw_only=True)
class IssuanceProfile:
    """
    How a credential is issued.

    Attributes:
        ttl: the longest life of the credential; None: the other caps decide.
        approval_groups: approver groups that must each approve; empty: no approval.
        quorum: distinct approvals needed from each group (at least 1).
        approval_ttl: how long a request waits for approval; None: the broker's
            default.
        max_uses: how many credentials one approval may be redeemed for.
        exclude_owners: the agent's owners may not approve its requests.
    """

    ttl: dt.timedelta | None = None
    approval_groups: frozenset[str] = frozenset()
    quorum: int = 1
    approval_ttl: dt.timedelta | None = None
    max_uses: int = 1
    exclude_owners: bool = False

    @property
    def needs_approval(self) -> bool:
        """True when some group must approve."""
        return bool(self.approval_groups)

    def stricter(self, other: IssuanceProfile) -> IssuanceProfile:
        """Return the profile that satisfies both ``self`` and ``other``."""
        return IssuanceProfile(
            ttl=_shortest(self.ttl, other.ttl),
            approval_groups=self.approval_groups | other.approval_groups,
            quorum=max(self.quorum, other.quorum),
            approval_ttl=_shortest(self.approval_ttl, other.approval_ttl),
            max_uses=min(self.max_uses, other.max_uses),
            exclude_owners=self.exclude_owners or other.exclude_owners,
        )

    @classmethod
    def strictest(cls, profiles: Iterable[IssuanceProfile]) -> IssuanceProfile:
        """Return the profile satisfying all of ``profiles`` (the default if none)."""
        result = cls()
        for profile in profiles:
            result = result.stricter(profile)
        return result

    def to_json(self) -> dict[str, Any]:
        """Return the profile as the audit records it."""
        return {
            "ttl_seconds": _seconds(self.ttl),
            "approval_groups": sorted(self.approval_groups),
            "quorum": self.quorum,
            "approval_ttl_seconds": _seconds(self.approval_ttl),
            "max_uses": self.max_uses,
            "exclude_owners": self.exclude_owners,
        }


NO_PROFILE = IssuanceProfile()
"""The profile of a permit without profile annotations (and of a deny)."""


def parse_profile(annotations: Mapping[str, str], *, effect: str) -> IssuanceProfile:
    """
    Read a policy's profile from its annotations.

    Args:
        annotations: the policy's annotations (``id`` and anything else ignored).
        effect: ``permit`` or ``forbid``; a forbid issues nothing, so a profile
            annotation on one is a mistake.

    Returns:
        The profile (the default one when no profile annotation is present).

    Raises:
        ProfileError: a value is malformed, out of range, on a forbid, or an
            approval setting appears without ``@approval``.
    """
    present = sorted(PROFILE_ANNOTATIONS & annotations.keys())
    if not present:
        return IssuanceProfile()
    if effect != "permit":
        raise ProfileError(f"@{present[0]} has no effect on a forbid")
    groups = _groups(annotations.get("approval"))
    if not groups:
        lonely = [
            name
            for name in ("quorum", "approval_ttl", "max_uses", "exclude_owners")
            if name in annotations
        ]
        if lonely:
            raise ProfileError(f"@{lonely[0]} needs @approval")
    approval_ttl = _optional_seconds(annotations, "approval_ttl")
    if approval_ttl is not None and not (
        _MIN_APPROVAL_TTL <= approval_ttl.total_seconds() <= _MAX_APPROVAL_TTL
    ):
        raise ProfileError(
            f"@approval_ttl must be between {_MIN_APPROVAL_TTL} and "
            f"{_MAX_APPROVAL_TTL} seconds"
        )
    return IssuanceProfile(
        ttl=_optional_seconds(annotations, "ttl"),
        approval_groups=groups,
        quorum=_count(annotations, "quorum", _MAX_QUORUM),
        approval_ttl=approval_ttl,
        max_uses=_count(annotations, "max_uses", _MAX_USES),
        exclude_owners=_flag(annotations, "exclude_owners"),
    )


def _groups(text: str | None) -> frozenset[str]:
    if text is None:
        return frozenset()
    names = [part.strip() for part in text.split(",")]
    if not all(names) or any(_GROUP.fullmatch(name) is None for name in names):
        raise ProfileError(
            "@approval must name approver groups (lower-case names, comma-separated), "
            f"got {text!r}"
        )
    return frozenset(names)


def _optional_seconds(annotations: Mapping[str, str], name: str) -> dt.timedelta | None:
    text = annotations.get(name)
    if text is None:
        return None
    if _SECONDS.fullmatch(text) is None:
        raise ProfileError(
            f"@{name} must be a positive whole number of seconds, got {text!r}"
        )
    return dt.timedelta(seconds=int(text))


def _count(annotations: Mapping[str, str], name: str, limit: int) -> int:
    text = annotations.get(name)
    if text is None:
        return 1
    if _SMALL.fullmatch(text) is None or int(text) > limit:
        raise ProfileError(
            f"@{name} must be a whole number from 1 to {limit}, got {text!r}"
        )
    return int(text)


def _flag(annotations: Mapping[str, str], name: str) -> bool:
    text = annotations.get(name)
    if text is None:
        return False
    if text not in {"true", "false"}:
        raise ProfileError(f'@{name} must be "true" or "false", got {text!r}')
    return text == "true"


def _shortest(
    first: dt.timedelta | None, second: dt.timedelta | None
) -> dt.timedelta | None:
    if first is None:
        return second
    if second is None:
        return first
    return min(first, second)


def _seconds(value: dt.timedelta | None) -> int | None:
    return None if value is None else int(value.total_seconds())
