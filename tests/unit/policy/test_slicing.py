"""The slicing index, its cached policy sets, and slicing inside CedarPolicySet."""

import dataclasses
import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.unit.policy.multitenant import SCHEMA

from gatepass.clock import FrozenClock
from gatepass.policy import (
    AgentFacts,
    CedarPolicySet,
    Decision,
    IssuanceProfile,
    PolicyHolder,
    PolicyRequest,
    TargetFacts,
    TaskFacts,
)
from gatepass.policy import slicing as slicing_module
from gatepass.policy.model import ACTION_TYPE, prepare, request_keys
from gatepass.policy.shapes import constraints_of
from gatepass.policy.slicing import PolicyIndex, PolicySlicer
from gatepass.policy.sources import read_sources

DirFactory = Callable[..., Path]

# Positions in load order: 0-2 guardrails, 3-4 per-tenant, 5 agent, 6 target, 7 a
# per-tenant forbid that never holds but overflows, and so fails, for old tasks.
POLICIES = """
@id("never-admin")
forbid (principal, action == Gatepass::Action::"admin", resource);
@id("cross-tenant")
forbid (principal, action, resource) unless { resource.tenant == principal.tenant };
@id("prod-hours")
forbid (principal, action, resource) when { resource.environment == "prod" }
unless { context.time.hour >= 8 && context.time.hour < 18 };
@id("t1-read") @ttl("600")
permit (principal, action == Gatepass::Action::"read", resource)
when { resource.tenant == "t1" && principal.tenant == "t1" };
@id("t2-read") @ttl("300")
permit (principal, action == Gatepass::Action::"read", resource)
when { resource.tenant == "t2" && principal.tenant == "t2" };
@id("a1-reads") @ttl("120")
permit (principal == Gatepass::Agent::"a1", action in [Gatepass::Action::"reads"],
        resource);
@id("x1-open")
permit (principal, action == Gatepass::Action::"OpenTask",
        resource == Gatepass::Target::"x1");
@id("t1-young-tasks")
forbid (principal, action, resource)
when { resource.tenant == "t1" && context.task.age_seconds * 1000000000000 < 0 };
"""
TUESDAY_10 = dt.datetime(2026, 1, 6, 10, tzinfo=dt.UTC)


def request(
    *,
    agent: str = "a1",
    tenant: str = "t1",
    action: str = "read",
    target: str = "x0",
    environment: str = "dev",
    age: int = 5,
    now: dt.datetime = TUESDAY_10,
) -> PolicyRequest:
    """A request by ``agent`` of ``tenant`` on a target of the same tenant."""
    return PolicyRequest(
        agent=AgentFacts(id=agent, name=agent, tenant=tenant, labels={}),
        action=action,
        target=TargetFacts(
            name=target,
            uri=f"https://{target}/",
            kind="http",
            environment=environment,
            tenant=tenant,
            risk="low",
        ),
        task=TaskFacts(
            purpose="triage",
            intent="",
            environment=environment,
            tenant=tenant,
            age_seconds=age,
        ),
        now=now,
    )


@pytest.fixture
def directory(make_policy_dir: DirFactory) -> Path:
    """The policies above, with the schema that declares action groups."""
    return make_policy_dir({"policies.cedar": POLICIES}, schema=SCHEMA)


@pytest.fixture
def sliced(directory: Path) -> CedarPolicySet:
    """The set, slicing however large a slice is."""

    class Eager(CedarPolicySet):
        _slice_share = 1.0

    return Eager.from_directory(directory)


@pytest.fixture
def whole(directory: Path) -> CedarPolicySet:
    """The same set, evaluating every policy."""
    return CedarPolicySet.from_directory(directory, slicing=False)


def selected(policy_set: CedarPolicySet, question: PolicyRequest) -> list[str]:
    """Return the @ids of the policies the slicer picks for one request."""
    assert policy_set._slicer is not None
    prepared = prepare(0, question, policy_set._fits(question.action))
    assert prepared.keys is not None
    selection = policy_set._slicer.select([prepared.keys])
    assert selection is not None
    return [policy_set.policies[position].display_id for position in selection]


class TestPolicyIndex:
    """Exact slices for each shape."""

    def test_tenant_read_meets_its_tenant_agent_and_guardrails(
        self, sliced: CedarPolicySet
    ) -> None:
        """a1 reading in t1: its tenant's policies, its own, and the guardrails."""
        assert selected(sliced, request()) == [
            "cross-tenant",
            "t1-read",
            "a1-reads",
            "t1-young-tasks",
        ]

    def test_other_tenant_and_action_meet_none_of_t1(
        self, sliced: CedarPolicySet
    ) -> None:
        """a2 writing in t2 meets no per-tenant policy of t1 and no read permit."""
        assert selected(sliced, request(agent="a2", tenant="t2", action="write")) == [
            "cross-tenant"
        ]

    def test_prod_admin_meets_the_action_and_environment_guardrails(
        self, sliced: CedarPolicySet
    ) -> None:
        """Admin on prod: never-admin, cross-tenant and prod-hours."""
        assert selected(
            sliced, request(agent="a2", tenant="t2", action="admin", environment="prod")
        ) == ["never-admin", "cross-tenant", "prod-hours"]

    def test_target_scope(self, sliced: CedarPolicySet) -> None:
        """OpenTask on x1 meets the x1 policy; on x0 it does not."""
        assert "x1-open" in selected(sliced, request(action="OpenTask", target="x1"))
        assert "x1-open" not in selected(
            sliced, request(action="OpenTask", target="x0")
        )

    def test_action_group_is_learnt_from_the_schema(
        self, sliced: CedarPolicySet
    ) -> None:
        """List is in the reads group, write is not."""
        assert "a1-reads" in selected(sliced, request(action="list"))
        assert "a1-reads" not in selected(sliced, request(action="write"))
        assert sliced._slicer is not None
        groups = sliced._slicer._groups_of
        assert groups[(ACTION_TYPE, "list")] == frozenset({(ACTION_TYPE, "reads")})
        assert groups[(ACTION_TYPE, "write")] == frozenset()

    def test_multitenant_set_slices_to_a_handful(
        self, make_policy_dir: DirFactory
    ) -> None:
        """Of 600 per-tenant policies, a request meets its own tenant's two."""
        tenants = "\n".join(
            f'@id("t{n}-read") permit (principal, action == Gatepass::Action::"read", '
            f'resource) when {{ resource.tenant == "t{n}" && principal.tenant == '
            f'"t{n}" }};\n@id("t{n}-agent") permit (principal == Gatepass::Agent::'
            f'"agt{n}", action, resource) when {{ resource.tenant == "t{n}" }};'
            for n in range(300)
        )
        directory = make_policy_dir({"tenants.cedar": tenants}, schema=SCHEMA)
        policy_set = CedarPolicySet.from_directory(directory)
        question = request(agent="agt7", tenant="t7")
        assert selected(policy_set, question) == ["t7-read", "t7-agent"]
        [decision] = policy_set.decide([question])
        assert decision == Decision(allowed=True, policy_ids=("t7-read", "t7-agent"))

    def test_unclassified_policies_are_always_selected(self) -> None:
        """A policy with no constraint is in every slice; an empty one in none."""
        index = PolicyIndex([(), (), *([()] * 0)])
        keys = request_keys(request())
        assert index.select(keys, frozenset()) == {0, 1}
        assert index.always == (0, 1)

    def test_constraint_met_by_no_request_is_filed_nowhere(self) -> None:
        """[].contains(resource.tenant) can never hold: the policy is never picked."""
        policy = {
            "effect": "permit",
            "principal": {"op": "All"},
            "action": {"op": "All"},
            "resource": {"op": "All"},
            "conditions": [
                {
                    "kind": "when",
                    "body": {
                        "contains": {
                            "left": {"Set": []},
                            "right": {
                                ".": {"left": {"Var": "resource"}, "attr": "tenant"}
                            },
                        }
                    },
                }
            ],
        }
        index = PolicyIndex([constraints_of(policy)])
        assert index.select(request_keys(request()), frozenset()) == set()


class TestSlicedDecisions:
    """Decisions from slices are those of the whole set (issue 15, aim 2)."""

    def test_issue15_sliced_ids_ttl_and_errors_equal_the_whole_set(
        self, sliced: CedarPolicySet, whole: CedarPolicySet
    ) -> None:
        """Allowed, TTL cap, deciding @ids and errors agree on every shape."""
        questions = [
            request(),
            request(action="list"),
            request(agent="a2", tenant="t2"),
            request(action="admin", environment="prod"),
            request(action="OpenTask", target="x1"),
            request(age=10**13),
            request(tenant="t2", age=10**13),
            request(environment="prod", now=TUESDAY_10.replace(hour=22)),
        ]
        for question in questions:
            assert sliced.decide([question]) == whole.decide([question])
        assert sliced.decide(questions) == whole.decide(questions)

    def test_issue15_failing_forbid_of_the_tenant_still_denies(
        self, sliced: CedarPolicySet
    ) -> None:
        """t1's forbid overflows for an old task: in t1's slice, it denies by @id."""
        [decision] = sliced.decide([request(age=10**13)])
        assert not decision.allowed
        assert decision.policy_ids == ()
        assert len(decision.errors) == 1
        assert "t1-young-tasks" in decision.errors[0]
        assert "policy7" not in decision.errors[0]

    def test_issue15_other_tenants_forbid_is_left_out_without_changing_anything(
        self, sliced: CedarPolicySet, whole: CedarPolicySet
    ) -> None:
        """For t2 the t1 forbid never reaches its arithmetic: allowed either way."""
        question = request(agent="a2", tenant="t2", age=10**13)
        assert "t1-young-tasks" not in selected(sliced, question)
        expected = Decision(
            allowed=True,
            profile=IssuanceProfile(ttl=dt.timedelta(seconds=300)),
            policy_ids=("t2-read",),
        )
        assert sliced.decide([question]) == whole.decide([question]) == [expected]

    def test_deciding_ids_come_in_load_order(
        self, sliced: CedarPolicySet, whole: CedarPolicySet
    ) -> None:
        """Several permits are listed as loaded, not in Cedar's set order."""
        [decision] = sliced.decide([request()])
        assert decision == Decision(
            allowed=True,
            profile=IssuanceProfile(ttl=dt.timedelta(seconds=120)),
            policy_ids=("t1-read", "a1-reads"),
        )
        assert whole.decide([request()]) == [decision]

    def test_request_cedar_refuses_is_decided_by_the_whole_set(
        self, sliced: CedarPolicySet, whole: CedarPolicySet
    ) -> None:
        """An unknown action or a wrongly typed fact is never sliced, and denies."""
        spoiled = dataclasses.replace(
            request(),
            task=dataclasses.replace(request().task, purpose=7),  # type: ignore[arg-type]
        )
        for question in (request(action="delete"), request(action="reads"), spoiled):
            [decision] = sliced.decide([question])
            assert not decision.allowed
            assert decision.errors
            assert whole.decide([question]) == [decision]


class TestSliceSets:
    """The cedarpy sets built for slices."""

    def test_slice_set_is_cached(self, sliced: CedarPolicySet) -> None:
        """The same selection gets the same parsed set."""
        slicer = sliced._slicer
        assert slicer is not None
        selection = (1, 3)
        first = slicer.policy_set(selection)
        assert first is not None
        assert slicer.policy_set(selection) is first

    def test_cache_is_bounded_by_policies_held(
        self, directory: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Past its budget the cache forgets the least recently used slices."""
        monkeypatch.setattr(slicing_module, "_CACHE_POLICIES", 4)
        slicer = PolicySlicer(read_sources(directory).policy_json, max_share=1.0)
        for selection in ((0,), (1, 2), (3,), (4, 5), (6,)):
            assert slicer.policy_set(selection) is not None
        assert slicer._cached_policies <= 4
        assert list(slicer._cache) == [(3,), (4, 5), (6,)]

    def test_slice_larger_than_its_share_uses_the_whole_set(
        self, directory: Path
    ) -> None:
        """A slice above its share of the set, or above the cap, is not built."""
        policies = read_sources(directory).policy_json  # 8 policies
        assert PolicySlicer(policies, max_share=0.5).policy_set((0, 1, 2, 3))
        assert PolicySlicer(policies, max_share=0.5).policy_set((0, 1, 2, 3, 4)) is None
        assert (
            PolicySlicer(policies, max_share=1.0, max_slice=2).policy_set((0, 1, 2))
            is None
        )

    def test_default_share_never_parses_more_than_one_whole_evaluation(
        self, directory: Path
    ) -> None:
        """By default a slice holds at most 1/25 of the set: none of 8 policies."""
        slicer = PolicySlicer(read_sources(directory).policy_json)
        assert slicer.policy_set((0,)) is None

    def test_unlearnt_action_has_no_selection(self, directory: Path) -> None:
        """Until Cedar has said which groups an action is in, nothing is sliced."""
        slicer = PolicySlicer(read_sources(directory).policy_json)
        assert slicer.select([request_keys(request())]) is None


class TestSlicingSwitch:
    """Slicing can be off, and is off when the sources disagree."""

    def test_slicing_off_keeps_no_index(self, directory: Path) -> None:
        """slicing=False decides with the whole set only."""
        assert CedarPolicySet.from_directory(directory, slicing=False)._slicer is None

    def test_small_set_is_never_sliced(self, quickstart: CedarPolicySet) -> None:
        """Six policies are under 25: no slice could pay, so no index is kept."""
        assert quickstart._slicer is None

    def test_inconsistent_sources_decide_with_the_whole_set(
        self, directory: Path, whole: CedarPolicySet
    ) -> None:
        """If the JSON and the text disagree on the policies, nothing is sliced."""
        sources = read_sources(directory)
        broken: Any = dataclasses.replace(sources, policy_json=sources.policy_json[:-1])
        policy_set = CedarPolicySet(broken, directory=directory)
        assert policy_set._slicer is None
        assert policy_set.decide([request()]) == whole.decide([request()])

    def test_reload_indexes_the_new_set(self, make_policy_dir: DirFactory) -> None:
        """After a hot reload the new policies are indexed and decide."""
        # Enough policies for the default share to keep an index (over 25).
        fillers = "\n".join(
            "permit (principal, action, resource) when "
            f'{{ resource.tenant == "f{n}" }};'
            for n in range(40)
        )
        directory = make_policy_dir(
            {"policies.cedar": POLICIES, "fillers.cedar": fillers}, schema=SCHEMA
        )
        holder = PolicyHolder(directory, clock=FrozenClock())
        question = request(agent="a3", tenant="t3")
        assert not holder.current.decide([question])[0].allowed
        (directory / "t3.cedar").write_text(
            '@id("t3-read") permit (principal, action == Gatepass::Action::"read", '
            'resource) when { resource.tenant == "t3" };',
            encoding="utf-8",
        )
        assert holder.reload().changed
        assert selected(holder.current, question) == ["cross-tenant", "t3-read"]
        assert holder.current._slicer is not None
        assert holder.current.decide([question])[0].policy_ids == ("t3-read",)


class TestUnusualPaths:
    """The paths a healthy broker rarely takes still decide as the whole set."""

    def test_unencodable_action_denies_only_its_request(
        self, sliced: CedarPolicySet
    ) -> None:
        """An action cedarpy cannot encode fails alone; its batch mate is decided."""
        good, bad = request(), request(action="re\ud800d")
        decisions = sliced.decide([good, bad])
        assert decisions[0] == sliced.decide([good])[0]
        assert decisions[0].allowed
        assert not decisions[1].allowed
        assert decisions[1].errors

    def test_action_that_is_no_string_denies(self, sliced: CedarPolicySet) -> None:
        """A non-string action never fits the schema and is denied."""
        odd = dataclasses.replace(request(), action=7)  # type: ignore[arg-type]
        [decision] = sliced.decide([odd])
        assert not decision.allowed
        assert decision.errors

    def test_action_whose_groups_are_unknown_is_decided_whole(
        self, sliced: CedarPolicySet, whole: CedarPolicySet
    ) -> None:
        """If the group probe has not answered, the whole set decides."""
        sliced.decide([request()])
        assert sliced._slicer is not None
        sliced._slicer._groups_of.clear()
        assert sliced.decide([request()]) == whole.decide([request()])

    def test_group_probe_that_fails_learns_nothing(
        self, sliced: CedarPolicySet
    ) -> None:
        """A probe Cedar cannot answer leaves the action unlearnt, never groupless."""
        slicer = sliced._slicer
        assert slicer is not None
        prepared = prepare(0, request(action="list"), fits=False)
        entities = sliced._entities_for([prepared])
        broken = {**prepared.request, "context": "{"}
        slicer.learn_action("list", broken, entities)
        assert (ACTION_TYPE, "list") not in slicer._groups_of

    def test_slice_that_cannot_be_built_falls_back_to_the_whole_set(
        self,
        sliced: CedarPolicySet,
        whole: CedarPolicySet,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """Should parsing a slice ever fail, the whole set decides, not an error."""
        assert sliced._slicer is not None
        monkeypatch.setattr(sliced._slicer, "_fragments", ("not json",) * 8)
        assert sliced.decide([request()]) == whole.decide([request()])

    def test_racing_parses_share_the_first_set(self, directory: Path) -> None:
        """Two misses of one selection keep one set and count its policies once."""

        class Racing(PolicySlicer):
            raced = False

            def _document(self, selection: tuple[int, ...]) -> str:
                if not self.raced:
                    self.raced = True
                    self.winner = self.policy_set(selection)
                return super()._document(selection)

        slicer = Racing(read_sources(directory).policy_json, max_share=1.0)
        assert slicer.policy_set((0, 1)) is slicer.winner
        assert slicer._cached_policies == 2
        assert slicer.cached_slices == 1
