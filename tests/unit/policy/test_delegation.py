"""Cedar decides ``Delegate`` and sees ``context.delegation`` (issue 10)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gatepass.policy import (
    AgentFacts,
    CedarPolicySet,
    DelegationFacts,
    DelegationRequest,
    PolicyRequest,
    TaskFacts,
)

from .conftest import TUESDAY_10

DirFactory = Callable[..., Path]
RequestFactory = Callable[..., PolicyRequest]

PLANNER = AgentFacts(
    id="agt_planner", name="planner", tenant="acme", labels={"role": "planner"}
)
RESEARCHER = AgentFacts(
    id="agt_researcher",
    name="researcher",
    tenant="acme",
    labels={"role": "researcher"},
)
READER = AgentFacts(
    id="agt_reader", name="reader", tenant="acme", labels={"role": "reader"}
)
TASK = TaskFacts(
    purpose="research",
    intent="find the slow queries",
    environment="dev",
    tenant="acme",
    age_seconds=3,
)


def position(depth: int = 1, parent: str = "agt_planner") -> DelegationFacts:
    """Where a child sits: depth, its parent agent, the planner's root."""
    return DelegationFacts(
        depth=depth,
        parent_agent=parent,
        root_agent="agt_planner",
        root_purpose="research",
        root_tenant="acme",
    )


def delegation(**overrides: Any) -> DelegationRequest:
    """The planner hands dev tickets reads to the researcher; override any part."""
    fields: dict[str, Any] = {
        "parent": PLANNER,
        "child": RESEARCHER,
        "task": TASK,
        "targets": ("tickets",),
        "actions": ("read",),
        "purpose": "research",
        "ttl_seconds": 900,
        "delegation": position(),
        "now": TUESDAY_10,
    }
    return DelegationRequest(**{**fields, **overrides})


class TestQuickstartDelegate:
    """The quickstart pipeline: planner to researcher to reader, reads only."""

    def test_planner_delegates_to_a_researcher_with_a_ttl_cap(
        self, quickstart: CedarPolicySet
    ) -> None:
        """A planner may hand work to a researcher; the permit caps it at 600 s."""
        decision = quickstart.decide_delegation(delegation())
        assert decision.allowed
        assert decision.policy_ids == ("planner-delegates-to-researchers",)
        assert decision.ttl_cap == dt.timedelta(seconds=600)

    def test_researcher_delegates_reads_to_a_reader(
        self, quickstart: CedarPolicySet
    ) -> None:
        """A researcher may hand reads to a reader, for at most 300 s."""
        decision = quickstart.decide_delegation(
            delegation(
                parent=RESEARCHER,
                child=READER,
                delegation=position(2, "agt_researcher"),
            )
        )
        assert decision.allowed
        assert decision.ttl_cap == dt.timedelta(seconds=300)

    def test_researcher_cannot_hand_a_reader_writes(
        self, quickstart: CedarPolicySet
    ) -> None:
        """context.subtask.actions is what the policy reads: a write is denied."""
        decision = quickstart.decide_delegation(
            delegation(
                parent=RESEARCHER,
                child=READER,
                actions=("read", "write"),
                delegation=position(2, "agt_researcher"),
            )
        )
        assert not decision.allowed
        assert not decision.errors

    @pytest.mark.parametrize(
        ("parent", "child"),
        [(RESEARCHER, PLANNER), (READER, RESEARCHER), (PLANNER, READER)],
    )
    def test_other_pairs_are_denied(
        self, quickstart: CedarPolicySet, parent: AgentFacts, child: AgentFacts
    ) -> None:
        """Only the pairs a permit names may delegate: deny by default."""
        decision = quickstart.decide_delegation(delegation(parent=parent, child=child))
        assert not decision.allowed

    def test_reader_is_a_leaf_whatever_a_permit_says(
        self, quickstart: CedarPolicySet
    ) -> None:
        """The readers-are-leaves forbid decides, even for a reader tagged twice."""
        decision = quickstart.decide_delegation(
            delegation(parent=READER, child=RESEARCHER)
        )
        assert decision.policy_ids == ("readers-are-leaves",)

    def test_cross_tenant_child_is_forbidden(self, quickstart: CedarPolicySet) -> None:
        """forbid-cross-tenant also applies to the child agent as resource."""
        child = dataclasses.replace(RESEARCHER, tenant="globex")
        decision = quickstart.decide_delegation(delegation(child=child))
        assert not decision.allowed
        assert decision.policy_ids == ("forbid-cross-tenant",)

    def test_prod_hours_guardrail_reads_only_targets(
        self, quickstart: CedarPolicySet
    ) -> None:
        """A Saturday delegation is no error: the hours forbid skips agents."""
        saturday = dt.datetime(2026, 1, 10, 23, tzinfo=dt.UTC)
        decision = quickstart.decide_delegation(delegation(now=saturday))
        assert decision.allowed
        assert not decision.errors


class TestDelegatedTasks:
    """A delegated task's requests carry ``context.delegation``."""

    def test_delegated_task_cannot_write(
        self, quickstart: CedarPolicySet, make_request: RequestFactory
    ) -> None:
        """delegated-tasks-never-write forbids what the same root task may do."""
        root = make_request(action="write")
        child = dataclasses.replace(root, delegation=position())
        [as_root, as_child] = quickstart.decide([root, child])
        assert as_root.allowed
        assert not as_child.allowed
        assert as_child.policy_ids == ("delegated-tasks-never-write",)

    def test_delegated_task_reads_and_opens(
        self, quickstart: CedarPolicySet, make_request: RequestFactory
    ) -> None:
        """Reads and OpenTask of a delegated task are decided as for any task."""
        agent = {"id": "agt_reader", "name": "reader", "labels": {"role": "reader"}}
        requests = [
            dataclasses.replace(
                make_request(action=action, agent=agent), delegation=position(2)
            )
            for action in ("OpenTask", "read")
        ]
        assert all(d.allowed for d in quickstart.decide(requests))

    def test_policy_reads_every_delegation_fact(
        self, make_policy_dir: DirFactory, make_request: RequestFactory
    ) -> None:
        """depth, parent, root agent, root purpose and tenant reach Cedar."""
        directory = make_policy_dir(
            {
                "p.cedar": """
                permit (principal, action, resource) when {
                  context has delegation &&
                  context.delegation.depth == 2 &&
                  context.delegation.parent_agent == "agt_researcher" &&
                  context.delegation.root_agent == "agt_planner" &&
                  context.delegation.root_purpose == "research" &&
                  context.delegation.root_tenant == "acme"
                };"""
            }
        )
        policy_set = CedarPolicySet.from_directory(directory)
        request = make_request()
        [root, child, other] = policy_set.decide(
            [
                request,
                dataclasses.replace(request, delegation=position(2, "agt_researcher")),
                dataclasses.replace(request, delegation=position(3, "agt_researcher")),
            ]
        )
        assert (root.allowed, child.allowed, other.allowed) == (False, True, False)

    def test_schema_without_delegation_denies_a_delegated_task(
        self,
        make_policy_dir: DirFactory,
        make_request: RequestFactory,
        schema_text: str,
    ) -> None:
        """A schema that does not declare context.delegation fails such requests."""
        old = schema_text.replace("    delegation?: Delegation,\n", "")
        assert old != schema_text
        directory = make_policy_dir(
            {"p.cedar": "permit (principal, action, resource);"}, schema=old
        )
        policy_set = CedarPolicySet.from_directory(directory)
        request = make_request()
        [root, child] = policy_set.decide(
            [request, dataclasses.replace(request, delegation=position())]
        )
        assert root.allowed
        assert not child.allowed
        assert child.errors

    def test_delegation_with_a_wrong_type_is_validated_and_denied(
        self, quickstart: CedarPolicySet, make_request: RequestFactory
    ) -> None:
        """A depth that is no Long is refused by Cedar's schema check: a deny."""
        facts = dataclasses.replace(position(), depth="1")  # type: ignore[arg-type]
        [decision] = quickstart.decide(
            [dataclasses.replace(make_request(), delegation=facts)]
        )
        assert not decision.allowed
        assert decision.errors


class TestDelegateRefusals:
    """Whatever goes wrong, a delegation is denied, never raised."""

    def test_schema_without_delegate_denies(
        self, make_policy_dir: DirFactory, schema_text: str
    ) -> None:
        """A set whose schema lacks Delegate denies every delegation with an error."""
        start = schema_text.index("  // principal: the delegating agent")
        end = schema_text.index("};", start) + 2
        old = schema_text[:start] + schema_text[end:]
        directory = make_policy_dir(
            {"p.cedar": "permit (principal, action, resource);"}, schema=old
        )
        decision = CedarPolicySet.from_directory(directory).decide_delegation(
            delegation()
        )
        assert not decision.allowed
        assert decision.errors

    def test_permit_all_allows_with_delegate_declared(
        self, make_policy_dir: DirFactory
    ) -> None:
        """With the quickstart schema, a permit for everything allows it."""
        directory = make_policy_dir(
            {"p.cedar": "permit (principal, action, resource);"}
        )
        assert (
            CedarPolicySet.from_directory(directory)
            .decide_delegation(delegation())
            .allowed
        )

    @pytest.mark.parametrize(
        "spoiled",
        [
            {"child": dataclasses.replace(RESEARCHER, tenant=7)},  # type: ignore[arg-type]
            {"parent": dataclasses.replace(PLANNER, labels={"role": 1})},  # type: ignore[dict-item]
            {"now": dt.datetime(2026, 1, 6, 10)},  # noqa: DTZ001 - the point
            {"ttl_seconds": 2**70},
            {"purpose": "x\ud800"},
        ],
    )
    def test_unusable_facts_deny(
        self, quickstart: CedarPolicySet, spoiled: dict[str, Any]
    ) -> None:
        """Non-string facts, a naive time, an overflow, a lone surrogate: deny."""
        decision = quickstart.decide_delegation(delegation(**spoiled))
        assert not decision.allowed
        assert decision.errors

    def test_evaluation_error_denies(self, make_policy_dir: DirFactory) -> None:
        """A permit that overflows for the request is an error, so a deny."""
        directory = make_policy_dir(
            {
                "p.cedar": """
                permit (principal, action == Gatepass::Action::"Delegate", resource)
                when { context.subtask.ttl_seconds * 4611686018427387904 > 0 };"""
            }
        )
        decision = CedarPolicySet.from_directory(directory).decide_delegation(
            delegation()
        )
        assert not decision.allowed
        assert decision.errors


class EagerSlicing(CedarPolicySet):
    """Slices every request it can: Delegate must answer as the whole set does."""

    _slice_share = 1.0
    _slice_size = 10**9


_agents = st.sampled_from([PLANNER, RESEARCHER, READER]) | st.builds(
    AgentFacts,
    id=st.sampled_from(["agt_x", "agt_planner"]),
    name=st.just("x"),
    tenant=st.sampled_from(["acme", "globex"]),
    labels=st.sampled_from([{}, {"role": "reader"}, {"role": "researcher"}]),
)
_delegations = st.builds(
    DelegationRequest,
    parent=_agents,
    child=_agents,
    task=st.just(TASK),
    targets=st.lists(st.sampled_from(["tickets", "notes-mcp"]), max_size=2).map(tuple),
    actions=st.lists(st.sampled_from(["read", "write", "admin"]), max_size=3).map(
        tuple
    ),
    purpose=st.just("research"),
    ttl_seconds=st.integers(min_value=1, max_value=3600),
    delegation=st.builds(position, st.integers(min_value=1, max_value=5)),
    now=st.just(TUESDAY_10),
)


class TestDelegateIsNotSliced:
    """Delegate is decided by the whole set, whatever the slicing settings."""

    @given(request=_delegations)
    def test_sliced_set_decides_delegate_as_the_whole_set(
        self, quickstart_dir: Path, request: DelegationRequest
    ) -> None:
        """An eagerly sliced set and an unsliced one give the same decision."""
        whole = _whole(quickstart_dir)
        eager = _eager(quickstart_dir)
        assert eager.decide_delegation(request) == whole.decide_delegation(request)


_SETS: dict[tuple[str, Path], CedarPolicySet] = {}


def _whole(directory: Path) -> CedarPolicySet:
    key = ("whole", directory)
    if key not in _SETS:
        _SETS[key] = CedarPolicySet.from_directory(directory, slicing=False)
    return _SETS[key]


def _eager(directory: Path) -> CedarPolicySet:
    key = ("eager", directory)
    if key not in _SETS:
        _SETS[key] = EagerSlicing.from_directory(directory)
    return _SETS[key]
