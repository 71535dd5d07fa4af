"""Issuance profiles: annotations parsed strictly, combined strictest-wins."""

from __future__ import annotations

import datetime as dt
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gatepass.policy import Decision, Deny, Grant, IssuanceProfile, NeedsApproval
from gatepass.policy.profiles import NO_PROFILE, ProfileError, parse_profile
from gatepass.policy.verdicts import verdict_of


class TestParse:
    """Every annotation is checked; a bad one names itself."""

    def test_no_profile_annotations(self) -> None:
        """``@id`` alone is the default profile."""
        assert parse_profile({"id": "x"}, effect="permit") == NO_PROFILE

    def test_full_profile(self) -> None:
        """Every annotation read into its field."""
        profile = parse_profile(
            {
                "ttl": "60",
                "approval": "prod-approvers, security",
                "quorum": "2",
                "approval_ttl": "900",
                "max_uses": "3",
                "exclude_owners": "true",
            },
            effect="permit",
        )
        assert profile == IssuanceProfile(
            ttl=dt.timedelta(seconds=60),
            approval_groups=frozenset({"prod-approvers", "security"}),
            quorum=2,
            approval_ttl=dt.timedelta(seconds=900),
            max_uses=3,
            exclude_owners=True,
        )
        assert profile.needs_approval

    @pytest.mark.parametrize(
        ("annotations", "message"),
        [
            ({"ttl": "0"}, "@ttl must be a positive whole number"),
            ({"ttl": "1.5"}, "@ttl must be a positive"),
            ({"approval": ""}, "@approval must name approver groups"),
            ({"approval": "Prod Approvers"}, "@approval must name"),
            ({"approval": "a,,b"}, "@approval must name"),
            ({"quorum": "2"}, "@quorum needs @approval"),
            ({"approval_ttl": "60"}, "@approval_ttl needs @approval"),
            ({"max_uses": "1"}, "@max_uses needs @approval"),
            ({"exclude_owners": "true"}, "@exclude_owners needs @approval"),
            ({"approval": "a", "quorum": "0"}, "@quorum must be a whole number"),
            ({"approval": "a", "quorum": "17"}, "@quorum must be a whole number"),
            ({"approval": "a", "max_uses": "101"}, "@max_uses must be"),
            ({"approval": "a", "approval_ttl": "5"}, "@approval_ttl must be between"),
            ({"approval": "a", "exclude_owners": "yes"}, '"true" or "false"'),
        ],
    )
    def test_bad_values_are_refused(
        self, annotations: dict[str, str], message: str
    ) -> None:
        """Each malformed annotation is a load error that says what is wrong."""
        with pytest.raises(ProfileError, match=message):
            parse_profile(annotations, effect="permit")

    @pytest.mark.parametrize("name", ["ttl", "approval"])
    def test_profile_on_a_forbid_is_refused(self, name: str) -> None:
        """A forbid issues nothing: a profile on one is a mistake."""
        with pytest.raises(ProfileError, match="no effect on a forbid"):
            parse_profile({name: "prod"}, effect="forbid")


durations = st.none() | st.integers(1, 10**6).map(lambda s: dt.timedelta(seconds=s))
profiles = st.builds(
    IssuanceProfile,
    ttl=durations,
    approval_groups=st.frozensets(st.sampled_from(["a", "b", "c"]), max_size=3),
    quorum=st.integers(1, 16),
    approval_ttl=durations,
    max_uses=st.integers(1, 100),
    exclude_owners=st.booleans(),
)


def _at_least_as_strict(strict: IssuanceProfile, other: IssuanceProfile) -> bool:
    def shorter(a: dt.timedelta | None, b: dt.timedelta | None) -> bool:
        return b is None or (a is not None and a <= b)

    return (
        shorter(strict.ttl, other.ttl)
        and strict.approval_groups >= other.approval_groups
        and strict.quorum >= other.quorum
        and shorter(strict.approval_ttl, other.approval_ttl)
        and strict.max_uses <= other.max_uses
        and (strict.exclude_owners or not other.exclude_owners)
    )


class TestStrictest:
    """The combination is at least as strict as each part, and order does not matter."""

    @given(st.lists(profiles, max_size=5))
    def test_at_least_as_strict_as_each(self, parts: list[IssuanceProfile]) -> None:
        """Shortest TTLs, every group, largest quorum, fewest uses."""
        combined = IssuanceProfile.strictest(parts)
        assert all(_at_least_as_strict(combined, part) for part in parts)

    @given(st.lists(profiles, max_size=5), st.randoms())
    def test_order_does_not_matter(
        self, parts: list[IssuanceProfile], rng: random.Random
    ) -> None:
        """Policies are not ordered by importance: any order, one answer."""
        shuffled = list(parts)
        rng.shuffle(shuffled)
        assert IssuanceProfile.strictest(parts) == IssuanceProfile.strictest(shuffled)


class TestVerdict:
    """Decisions of one request fold into Grant, NeedsApproval or Deny."""

    def test_any_deny_denies(self) -> None:
        """One denied action denies the request, citing only the forbids."""
        verdict = verdict_of(
            [
                Decision(allowed=True, policy_ids=("p",)),
                Decision(allowed=False, policy_ids=("f",)),
            ]
        )
        assert verdict == Deny(policy_ids=("f",))

    def test_no_decisions_deny(self) -> None:
        """Nothing decided is nothing allowed."""
        assert isinstance(verdict_of([]), Deny)

    def test_approval_in_any_decision_needs_approval(self) -> None:
        """One action that needs approval makes the request wait."""
        strict = IssuanceProfile(approval_groups=frozenset({"ops"}))
        verdict = verdict_of(
            [
                Decision(allowed=True, policy_ids=("a",)),
                Decision(allowed=True, policy_ids=("b", "a"), profile=strict),
            ]
        )
        assert verdict == NeedsApproval(profile=strict, policy_ids=("a", "b"))

    def test_plain_permits_grant(self) -> None:
        """No approval group anywhere: granted, with the shortest TTL."""
        short = IssuanceProfile(ttl=dt.timedelta(seconds=30))
        verdict = verdict_of(
            [
                Decision(allowed=True, policy_ids=("a",), profile=short),
                Decision(allowed=True, policy_ids=("b",)),
            ]
        )
        assert verdict == Grant(profile=short, policy_ids=("a", "b"))
