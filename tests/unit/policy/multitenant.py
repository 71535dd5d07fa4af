"""
Hypothesis strategies: multi-tenant policy sets and schema-directed requests.

The sets mix what slicing indexes (per-tenant permits and forbids, agent and
target scopes, ``action in [...]`` over action groups, attribute equalities) with
what it must leave alone (``||``, ``if``, ``getTag``, keys after arithmetic) and
with policies that fail for some requests (overflow, an attribute of an entity
that is not in the request). Requests draw each fact from the values the policies
name, near misses of them, and now and then a value Cedar refuses.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path
from string import Template

from hypothesis import strategies as st

from gatepass.policy import (
    AgentFacts,
    DelegationFacts,
    PolicyRequest,
    TargetFacts,
    TaskFacts,
)

TENANTS = ("t0", "t1", "t2")
AGENTS = ("a0", "a1", "a2")
TARGETS = ("x0", "x1", "x2")
ACTIONS = ("OpenTask", "read", "list", "write", "admin")
GROUPS = ("reads", "changes")
ENVIRONMENTS = ("dev", "prod")
KINDS = ("http", "postgres")
RISKS = ("low", "medium", "high")
URIS = ("u0", "u1")

# The quickstart's model, with two action groups.
SCHEMA = """
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
  type Delegation = {
    depth: Long, parent_agent: String, root_agent: String, root_purpose: String,
    root_tenant: String,
  };
  type Request = { task: Task, time: Time, delegation?: Delegation };
  action reads, changes;
  action OpenTask appliesTo {
    principal: [Agent], resource: [Target], context: Request,
  };
  action read, list in [reads] appliesTo {
    principal: [Agent], resource: [Target], context: Request,
  };
  action write, admin in [changes] appliesTo {
    principal: [Agent], resource: [Target], context: Request,
  };
}
"""

GUARDRAILS = (
    (
        Path(__file__).resolve().parents[3]
        / "examples/quickstart/policies/guardrails.cedar"
    ).read_text(encoding="utf-8")
    + """
@id("forbid-cross-tenant")
forbid (principal, action, resource)
unless {
  resource.tenant == principal.tenant &&
  context.task.tenant == principal.tenant
};
"""
)

# One policy template a line, in string.Template syntax; $effect is permit or forbid.
_TEMPLATE_LINES = """
$effect (principal, action == $action, resource) when { resource.tenant == "$tenant" \
&& principal.tenant == "$tenant" && context.task.tenant == "$tenant" };
$effect (principal, action in [$actions], resource) \
when { resource.tenant == "$tenant" && resource.environment == "$env" };
$effect (principal == Gatepass::Agent::"$agent", action in [$actions], resource);
$effect (principal, action, resource == Gatepass::Target::"$target") \
when { principal.tenant == "$tenant" };
$effect (principal in Gatepass::Agent::"$agent", action == $action, \
resource in Gatepass::Target::"$target");
$effect (principal is Gatepass::Agent, action, \
resource is Gatepass::Target in Gatepass::Target::"$target");
$effect (principal, action == $action, resource) \
when { resource.kind == "$kind" && ["low", "medium"].contains(resource.risk) };
$effect (principal, action, resource) \
when { "$tenant" == context.task.tenant && resource has uri && resource.uri == "$uri" };
$effect (principal, action, resource) \
when { principal == Gatepass::Agent::"$agent" && resource.environment == "$env" };
$effect (principal, action, resource) \
unless { principal.tenant == "$tenant2" } when { resource.tenant == "$tenant" };
$effect (principal, action, resource) \
when { context.time.hour < $hour && resource.tenant == "$tenant" };
$effect (principal, action, resource) when { resource.tenant == "$tenant" \
&& context has delegation && context.delegation.depth >= $depth };
$effect (principal, action, resource) \
when { resource.tenant == "$tenant" || principal.tenant == "$tenant2" };
$effect (principal, action, resource) \
when { if resource.environment == "$env" \
then principal.tenant == "$tenant" else false };
$effect (principal, action == $action, resource) when { principal.hasTag("team") \
&& principal.getTag("team") == "support" && resource.tenant == "$tenant" };
$effect (principal, action, resource) \
when { context.task.age_seconds * 1000000000000 > 0 };
$effect (principal, action, resource) \
when { resource.tenant == "$tenant" \
&& context.task.age_seconds + 9223372036854775000 > 0 };
$effect (principal, action, resource) \
when { context.task.age_seconds * 1000000000000 > 0 && resource.tenant == "$tenant" };
$effect (principal, action in [$actions], resource) when { resource.environment == \
"$env" && Gatepass::Agent::"$agent".tenant == "$tenant" };
$effect (principal, action, resource) when { principal.tenant == "$tenant" } \
unless { context.time.epoch * 4000000000 > 0 };
$effect (principal, action, resource) when { resource.tenant == "$tenant" \
&& context has delegation && context.delegation.depth * 4611686018427387904 > 0 };
"""
# The first twelve are indexed (tenant, agent, target, kind, group and attribute
# shapes, one reading the delegation); the next three are indexed by their scope
# only (||, if, getTag); the last six fail for some requests (overflow, an entity
# the request does not carry, a delegation deep enough to overflow).
_TEMPLATES = tuple(
    Template(line) for line in _TEMPLATE_LINES.strip().splitlines() if line
)
_FAILING = 6


def _action(name: str) -> str:
    return f'Gatepass::Action::"{name}"'


_PLACEHOLDERS: dict[str, st.SearchStrategy[str]] = {
    "action": st.sampled_from(ACTIONS).map(_action),
    "actions": st.lists(
        st.sampled_from(ACTIONS + GROUPS), min_size=1, max_size=2, unique=True
    ).map(lambda names: ", ".join(map(_action, names))),
    "tenant": st.sampled_from(TENANTS),
    "tenant2": st.sampled_from(TENANTS),
    "agent": st.sampled_from(AGENTS),
    "target": st.sampled_from(TARGETS),
    "env": st.sampled_from(ENVIRONMENTS),
    "kind": st.sampled_from(KINDS),
    "uri": st.sampled_from(URIS),
    "hour": st.integers(min_value=0, max_value=24).map(str),
    "depth": st.integers(min_value=1, max_value=3).map(str),
}


@st.composite
def policy_texts(draw: st.DrawFn, *, failing: bool = False) -> str:
    """One policy from the templates, with drawn values and annotations."""
    pool = _TEMPLATES[-_FAILING:] if failing else _TEMPLATES[:-_FAILING]
    template = draw(st.sampled_from(pool))
    effect = draw(st.sampled_from(["permit", "forbid"]))
    # Only the placeholders the template uses are drawn, which keeps shrinking
    # (and generation) cheap.
    values = {
        name: draw(_PLACEHOLDERS[name])
        for name in template.get_identifiers()
        if name != "effect"
    }
    body = template.substitute(effect=effect, **values)
    ttl = draw(st.none() | st.integers(min_value=1, max_value=900))
    annotation = f'@ttl("{ttl}") ' if ttl is not None and effect == "permit" else ""
    return annotation + body


@st.composite
def policy_files(draw: st.DrawFn) -> dict[str, str]:
    """A policy directory: sometimes the guardrails, drawn policies, a few failing."""
    texts = draw(st.lists(policy_texts(), min_size=3, max_size=12))
    failing = draw(st.lists(policy_texts(failing=True), min_size=1, max_size=3))
    for text in failing:
        texts.insert(draw(st.integers(min_value=0, max_value=len(texts))), text)
    named = [
        f'@id("p{number}") {text}' if draw(st.booleans()) or number % 3 else text
        for number, text in enumerate(texts)
    ]
    split = draw(st.integers(min_value=0, max_value=len(named)))
    files = {"a.cedar": "\n".join(named[:split]), "b.cedar": "\n".join(named[split:])}
    if draw(st.booleans()):
        files["0-guardrails.cedar"] = GUARDRAILS
    return {name: text for name, text in files.items() if text}


def _near(values: tuple[str, ...]) -> st.SearchStrategy[str]:
    """Mostly the values policies name, sometimes a near miss of one."""
    misses = (*(f"{value} " for value in values), "", values[0].upper())
    return st.one_of(
        st.sampled_from(values), st.sampled_from(values), st.sampled_from(misses)
    )


_moments = st.datetimes(
    min_value=dt.datetime(2000, 1, 1),  # noqa: DTZ001 - made aware by timezones
    max_value=dt.datetime(2100, 1, 1),  # noqa: DTZ001
    timezones=st.just(dt.UTC),
)
# Ages on both sides of each template's overflow.
_ages = st.sampled_from([0, 5, 807, 808, 9_223_372, 10**13]) | st.integers(0, 2**40)

schema_requests = st.builds(
    PolicyRequest,
    agent=st.builds(
        AgentFacts,
        id=_near(AGENTS),
        name=st.just("agent"),
        tenant=_near(TENANTS),
        labels=st.sampled_from([{}, {"team": "support"}, {"team": "billing"}]),
    ),
    action=st.sampled_from((*ACTIONS, "reads", "delete")),
    target=st.builds(
        TargetFacts,
        name=_near(TARGETS),
        uri=_near(URIS),
        kind=_near(KINDS),
        environment=_near(ENVIRONMENTS),
        tenant=_near(TENANTS),
        risk=st.sampled_from(RISKS),
    ),
    task=st.builds(
        TaskFacts,
        purpose=st.just("triage"),
        intent=st.just("work"),
        environment=_near(ENVIRONMENTS),
        tenant=_near(TENANTS),
        age_seconds=_ages,
    ),
    now=_moments,
    # A task received by delegation, now and then (depth 2 overflows a template).
    delegation=st.none()
    | st.builds(
        DelegationFacts,
        depth=st.integers(min_value=1, max_value=4),
        parent_agent=_near(AGENTS),
        root_agent=_near(AGENTS),
        root_purpose=st.just("triage"),
        root_tenant=_near(TENANTS),
    ),
)
"""Requests over the values the policies name, and near misses of them."""


def _maybe_refused(request: PolicyRequest, variant: int) -> PolicyRequest:
    """Spoil one fact of a request the way a buggy caller might (variants 0-3)."""
    task, target = request.task, request.target
    if variant >= 4:
        return request
    spoiled = (
        {"task": replace(task, purpose=7)},  # type: ignore[arg-type]
        {"task": replace(task, age_seconds=2**70)},
        {"task": replace(task, tenant="t0\ud800")},
        {"target": replace(target, tenant="t0\udfff")},
    )
    return replace(request, **spoiled[variant])


requests = st.builds(_maybe_refused, schema_requests, st.integers(0, 15))
"""Schema-directed requests, and one in four with a fact Cedar must refuse."""
