"""
The decision the broker acts on: ``Grant | NeedsApproval | Deny``.

One request for a credential asks the policy once per action; the verdict folds
those decisions: any deny (or evaluation error) denies the whole request, otherwise
the strictest profile of every allowing permit decides whether a human must approve
first (``policy/profiles.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gatepass.policy.facts import Decision
from gatepass.policy.profiles import IssuanceProfile

__all__ = ["Deny", "Grant", "NeedsApproval", "Verdict", "verdict_of"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Grant:
    """
    Issue now, within the profile.

    Attributes:
        profile: the strictest profile of the allowing permits (no approval).
        policy_ids: the permits that allowed it, in load order, deduplicated.
    """

    profile: IssuanceProfile
    policy_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class NeedsApproval:
    """
    Issue only once the profile's approver groups approved this exact request.

    Attributes:
        profile: the strictest profile; ``approval_groups`` is not empty.
        policy_ids: the permits that allowed it, in load order, deduplicated.
    """

    profile: IssuanceProfile
    policy_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Deny:
    """
    Issue nothing.

    Attributes:
        policy_ids: the forbids that denied (empty for a default deny).
        errors: evaluation errors, if any (an error is a deny).
    """

    policy_ids: tuple[str, ...]
    errors: tuple[str, ...] = ()


Verdict = Grant | NeedsApproval | Deny
"""What policy says about one credential request."""


def verdict_of(decisions: Sequence[Decision]) -> Verdict:
    """
    Fold the decisions of one request (one per action) into its verdict.

    Args:
        decisions: at least one decision.

    Returns:
        ``Deny`` if any decision denies, else ``NeedsApproval`` if the strictest
        profile names an approver group, else ``Grant``.
    """
    policy_ids = tuple(dict.fromkeys(pid for d in decisions for pid in d.policy_ids))
    if not decisions or not all(decision.allowed for decision in decisions):
        return Deny(
            policy_ids=tuple(
                dict.fromkeys(
                    pid for d in decisions if not d.allowed for pid in d.policy_ids
                )
            ),
            errors=tuple(error for d in decisions for error in d.errors),
        )
    profile = IssuanceProfile.strictest(decision.profile for decision in decisions)
    if profile.needs_approval:
        return NeedsApproval(profile=profile, policy_ids=policy_ids)
    return Grant(profile=profile, policy_ids=policy_ids)
