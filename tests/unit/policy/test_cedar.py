import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

from gatepass.policy import (
    CedarPolicySet,
    Decision,
    IssuanceProfile,
    PolicyEngine,
    PolicyRequest,
)
from gatepass.policy.model import ENTITY_CACHE_SIZE, prepare

RequestFactory = Callable[..., PolicyRequest]
DirFactory = Callable[..., Path]

PERMIT_READ = """
@id("read-a") @ttl("600")
permit (principal, action == Gatepass::Action::"read", resource);
"""


class TestQuickstartDecisions:
    """Decisions of the quickstart policies."""

    def test_support_read_on_low_risk_is_allowed_with_its_ttl(
        self, quickstart: CedarPolicySet, make_request: RequestFactory
    ) -> None:
        """A support agent reading a low-risk target is allowed for 600 s."""
        [decision] = quickstart.decide([make_request(action="read")])
        assert decision == Decision(
            allowed=True,
            profile=IssuanceProfile(ttl=dt.timedelta(seconds=600)),
            policy_ids=("support-reads-low-risk",),
        )

    def test_default_deny_cites_no_policy(
        self, quickstart: CedarPolicySet, make_request: RequestFactory
    ) -> None:
        """A request no permit covers is denied with no policy ids and no errors."""
        [decision] = quickstart.decide(
            [make_request(action="read", agent={"labels": {"team": "billing"}})]
        )
        assert decision == Decision(allowed=False)

    def test_forbid_names_the_forbidding_policy(
        self, quickstart: CedarPolicySet, make_request: RequestFactory
    ) -> None:
        """An explicit forbid is reported by its @id."""
        [decision] = quickstart.decide([make_request(action="admin")])
        assert not decision.allowed
        assert decision.policy_ids == ("never-admin",)

    def test_open_task_without_ttl_has_no_cap(
        self, quickstart: CedarPolicySet, make_request: RequestFactory
    ) -> None:
        """A permit without @ttl allows with no TTL cap."""
        [decision] = quickstart.decide([make_request(action="OpenTask")])
        assert decision.allowed
        assert decision.ttl_cap is None

    def test_prod_forbidden_outside_business_hours(
        self, quickstart: CedarPolicySet, make_request: RequestFactory
    ) -> None:
        """Reading prod at 18:00 UTC on a weekday is denied; opening a task is not."""
        evening = dt.datetime(2026, 1, 6, 18, tzinfo=dt.UTC)
        read, open_task = quickstart.decide(
            [
                make_request(action=action, now=evening, target={"environment": "prod"})
                for action in ("read", "OpenTask")
            ]
        )
        assert read.policy_ids == ("prod-business-hours-only",)
        assert not read.allowed
        assert open_task.allowed

    def test_time_is_read_in_utc(
        self, quickstart: CedarPolicySet, make_request: RequestFactory
    ) -> None:
        """A non-UTC now is converted: 19:00+02:00 is 17:00 UTC, inside hours."""
        plus_two = dt.timezone(dt.timedelta(hours=2))
        request = make_request(
            action="read",
            now=dt.datetime(2026, 1, 6, 19, tzinfo=plus_two),
            target={"environment": "prod"},
        )
        assert quickstart.decide([request])[0].allowed

    def test_batch_keeps_order(
        self, quickstart: CedarPolicySet, make_request: RequestFactory
    ) -> None:
        """Several requests are decided in one call, in order."""
        decisions = quickstart.decide(
            [
                make_request(action="read"),
                make_request(action="admin"),
                make_request(action="write"),
            ]
        )
        assert [d.allowed for d in decisions] == [True, False, True]
        assert decisions[2].ttl_cap == dt.timedelta(seconds=300)

    def test_empty_batch(self, quickstart: CedarPolicySet) -> None:
        """No requests, no decisions."""
        assert quickstart.decide([]) == []

    def test_conflicting_descriptions_of_one_agent_are_decided_separately(
        self, quickstart: CedarPolicySet, make_request: RequestFactory
    ) -> None:
        """Two requests that describe the same agent id differently each get theirs."""
        decisions = quickstart.decide(
            [
                make_request(agent={"labels": {"team": "support"}}),
                make_request(agent={"labels": {"team": "billing"}}),
                make_request(agent={"labels": {"team": "support"}}),
            ]
        )
        assert [d.allowed for d in decisions] == [True, False, True]

    def test_issue15_batch_mates_do_not_lend_their_entities(
        self, make_policy_dir: DirFactory, make_request: RequestFactory
    ) -> None:
        """A policy reading another agent by name fails alone, and so in a batch."""
        directory = make_policy_dir(
            {
                "p.cedar": PERMIT_READ + '@id("names-another-agent")\n'
                "forbid (principal, action, resource) when "
                '{ Gatepass::Agent::"agt_other".tenant == "elsewhere" };'
            }
        )
        # Loads: the policy failing for the load-time probe is no schema problem.
        policy_set = CedarPolicySet.from_directory(directory)
        mine, other = make_request(), make_request(agent={"id": "agt_other"})
        [alone] = policy_set.decide([mine])
        assert not alone.allowed
        assert "does not exist" in alone.errors[0]
        assert policy_set.decide([mine, other]) == [alone, *policy_set.decide([other])]
        assert policy_set.decide([other])[0].allowed

    def test_is_a_policy_engine(self, quickstart: CedarPolicySet) -> None:
        """The set exposes the PolicyEngine attributes."""
        engine: PolicyEngine = quickstart
        assert engine.policy_count == 15
        assert engine.digest.startswith("sha256:")
        assert "policy_count=15" in repr(quickstart)


class TestTTLAndIds:
    """TTL caps and policy ids in decisions."""

    def test_ttl_is_minimum_of_deciding_permits(
        self, make_policy_dir: DirFactory, make_request: RequestFactory
    ) -> None:
        """When several permits allow, the smallest @ttl caps the grant."""
        directory = make_policy_dir(
            {
                "a.cedar": PERMIT_READ,
                "b.cedar": '@id("read-b") @ttl("120")\n'
                'permit (principal, action == Gatepass::Action::"read", resource);',
                "c.cedar": 'permit (principal, action == Gatepass::Action::"read", '
                "resource);",
            }
        )
        [decision] = CedarPolicySet.from_directory(directory).decide([make_request()])
        assert decision.ttl_cap == dt.timedelta(seconds=120)
        assert sorted(decision.policy_ids) == ["c.cedar:0", "read-a", "read-b"]

    def test_policy_without_id_is_named_by_file_and_index(
        self, make_policy_dir: DirFactory, make_request: RequestFactory
    ) -> None:
        """A policy without @id is reported as <file>:<index> within its file."""
        directory = make_policy_dir(
            {
                "z.cedar": 'forbid (principal, action == Gatepass::Action::"write", '
                "resource);\n"
                'permit (principal, action == Gatepass::Action::"read", resource);',
            }
        )
        [decision] = CedarPolicySet.from_directory(directory).decide([make_request()])
        assert decision == Decision(allowed=True, policy_ids=("z.cedar:1",))


class TestErrorsDeny:
    """Every evaluation error is a deny."""

    def test_erroring_forbid_still_denies(
        self, make_policy_dir: DirFactory, make_request: RequestFactory
    ) -> None:
        """A forbid that errors at run time (overflow) turns an allow into a deny."""
        directory = make_policy_dir(
            {
                "permit.cedar": PERMIT_READ,
                "forbid.cedar": '@id("overflowing-forbid")\n'
                "forbid (principal, action, resource)\n"
                "when { context.task.age_seconds * 4611686018427387904 > 0 };",
            }
        )
        [decision] = CedarPolicySet.from_directory(directory).decide([make_request()])
        assert not decision.allowed
        assert decision.policy_ids == ()
        assert decision.ttl_cap is None
        assert len(decision.errors) == 1
        assert "overflowing-forbid" in decision.errors[0]
        assert "policy1" not in decision.errors[0]

    def test_error_beside_a_matching_forbid_cites_the_forbid(
        self, make_policy_dir: DirFactory, make_request: RequestFactory
    ) -> None:
        """A deny with an error still names the forbid that matched."""
        directory = make_policy_dir(
            {
                "a.cedar": '@id("no-read")\n'
                'forbid (principal, action == Gatepass::Action::"read", resource);\n'
                '@id("bad")\nforbid (principal, action, resource)\n'
                "when { context.task.age_seconds * 4611686018427387904 > 0 };",
            }
        )
        [decision] = CedarPolicySet.from_directory(directory).decide([make_request()])
        assert decision.policy_ids == ("no-read",)
        assert decision.errors

    def test_unknown_action_denies_with_an_error(
        self, quickstart: CedarPolicySet, make_request: RequestFactory
    ) -> None:
        """An action the schema does not declare is a deny that says why."""
        [decision] = quickstart.decide([make_request(action="delete")])
        assert not decision.allowed
        assert "delete" in decision.errors[0]

    def test_request_the_schema_rejects_denies(
        self, quickstart: CedarPolicySet, make_request: RequestFactory
    ) -> None:
        """An age beyond Cedar's Long range is refused and denied."""
        [decision] = quickstart.decide([make_request(task={"age_seconds": 2**70})])
        assert not decision.allowed
        assert decision.errors

    def test_naive_time_denies(
        self, quickstart: CedarPolicySet, make_request: RequestFactory
    ) -> None:
        """A request without a time zone is denied rather than guessed."""
        [decision] = quickstart.decide(
            [make_request(now=dt.datetime(2026, 1, 6, 10))]  # noqa: DTZ001
        )
        assert decision.errors == ("invalid request: now must be timezone-aware",)

    def test_lone_surrogate_denies_only_its_request(
        self, quickstart: CedarPolicySet, make_request: RequestFactory
    ) -> None:
        """A value cedarpy cannot encode denies that request; its batch mates pass."""
        decisions = quickstart.decide(
            [
                make_request(),
                make_request(target={"name": "\ud800"}),
                make_request(agent={"labels": {"\udfff": "x"}}),
            ]
        )
        assert [d.allowed for d in decisions] == [True, False, False]
        assert all(d.errors for d in decisions[1:])

    def test_error_text_names_only_known_positions(
        self, quickstart: CedarPolicySet
    ) -> None:
        """Positional ids in errors become @ids; unknown positions stay as they are."""
        first = quickstart.policies[0].display_id
        assert quickstart._readable("policy `policy0` and `policy99`") == (
            f"policy `{first}` and `policy99`"
        )

    def test_entity_cache_is_bounded(
        self, quickstart_dir: Path, make_request: RequestFactory
    ) -> None:
        """Parsed entity sets are reused, and the cache never outgrows its bound."""
        policy_set = CedarPolicySet.from_directory(quickstart_dir)
        policy_set.decide([make_request()])
        policy_set.decide([make_request()])
        assert len(policy_set._entities) == 2  # the load-time probe and the agent
        for number in range(ENTITY_CACHE_SIZE + 5):
            policy_set.decide([make_request(agent={"id": f"agt_{number}"})])
        assert len(policy_set._entities) == ENTITY_CACHE_SIZE


# The quickstart schema plus an action group and an action whose context differs.
SCHEMA_VARIANT = """
namespace Gatepass {
  entity Agent = { name: String, tenant: String } tags String;
  entity Target = {
    uri: String, kind: String, environment: String, tenant: String, risk: String,
  };
  type Task = {
    purpose: String, intent: String, environment: String, tenant: String,
    age_seconds: Long,
  };
  type Time = { hour: Long, weekday: Long, epoch: Long };
  type Request = { task: Task, time: Time };
  action reads;
  action OpenTask, write appliesTo {
    principal: [Agent], resource: [Target], context: Request,
  };
  action read in [reads] appliesTo {
    principal: [Agent], resource: [Target], context: Request,
  };
  action legacy appliesTo { principal: [Agent], resource: [Target], context: {} };
}
"""


class TestRequestValidation:
    """Cedar validates each action's requests once; the guarantees stay per request."""

    def test_declared_action_is_validated_once(
        self, quickstart_dir: Path, make_request: RequestFactory
    ) -> None:
        """After the first request, an action is known to fit; others are not."""
        policy_set = CedarPolicySet.from_directory(quickstart_dir)
        # The load-time probes, of a task and of a delegated task.
        assert policy_set._fitting == {("OpenTask", False), ("OpenTask", True)}
        policy_set.decide([make_request(action="read"), make_request(action="nope")])
        assert policy_set._fitting == {
            ("OpenTask", False),
            ("OpenTask", True),
            ("read", False),
        }

    def test_action_with_another_context_denies(
        self, make_policy_dir: DirFactory, make_request: RequestFactory
    ) -> None:
        """An action whose declared context is not gatepass's is an error, so deny."""
        directory = make_policy_dir(
            {"p.cedar": "permit (principal, action, resource);"},
            schema=SCHEMA_VARIANT,
        )
        policy_set = CedarPolicySet.from_directory(directory)
        [legacy, write] = policy_set.decide(
            [make_request(action="legacy"), make_request(action="write")]
        )
        assert not legacy.allowed
        assert "task" in legacy.errors[0]
        assert write.allowed
        assert ("legacy", False) not in policy_set._fitting

    def test_action_groups_still_apply(
        self, make_policy_dir: DirFactory, make_request: RequestFactory
    ) -> None:
        """`action in group` still works when Cedar no longer gets the schema.

        The action entities (with their groups) come from the schema with the
        entity handle.
        """
        directory = make_policy_dir(
            {
                "p.cedar": '@id("group")\npermit (principal, '
                'action in Gatepass::Action::"reads", resource);'
            },
            schema=SCHEMA_VARIANT,
        )
        policy_set = CedarPolicySet.from_directory(directory)
        for _ in range(2):  # first validated by Cedar, then known to fit
            [read, write] = policy_set.decide(
                [make_request(action="read"), make_request(action="write")]
            )
            assert read == Decision(allowed=True, policy_ids=("group",))
            assert not write.allowed

    def test_context_value_of_the_wrong_type_denies(
        self, quickstart: CedarPolicySet, make_request: RequestFactory
    ) -> None:
        """A task value of another type than the schema's is still refused by Cedar."""
        for task in ({"age_seconds": True}, {"age_seconds": 1.5}, {"purpose": 7}):
            [decision] = quickstart.decide([make_request(task=task)])
            assert not decision.allowed
            assert decision.errors

    def test_entity_facts_must_be_strings(
        self, quickstart: CedarPolicySet, make_request: RequestFactory
    ) -> None:
        """Non-string agent or target facts are an invalid request.

        As entity cache keys they would equal other values (1 == 1.0 == True).
        """
        for request in (
            make_request(agent={"labels": {"team": 1}}),
            make_request(agent={"tenant": True}),
            make_request(target={"risk": 1.0}),
        ):
            [decision] = quickstart.decide([request])
            assert not decision.allowed
            assert decision.errors == (
                "invalid request: agent and target facts must be strings",
            )

    def test_context_text_is_the_json_of_the_facts(
        self, make_request: RequestFactory
    ) -> None:
        """The per-task JSON prefix gives the same context as serialising it whole."""
        request = make_request(task={"intent": 'quotes " and \\ and \u2603'})
        fast = prepare(0, request, fits=True)
        slow = prepare(0, request, fits=False)
        assert fast.checked
        assert not slow.checked
        assert isinstance(fast.request["context"], str)
        assert isinstance(slow.request["context"], str)
        assert json.loads(fast.request["context"]) == json.loads(
            slow.request["context"]
        )
