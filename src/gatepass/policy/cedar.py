"""
The Cedar adapter: a policy directory parsed once, deciding many requests.

The Cedar model lives in the ``Gatepass`` namespace:

- principal ``Gatepass::Agent::"<agent id>"`` with ``name`` and ``tenant``; the
  agent's labels are entity tags (``principal.getTag("team")``);
- resource ``Gatepass::Target::"<target name>"`` with ``uri``, ``kind``,
  ``environment``, ``tenant`` and ``risk``;
- action ``Gatepass::Action::"OpenTask"`` and whatever target actions the schema
  declares;
- context ``{task: {purpose, intent, environment, tenant, age_seconds},
  time: {hour, weekday, epoch}}``, time in UTC, weekday 1 = Monday.

Any evaluation error is a deny: Cedar skips a policy that errors, so an erroring
``forbid`` would otherwise not block (DESIGN.md, promise 3).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json
import re
import threading
from collections.abc import Sequence
from pathlib import Path

import cedarpy

from gatepass.clock import to_epoch
from gatepass.errors import ConfigurationError
from gatepass.policy.facts import (
    OPEN_TASK,
    AgentFacts,
    Decision,
    PolicyEngine,
    PolicyRequest,
    TargetFacts,
    TaskFacts,
)
from gatepass.policy.sources import PolicyInfo, PolicySources, read_sources

__all__ = ["ACTION_TYPE", "AGENT_TYPE", "TARGET_TYPE", "CedarPolicySet"]

AGENT_TYPE = "Gatepass::Agent"
"""The Cedar entity type of principals."""
TARGET_TYPE = "Gatepass::Target"
"""The Cedar entity type of resources."""
ACTION_TYPE = "Gatepass::Action"
"""The Cedar entity type of actions."""

# Entity sets are validated against the schema when parsed; the same agent and
# target pairs recur, so the parsed handles are kept, keyed by the facts' values.
_ENTITY_CACHE_SIZE = 1024
# Cedar's Long is a signed 64-bit integer.
_LONG_MIN, _LONG_MAX = -(2**63), 2**63 - 1
_STR = frozenset({str})
# Cedar's error text can quote whole entity documents; keep decisions readable.
_ERROR_LIMIT = 500
# Cedar quotes a policy's positional id in backticks: "policy `policy3`".
_POSITIONAL_ID = re.compile(r"`(policy\d+)`")

_PROBE = PolicyRequest(
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


# What an entity is described by: its kind ("A" agent, "T" target) and every value
# that goes into its JSON. Equal descriptions give identical JSON, so a description
# keys the parsed entity handles without serialising anything per request.
_Description = tuple[object, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class _Prepared:
    """One request in cedarpy's shape, with the two entities it needs."""

    index: int
    request: dict[str, object]
    entities: dict[str, _Description]  # uid key -> entity description
    # True when the action is known to fit the schema and the context is built from
    # values of the schema's types, so Cedar need not validate the request again.
    checked: bool


class CedarPolicySet:
    """
    A checked Cedar policy directory, parsed once into cedarpy handles.

    Build it with :meth:`from_directory`. Instances are immutable and safe to share
    between threads.

    Attributes:
        directory: where the policies were read from.
        digest: ``sha256:`` hash of the schema and policy files.
        policy_count: how many policies the set holds.
        policies: what is known about each policy, in evaluation order.
    """

    def __init__(self, sources: PolicySources, *, directory: Path) -> None:
        """
        Parse checked sources into handles; use :meth:`from_directory` instead.

        Args:
            sources: the checked sources.
            directory: where they came from, for messages.

        Raises:
            ConfigurationError: the schema does not describe gatepass's entities,
                actions and context.
        """
        self.directory = directory
        self.digest = sources.digest
        self.policies = sources.policies
        self.policy_count = len(sources.policies)
        self._schema = sources.schema
        self._policy_set = cedarpy.PolicySet.from_str(sources.policy_text)
        self._by_position = {
            f"policy{index}": info for index, info in enumerate(sources.policies)
        }
        self._entities: dict[tuple[_Description, ...], cedarpy.Entities] = {}
        self._entities_lock = threading.Lock()
        # Actions whose requests the schema accepts (see _fits); bounded by the
        # actions the schema declares, since only those can ever be added. It only
        # grows, one atomic set.add at a time, so sharing it between threads is safe.
        self._fitting: set[str] = set()
        self._no_policies = cedarpy.PolicySet.from_str("")
        probe = self.decide([_PROBE])[0]
        if probe.errors:
            raise ConfigurationError(
                f"{directory}: the schema does not fit gatepass's request model "
                f"(agents with tags, targets, the {OPEN_TASK} action and the task "
                f"and time context): {'; '.join(probe.errors)}"
            )

    @classmethod
    def from_directory(cls, path: Path) -> CedarPolicySet:
        """
        Load, parse and validate a policy directory.

        Args:
            path: a directory with ``schema.cedarschema`` and ``*.cedar`` files.

        Returns:
            The loaded policy set.

        Raises:
            ConfigurationError: anything is wrong with the directory; the message
                names the file and, where known, the line.
        """
        return cls(read_sources(path), directory=path)

    def decide(self, requests: Sequence[PolicyRequest]) -> list[Decision]:
        """
        Decide each request; any error in a request makes its decision a deny.

        Args:
            requests: the questions, in order.

        Returns:
            One decision per request, in the same order.
        """
        decisions: list[Decision | None] = [None] * len(requests)
        batch: list[_Prepared] = []
        for index, request in enumerate(requests):
            try:
                batch.append(_prepare(index, request, self._fits(request.action)))
            except (TypeError, ValueError, OverflowError) as exc:
                decisions[index] = _error_decision(f"invalid request: {exc}")
        for group in _consistent_groups(batch):
            for prepared, decision in self._evaluate(group):
                decisions[prepared.index] = decision
        return [
            decision if decision is not None else _error_decision("not evaluated")
            for decision in decisions
        ]

    def _evaluate(self, group: list[_Prepared]) -> list[tuple[_Prepared, Decision]]:
        """Run one cedarpy batch; on failure, retry alone so errors stay precise."""
        # Cedar validates each request against the schema it is given: the action
        # must be declared for Agent and Target, and the context must have the
        # declared shape and types; a request that fails is an error, so a deny.
        # That costs ~15-20 us per request, so it is skipped only when _prepare
        # has established the same: the action passed that validation with a
        # context of the same shape (_fits), and every context value has the
        # declared type. Anything else is validated by Cedar as before. Entities
        # are always validated, when their handle is built.
        checked = all(prepared.checked for prepared in group)
        try:
            entities = self._entities_for(group)
            results = cedarpy.is_authorized_batch(
                [prepared.request for prepared in group],
                self._policy_set,
                entities,
                schema=None if checked else self._schema,
            )
        # Anything cedarpy raises (ValueError on a malformed entity, and
        # UnicodeEncodeError on a lone surrogate) becomes a deny for the request,
        # never an exception for the caller. A Rust panic (a BaseException) still
        # propagates: it fails closed, as a server error.
        except Exception as exc:  # noqa: BLE001
            if len(group) > 1:
                return [pair for single in group for pair in self._evaluate([single])]
            return [
                (group[0], _error_decision(f"cedar: {str(exc) or type(exc).__name__}"))
            ]
        return [
            (prepared, self._decision(result))
            for prepared, result in zip(group, results, strict=True)
        ]

    def _entities_for(self, group: list[_Prepared]) -> cedarpy.Entities:
        unique: dict[str, _Description] = {}
        for prepared in group:
            unique.update(prepared.entities)
        key = tuple(unique.values())
        cached = self._entities.get(key)
        if cached is not None:
            return cached
        document = "[" + ",".join(map(_entity_json, key)) + "]"
        handle = cedarpy.Entities.from_json_str(document, self._schema)
        with self._entities_lock:
            if self._entities and len(self._entities) >= _ENTITY_CACHE_SIZE:
                self._entities.pop(next(iter(self._entities)), None)
            self._entities[key] = handle
        return handle

    def _fits(self, action: object) -> bool:
        """
        Tell whether the schema accepts requests for ``action`` with our context.

        The principal and resource types are fixed, and the context always has the
        shape of the probe's, so one request validated by Cedar against the schema
        (with no policies, so that only the request itself can fail) answers for
        every request with this action whose values have the probe's types.
        """
        if action in self._fitting:
            return True
        if not isinstance(action, str):
            return False
        probe = dataclasses.replace(_PROBE, action=action)
        try:
            prepared = _prepare(0, probe, fits=False)
            result = cedarpy.is_authorized(
                prepared.request,
                self._no_policies,
                self._entities_for([prepared]),
                schema=self._schema,
            )
        except Exception:  # noqa: BLE001 - anything cedarpy raises means "no"
            return False
        if result.diagnostics.errors:
            return False
        self._fitting.add(action)
        return True

    def _decision(self, result: cedarpy.AuthzResult) -> Decision:
        errors = tuple(self._readable(error) for error in result.diagnostics.errors)
        deciding = [self._info(reason) for reason in result.diagnostics.reasons]
        policy_ids = tuple(info.display_id for info in deciding)
        if errors:
            # An error may have hidden a forbid: deny, and do not cite permits as
            # if they had decided.
            forbids = tuple(i.display_id for i in deciding if i.effect == "forbid")
            return Decision(allowed=False, policy_ids=forbids, errors=errors)
        if not result.allowed:
            return Decision(allowed=False, policy_ids=policy_ids)
        caps = [info.ttl for info in deciding if info.ttl is not None]
        return Decision(
            allowed=True, ttl_cap=min(caps) if caps else None, policy_ids=policy_ids
        )

    def _info(self, positional_id: str) -> PolicyInfo:
        info = self._by_position.get(positional_id)
        if info is None:
            return PolicyInfo(
                display_id=positional_id, ttl=None, effect="", file="", line=0
            )
        return info

    def _readable(self, error: str) -> str:
        """Name policies by their ``@id`` in a Cedar error, and bound its length."""

        def rename(match: re.Match[str]) -> str:
            return f"`{self._info(match.group(1)).display_id}`"

        return _POSITIONAL_ID.sub(rename, error)[:_ERROR_LIMIT]

    def __repr__(self) -> str:
        """Show where the set came from and what it holds."""
        return (
            f"CedarPolicySet(directory={str(self.directory)!r}, "
            f"policy_count={self.policy_count}, digest={self.digest!r})"
        )


def _error_decision(error: str) -> Decision:
    return Decision(allowed=False, errors=(error[:_ERROR_LIMIT],))


def _prepare(index: int, request: PolicyRequest, fits: bool) -> _Prepared:
    """
    Build cedarpy's request and describe its two entities; raise on unusable facts.

    Args:
        index: the request's position in the batch.
        request: the question.
        fits: whether the schema is known to accept requests for this action.
    """
    agent, target, task, now = request.agent, request.target, request.task, request.now
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    utc = now.astimezone(dt.UTC)
    labels = tuple(agent.labels.items())
    agent_entity = ("A", agent.id, agent.name, agent.tenant, labels)
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
    if not _all_str(
        agent.id, agent.name, agent.tenant, *(part for pair in labels for part in pair)
    ) or not _all_str(*target_entity):
        raise TypeError("agent and target facts must be strings")
    age = task.age_seconds
    checked = (
        fits
        and _all_str(task.purpose, task.intent, task.environment, task.tenant)
        and type(age) is int
        and _LONG_MIN <= age <= _LONG_MAX
    )
    hour, weekday, epoch = utc.hour, utc.isoweekday(), to_epoch(utc)
    if checked:
        # Only the age and the time change between a task's requests: the rest of
        # the JSON is serialised once per task. All three are ints here.
        prefix = _task_prefix(task.purpose, task.intent, task.environment, task.tenant)
        context = (
            f'{prefix}{age}}}, "time": '
            f'{{"hour": {hour}, "weekday": {weekday}, "epoch": {epoch}}}}}'
        )
    else:
        # cedarpy would json.dumps a dict context itself; passing the string saves
        # a copy of the request dict.
        context = json.dumps(
            {
                "task": {
                    "purpose": task.purpose,
                    "intent": task.intent,
                    "environment": task.environment,
                    "tenant": task.tenant,
                    "age_seconds": age,
                },
                "time": {"hour": hour, "weekday": weekday, "epoch": epoch},
            }
        )
    return _Prepared(
        index=index,
        request={
            "principal": {"type": AGENT_TYPE, "id": agent.id},
            "action": {"type": ACTION_TYPE, "id": request.action},
            "resource": {"type": TARGET_TYPE, "id": target.name},
            "context": context,
        },
        entities={f"A\0{agent.id}": agent_entity, f"T\0{target.name}": target_entity},
        checked=checked,
    )


def _all_str(*values: object) -> bool:
    return set(map(type, values)) <= _STR


@functools.lru_cache(maxsize=_ENTITY_CACHE_SIZE)
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


def _entity_json(description: _Description) -> str:
    """Return the Cedar JSON of an agent or target described by ``_prepare``."""
    if description[0] == "A":
        _, agent_id, name, tenant, labels = description
        return json.dumps(
            {
                "uid": {"type": AGENT_TYPE, "id": agent_id},
                "attrs": {"name": name, "tenant": tenant},
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


def _consistent_groups(batch: list[_Prepared]) -> list[list[_Prepared]]:
    """
    Split a batch so that no entity id appears with two different descriptions.

    Cedar takes one entity set per batch; two requests that describe the same
    agent id differently (labels changed between them) cannot share one.
    """
    if len(batch) <= 1:
        return [batch] if batch else []
    groups: list[list[_Prepared]] = []
    current: list[_Prepared] = []
    seen: dict[str, _Description] = {}
    for prepared in batch:
        conflict = any(
            seen.get(key, entity) != entity for key, entity in prepared.entities.items()
        )
        if conflict:
            groups.append(current)
            current, seen = [], {}
        current.append(prepared)
        seen.update(prepared.entities)
    if current:
        groups.append(current)
    return groups


_: type[PolicyEngine] = CedarPolicySet
