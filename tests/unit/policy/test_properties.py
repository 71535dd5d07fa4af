import datetime as dt
import functools
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from gatepass.policy import (
    AgentFacts,
    CedarPolicySet,
    Decision,
    IssuanceProfile,
    PolicyRequest,
    TargetFacts,
    TaskFacts,
)

ACTIONS = ("OpenTask", "read", "write", "admin")


def oracle(request: PolicyRequest) -> Decision:
    """The quickstart rules, restated in plain Python."""
    agent, target, task = request.agent, request.target, request.task
    utc = request.now.astimezone(dt.UTC)
    same_tenant = target.tenant == agent.tenant and task.tenant == agent.tenant
    forbids = set()
    if not same_tenant:
        forbids.add("forbid-cross-tenant")
    business_hours = utc.isoweekday() <= 5 and 8 <= utc.hour < 18
    # Opening a task and writing (which needs approval on prod) stay possible at
    # any hour; everything else on prod only in business hours.
    unattended = request.action not in {"OpenTask", "write"}
    if target.environment == "prod" and unattended and not business_hours:
        forbids.add("prod-business-hours-only")
    if request.action == "admin":
        forbids.add("never-admin")
    if forbids:
        return Decision(allowed=False, policy_ids=tuple(sorted(forbids)))
    permits: dict[str, IssuanceProfile] = {}
    if request.action == "OpenTask":
        permits["open-task-in-own-tenant"] = IssuanceProfile()
    if (
        request.action == "read"
        and agent.labels.get("team") == "support"
        and target.risk in {"low", "medium"}
    ):
        permits["support-reads-low-risk"] = IssuanceProfile(ttl=seconds(600))
    if (
        request.action == "write"
        and target.environment == "dev"
        and task.purpose == "support-triage"
    ):
        permits["triage-writes-dev"] = IssuanceProfile(ttl=seconds(300))
    if (
        request.action == "write"
        and target.environment == "prod"
        and agent.labels.get("team") == "support"
        and task.purpose == "support-triage"
    ):
        permits["prod-writes-need-approval"] = IssuanceProfile(
            ttl=seconds(60),
            approval_groups=frozenset({"prod-approvers"}),
            quorum=1,
            approval_ttl=seconds(900),
            max_uses=1,
        )
    if not permits:
        return Decision(allowed=False)
    return Decision(
        allowed=True,
        profile=IssuanceProfile.strictest(permits.values()),
        policy_ids=tuple(sorted(permits)),
    )


def seconds(value: int) -> dt.timedelta:
    """A whole number of seconds."""
    return dt.timedelta(seconds=value)


def normalised(decision: Decision) -> Decision:
    """Compare policy ids as a set: Cedar does not promise their order."""
    return Decision(
        allowed=decision.allowed,
        profile=decision.profile,
        policy_ids=tuple(sorted(decision.policy_ids)),
        errors=decision.errors,
    )


def one_of_or_text(*values: str) -> st.SearchStrategy[str]:
    """Mostly the interesting values, sometimes any short text."""
    return st.sampled_from(values) | st.text(max_size=8)


tenants = one_of_or_text("acme", "globex")
labels = st.dictionaries(
    one_of_or_text("team", "role"), one_of_or_text("support", "billing"), max_size=3
)
moments = st.datetimes(
    min_value=dt.datetime(2000, 1, 1),  # noqa: DTZ001
    max_value=dt.datetime(2100, 1, 1),  # noqa: DTZ001
    timezones=st.just(dt.UTC)
    | st.builds(
        dt.timezone,
        st.timedeltas(
            min_value=dt.timedelta(hours=-23), max_value=dt.timedelta(hours=23)
        ),
    ),
)
quickstart_requests = st.builds(
    PolicyRequest,
    agent=st.builds(
        AgentFacts,
        id=st.just("agt_demo"),
        name=st.just("demo"),
        tenant=tenants,
        labels=labels,
    ),
    action=st.sampled_from(ACTIONS),
    target=st.builds(
        TargetFacts,
        name=st.sampled_from(["tickets", "tickets-prod"]),
        uri=st.just("http://127.0.0.1:8401/"),
        kind=st.just("http"),
        environment=one_of_or_text("dev", "prod", "staging"),
        tenant=tenants,
        risk=one_of_or_text("low", "medium", "high"),
    ),
    task=st.builds(
        TaskFacts,
        purpose=one_of_or_text("support-triage", "reporting"),
        intent=st.text(max_size=20),
        environment=one_of_or_text("dev", "prod"),
        tenant=tenants,
        age_seconds=st.integers(min_value=0, max_value=2**40),
    ),
    now=moments,
)

# Any code point, lone surrogates included: they are legal in a Python str but
# not encodable as UTF-8, which is where bindings tend to crash.
anything = st.text(st.characters() | st.characters(categories=["Cs"]), max_size=12)
hostile_requests = st.builds(
    PolicyRequest,
    agent=st.builds(
        AgentFacts,
        id=anything,
        name=anything,
        tenant=anything,
        labels=st.dictionaries(anything, anything, max_size=3),
    ),
    action=anything | st.sampled_from(ACTIONS),
    target=st.builds(
        TargetFacts,
        name=anything,
        uri=anything,
        kind=anything,
        environment=anything,
        tenant=anything,
        risk=anything,
    ),
    task=st.builds(
        TaskFacts,
        purpose=anything,
        intent=anything,
        environment=anything,
        tenant=anything,
        age_seconds=st.integers(),
    ),
    now=moments | st.datetimes(),
)


class TestQuickstartAgainstOracle:
    """The quickstart set agrees with a Python restatement of its rules."""

    @settings(max_examples=100, deadline=None)
    @given(request=quickstart_requests)
    def test_decision_matches_the_rules(
        self, quickstart: CedarPolicySet, request: PolicyRequest
    ) -> None:
        """Allowed exactly when a permit applies and no forbid does, with its TTL."""
        [decision] = quickstart.decide([request])
        assert normalised(decision) == oracle(request)

    @settings(max_examples=50, deadline=None)
    @given(requests=st.lists(quickstart_requests, min_size=2, max_size=6))
    def test_batch_equals_one_by_one(
        self, quickstart: CedarPolicySet, requests: list[PolicyRequest]
    ) -> None:
        """Deciding a batch gives the same answers as deciding each alone."""
        together = quickstart.decide(requests)
        alone = [quickstart.decide([request])[0] for request in requests]
        assert [normalised(d) for d in together] == [normalised(d) for d in alone]


class TestHostileInput:
    """Arbitrary input never raises and never widens access."""

    @settings(max_examples=100, deadline=None)
    @given(request=hostile_requests)
    def test_arbitrary_values_never_raise_and_never_widen(
        self, quickstart: CedarPolicySet, request: PolicyRequest
    ) -> None:
        """Any strings, integers and times give a decision, never beyond the rules."""
        [decision] = quickstart.decide([request])
        if decision.errors:
            assert not decision.allowed
        if decision.allowed:
            assert oracle(request).allowed

    @settings(max_examples=50, deadline=None)
    @given(requests=st.lists(hostile_requests, max_size=5))
    def test_arbitrary_batches_answer_every_request(
        self, quickstart: CedarPolicySet, requests: list[PolicyRequest]
    ) -> None:
        """A batch of hostile requests yields exactly one decision per request."""
        decisions = quickstart.decide(requests)
        assert len(decisions) == len(requests)
        assert all(isinstance(d, Decision) for d in decisions)


class _AlwaysValidating(CedarPolicySet):
    """A set that never trusts an action to fit: Cedar validates every request."""

    def _fits(self, action: object, *, delegated: bool = False) -> bool:  # noqa: ARG002 - the point is to ignore them
        return False


@functools.cache
def always_validating(directory: Path) -> CedarPolicySet:
    """Load a directory once as an :class:`_AlwaysValidating` set."""
    return _AlwaysValidating.from_directory(directory)


class TestRequestValidationOnce:
    """Deciding without Cedar's per-request schema check changes no decision."""

    @settings(max_examples=100, deadline=None)
    @given(requests=st.lists(quickstart_requests | hostile_requests, max_size=4))
    def test_same_decisions_as_validating_every_request(
        self,
        quickstart: CedarPolicySet,
        quickstart_dir: Path,
        requests: list[PolicyRequest],
    ) -> None:
        """Allowed, policies, TTL and whether there are errors all agree."""
        fast = quickstart.decide(requests)
        full = always_validating(quickstart_dir).decide(requests)
        assert [
            (d.allowed, d.ttl_cap, sorted(d.policy_ids), bool(d.errors)) for d in fast
        ] == [
            (d.allowed, d.ttl_cap, sorted(d.policy_ids), bool(d.errors)) for d in full
        ]
