"""
The Cedar request gatepass builds, and the facts the policy index relies on.

:func:`prepare` turns every :class:`~gatepass.policy.PolicyRequest` into one Cedar
request of the same shape: the principal is a ``Gatepass::Agent`` entity with the
attributes ``name`` and ``tenant`` and its labels as tags, the resource a
``Gatepass::Target`` entity with ``uri``, ``kind``, ``environment``, ``tenant`` and
``risk``, and the context a record ``{task: {purpose, intent, environment, tenant,
age_seconds}, time: {hour, weekday, epoch}}``. Both entities are put in the entity
set of every request, with no parents.

Those facts are what make policy slicing exact (see
:mod:`gatepass.policy.shapes`): an attribute in :data:`ALWAYS_PRESENT` is present in
every request, so reading it can never fail, and an entity without parents is
``in`` only itself. They live here, next to the code that makes them true: whoever
changes the entities or the context changes this module, and its facts with it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json

from gatepass.clock import to_epoch
from gatepass.policy.facts import (
    DELEGATE,
    OPEN_TASK,
    AgentFacts,
    DelegationFacts,
    DelegationRequest,
    PolicyRequest,
    TargetFacts,
    TaskFacts,
)

__all__ = [
    "ACTION",
    "ACTION_GROUP",
    "ACTION_TYPE",
    "AGENT_TYPE",
    "ALWAYS_PRESENT",
    "ATTRIBUTE_DIMENSIONS",
    "DIMENSIONS",
    "ENTITY_CACHE_SIZE",
    "KEY_PATHS",
    "NO_SIGNALS",
    "PRINCIPAL",
    "PROBE",
    "PROBE_DELEGATED",
    "RESOURCE",
    "SIGNAL_FEATURE_CHOICES",
    "TARGET_TYPE",
    "Description",
    "Keys",
    "Prepared",
    "SignalFeatures",
    "Uid",
    "entity_json",
    "prepare",
    "prepare_delegation",
    "request_keys",
]

AGENT_TYPE = "Gatepass::Agent"
"""The Cedar entity type of principals."""
TARGET_TYPE = "Gatepass::Target"
"""The Cedar entity type of resources."""
ACTION_TYPE = "Gatepass::Action"
"""The Cedar entity type of actions."""

Uid = tuple[str, str]
"""An entity uid as (fully qualified type, id)."""

Keys = tuple[object, ...]
"""A request's value in each index dimension but ``ACTION_GROUP``, by dimension."""

# The string attributes of every request, in the order request_keys lists them.
# Each is an attribute path from a Cedar variable.
KEY_PATHS: tuple[tuple[str, ...], ...] = (
    ("principal", "name"),
    ("principal", "tenant"),
    ("resource", "uri"),
    ("resource", "kind"),
    ("resource", "environment"),
    ("resource", "tenant"),
    ("resource", "risk"),
    ("context", "task", "purpose"),
    ("context", "task", "intent"),
    ("context", "task", "environment"),
    ("context", "task", "tenant"),
)
"""Attribute paths whose value is a string in every request, usable as index keys."""

ALWAYS_PRESENT: frozenset[tuple[str, ...]] = frozenset(
    {
        *KEY_PATHS,
        ("context", "task"),
        ("context", "time"),
        ("context", "task", "age_seconds"),
        ("context", "time", "hour"),
        ("context", "time", "weekday"),
        ("context", "time", "epoch"),
    }
)
"""Every attribute path that is present in every request gatepass builds."""

# The index dimensions: what a policy can be indexed by. A request has one value in
# each (request_keys), except ACTION_GROUP, where it has the set of action groups
# its action is in.
PRINCIPAL = 0
"""The principal's uid."""
ACTION = 1
"""The action's uid."""
RESOURCE = 2
"""The resource's uid."""
ATTRIBUTE_DIMENSIONS: dict[tuple[str, ...], int] = {
    path: 3 + offset for offset, path in enumerate(KEY_PATHS)
}
"""The dimension of each string attribute path."""
ACTION_GROUP = 3 + len(KEY_PATHS)
"""The action entities the request's action is ``in`` (itself included)."""
DIMENSIONS: tuple[str, ...] = (
    "principal",
    "action",
    "resource",
    *(".".join(path) for path in KEY_PATHS),
    "action in",
)
"""A readable name for each dimension, by number."""


def request_keys(request: PolicyRequest) -> Keys:
    """
    Return a request's value in each index dimension.

    Only called for requests whose facts are all exact ``str`` (and the age an
    ``int``), the ones cedar.py hands to Cedar without a schema check: their values
    compare in Python exactly as Cedar compares them.

    Args:
        request: the question.

    Returns:
        The principal, action and resource uids, then the ``KEY_PATHS`` values.
    """
    agent, target, task = request.agent, request.target, request.task
    return (
        (AGENT_TYPE, agent.id),
        (ACTION_TYPE, request.action),
        (TARGET_TYPE, target.name),
        agent.name,
        agent.tenant,
        target.uri,
        target.kind,
        target.environment,
        target.tenant,
        target.risk,
        task.purpose,
        task.intent,
        task.environment,
        task.tenant,
    )


ENTITY_CACHE_SIZE = 1024
"""How many parsed entity sets (and task context prefixes) are kept."""
# Cedar's Long is a signed 64-bit integer.
_LONG_MIN, _LONG_MAX = -(2**63), 2**63 - 1
_STR = frozenset({str})

PROBE = PolicyRequest(
    agent=AgentFacts(id="probe", name="probe", tenant="probe", labels={"a": "b"}),
    action=OPEN_TASK,
    target=TargetFacts(
        name="probe",
        uri="probe",
        kind="probe",
        environment="probe",
        tenant="probe",
        risk="probe",
    ),
    task=TaskFacts(
        purpose="probe",
        intent="probe",
        environment="probe",
        tenant="probe",
        age_seconds=0,
    ),
    now=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
)

"""A request of gatepass's shape, used to check a schema and an action against it."""

PROBE_DELEGATED = dataclasses.replace(
    PROBE,
    delegation=DelegationFacts(
        depth=1,
        parent_agent="probe",
        root_agent="probe",
        root_purpose="probe",
        root_tenant="probe",
    ),
)
"""The probe as a delegated task asks: its context also has ``delegation``."""


@dataclasses.dataclass(frozen=True, slots=True)
class SignalFeatures:
    """
    Which context-signal facts the schema declares, so requests carry them.

    Cedar records and entities are closed: an attribute the schema does not
    declare makes the request fail (and so deny), and one it declares must be
    there. A schema written before context signals existed keeps working
    unchanged; one that declares them gets them in every request.

    Attributes:
        risk: ``Agent`` declares ``risk: String`` (``principal.risk``).
        environment_frozen: the context declares ``environment_frozen: Bool``.
        tenant_incident: the context declares ``tenant_incident: Bool``.
    """

    risk: bool = False
    environment_frozen: bool = False
    tenant_incident: bool = False


SIGNAL_FEATURE_CHOICES: tuple[SignalFeatures, ...] = tuple(
    SignalFeatures(risk, frozen, incident)
    for risk in (True, False)
    for frozen in (True, False)
    for incident in (True, False)
)
"""Every combination, the richest first: the policy set uses the first that fits."""
NO_SIGNALS = SignalFeatures()
"""A schema that declares none of the context-signal facts."""

# What an entity is described by: its kind ("A" agent, "T" target) and every value
# that goes into its JSON. Equal descriptions give identical JSON, so a description
# keys the parsed entity handles without serialising anything per request.
Description = tuple[object, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class Prepared:
    """One request in cedarpy's shape, with the two entities it needs."""

    index: int
    request: dict[str, object]
    entities: dict[str, Description]  # uid key -> entity description
    # True when the action is known to fit the schema and the context is built from
    # values of the schema's types, so Cedar need not validate the request again.
    checked: bool
    # The request's index keys (request_keys), only when it is checked.
    keys: Keys | None


def prepare(
    index: int,
    request: PolicyRequest,
    fits: bool,
    features: SignalFeatures = NO_SIGNALS,
) -> Prepared:
    """
    Build cedarpy's request and describe its two entities; raise on unusable facts.

    Args:
        index: the request's position in the batch.
        request: the question.
        fits: whether the schema is known to accept requests for this action.
        features: the context-signal facts the schema declares.
    """
    agent, target, task, now = request.agent, request.target, request.task, request.now
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    utc = now.astimezone(dt.UTC)
    labels = tuple(agent.labels.items())
    risk = agent.risk if features.risk else None
    if risk is not None and type(risk) is not str:
        raise TypeError("agent risk must be a string")
    agent_entity = ("A", agent.id, agent.name, agent.tenant, labels, agent.issuer, risk)
    signals: dict[str, bool] = {}
    if features.environment_frozen:
        signals["environment_frozen"] = request.environment_frozen is True
    if features.tenant_incident:
        signals["tenant_incident"] = request.tenant_incident is True
    target_entity = (
        "T",
        target.name,
        target.uri,
        target.kind,
        target.environment,
        target.tenant,
        target.risk,
    )
    # The descriptions key the cache of schema-validated entity handles, so they
    # must compare equal only when their JSON is identical: strings only (1, 1.0
    # and True are equal as keys but not as JSON).
    if (
        not _all_str(
            agent.id,
            agent.name,
            agent.tenant,
            *(part for pair in labels for part in pair),
        )
        or (agent.issuer is not None and not _all_str(agent.issuer))
        or not _all_str(*target_entity)
    ):
        raise TypeError("agent and target facts must be strings")
    age = task.age_seconds
    delegation = request.delegation
    checked = (
        fits
        and _all_str(request.action, task.purpose, task.intent, task.environment)
        and type(task.tenant) is str
        and type(age) is int
        and _LONG_MIN <= age <= _LONG_MAX
        and (delegation is None or _typed_delegation(delegation))
    )
    hour, weekday, epoch = utc.hour, utc.isoweekday(), to_epoch(utc)
    if checked:
        # Only the age and the time change between a task's requests: the rest of
        # the JSON is serialised once per task. All three are ints here.
        prefix = _task_prefix(task.purpose, task.intent, task.environment, task.tenant)
        extra = "".join(
            f', "{name}": {"true" if value else "false"}'
            for name, value in signals.items()
        )
        if delegation is not None:
            extra += f", {_delegation_json(delegation)}"
        context = (
            f'{prefix}{age}}}, "time": '
            f'{{"hour": {hour}, "weekday": {weekday}, "epoch": {epoch}}}{extra}}}'
        )
    else:
        # cedarpy would json.dumps a dict context itself; passing the string saves
        # a copy of the request dict.
        document: dict[str, object] = {
            "task": _task_record(task),
            "time": {"hour": hour, "weekday": weekday, "epoch": epoch},
            **signals,
        }
        if delegation is not None:
            document["delegation"] = _delegation_record(delegation)
        context = json.dumps(document)
    return Prepared(
        index=index,
        request={
            "principal": {"type": AGENT_TYPE, "id": agent.id},
            "action": {"type": ACTION_TYPE, "id": request.action},
            "resource": {"type": TARGET_TYPE, "id": target.name},
            "context": context,
        },
        entities={f"A\0{agent.id}": agent_entity, f"T\0{target.name}": target_entity},
        checked=checked,
        keys=request_keys(request) if checked else None,
    )


def prepare_delegation(
    request: DelegationRequest, features: SignalFeatures = NO_SIGNALS
) -> Prepared:
    """
    Build cedarpy's ``Delegate`` request; raise on unusable facts.

    The principal is the parent agent and the resource the child agent, both
    ``Gatepass::Agent`` entities; the context is ``{task, time, delegation,
    subtask: {targets, actions, purpose, ttl_seconds, environment, tenant}}``.
    The request is never marked checked: Cedar validates it against the schema,
    so a schema without ``Delegate`` denies every delegation.

    Args:
        request: the question.
        features: the context-signal facts the schema declares (here, whether
            agents carry ``risk``, so a policy can refuse a risky child).

    Raises:
        TypeError: an agent fact is not a string.
        ValueError: ``now`` is naive.
    """
    if request.now.tzinfo is None or request.now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    utc = request.now.astimezone(dt.UTC)
    parent, child, task = request.parent, request.child, request.task
    entities: dict[str, Description] = {}
    for agent in (parent, child):
        labels = tuple(agent.labels.items())
        if not _all_str(
            agent.id, agent.name, agent.tenant, *(p for pair in labels for p in pair)
        ) or (agent.issuer is not None and not _all_str(agent.issuer)):
            raise TypeError("agent facts must be strings")
        risk = agent.risk if features.risk else None
        if risk is not None and type(risk) is not str:
            raise TypeError("agent risk must be a string")
        entities[f"A\0{agent.id}"] = (
            "A",
            agent.id,
            agent.name,
            agent.tenant,
            labels,
            agent.issuer,
            risk,
        )
    context = {
        "task": _task_record(task),
        "time": {
            "hour": utc.hour,
            "weekday": utc.isoweekday(),
            "epoch": to_epoch(utc),
        },
        "delegation": _delegation_record(request.delegation),
        "subtask": {
            # Cedar sets: policies ask ``context.subtask.actions.contains("read")``.
            "targets": list(request.targets),
            "actions": list(request.actions),
            "purpose": request.purpose,
            "ttl_seconds": request.ttl_seconds,
            "environment": task.environment,
            "tenant": task.tenant,
        },
    }
    return Prepared(
        index=0,
        request={
            "principal": {"type": AGENT_TYPE, "id": parent.id},
            "action": {"type": ACTION_TYPE, "id": DELEGATE},
            "resource": {"type": AGENT_TYPE, "id": child.id},
            "context": json.dumps(context),
        },
        entities=entities,
        checked=False,
        keys=None,
    )


def _task_record(task: TaskFacts) -> dict[str, object]:
    return {
        "purpose": task.purpose,
        "intent": task.intent,
        "environment": task.environment,
        "tenant": task.tenant,
        "age_seconds": task.age_seconds,
    }


def _delegation_record(delegation: DelegationFacts) -> dict[str, object]:
    return {
        "depth": delegation.depth,
        "parent_agent": delegation.parent_agent,
        "root_agent": delegation.root_agent,
        "root_purpose": delegation.root_purpose,
        "root_tenant": delegation.root_tenant,
    }


def _typed_delegation(delegation: DelegationFacts) -> bool:
    """Tell whether every delegation fact has the schema's type (Long, String)."""
    depth = delegation.depth
    return (
        type(depth) is int
        and _LONG_MIN <= depth <= _LONG_MAX
        and _all_str(
            delegation.parent_agent,
            delegation.root_agent,
            delegation.root_purpose,
            delegation.root_tenant,
        )
    )


@functools.lru_cache(maxsize=ENTITY_CACHE_SIZE)
def _delegation_json(delegation: DelegationFacts) -> str:
    """Return ``"delegation": {...}`` for a context; the same for a task's life."""
    return '"delegation": ' + json.dumps(_delegation_record(delegation))


def _all_str(*values: object) -> bool:
    return set(map(type, values)) <= _STR


@functools.lru_cache(maxsize=ENTITY_CACHE_SIZE)
def _task_prefix(purpose: str, intent: str, environment: str, tenant: str) -> str:
    """Return a context's JSON up to the task's age, which ends it (strings only)."""
    text = json.dumps(
        {
            "task": {
                "purpose": purpose,
                "intent": intent,
                "environment": environment,
                "tenant": tenant,
                "age_seconds": 0,
            }
        }
    )
    return text.removesuffix("0}}")


def entity_json(description: Description) -> str:
    """Return the Cedar JSON of an agent or target described by :func:`prepare`."""
    if description[0] == "A":
        _, agent_id, name, tenant, labels, issuer = description[:6]
        # Agents described without the risk fact (other request kinds) omit it.
        risk = description[6] if len(description) > 6 else None
        attrs: dict[str, object] = {"name": name, "tenant": tenant}
        if issuer is not None:
            # Optional in the schema (``issuer?: String``): only federated agents
            # have one, so ``principal has issuer`` tells them apart.
            attrs["issuer"] = issuer
        if risk is not None:
            # Only when the schema declares it (SignalFeatures).
            attrs["risk"] = risk
        return json.dumps(
            {
                "uid": {"type": AGENT_TYPE, "id": agent_id},
                "attrs": attrs,
                "parents": [],
                "tags": dict(labels),  # type: ignore[call-overload]
            }
        )
    _, target_name, uri, kind, environment, tenant, risk = description
    return json.dumps(
        {
            "uid": {"type": TARGET_TYPE, "id": target_name},
            "attrs": {
                "uri": uri,
                "kind": kind,
                "environment": environment,
                "tenant": tenant,
                "risk": risk,
            },
            "parents": [],
        }
    )
