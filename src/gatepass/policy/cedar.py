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

import datetime as dt
import json
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
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
# target pairs recur, so the parsed handles are kept, keyed by their JSON.
_ENTITY_CACHE_SIZE = 1024
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


@dataclass(frozen=True, slots=True)
class _Prepared:
    """One request in cedarpy's shape, with the two entities it needs."""

    index: int
    request: dict[str, object]
    entities: dict[str, str]  # uid key -> entity JSON


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
        self._entities: dict[str, cedarpy.Entities] = {}
        self._entities_lock = threading.Lock()
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
                batch.append(_prepare(index, request))
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
        try:
            entities = self._entities_for(group)
            results = cedarpy.is_authorized_batch(
                [prepared.request for prepared in group],
                self._policy_set,
                entities,
                schema=self._schema,
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
        unique: dict[str, str] = {}
        for prepared in group:
            unique.update(prepared.entities)
        document = "[" + ",".join(unique.values()) + "]"
        cached = self._entities.get(document)
        if cached is not None:
            return cached
        handle = cedarpy.Entities.from_json_str(document, self._schema)
        with self._entities_lock:
            if self._entities and len(self._entities) >= _ENTITY_CACHE_SIZE:
                self._entities.pop(next(iter(self._entities)), None)
            self._entities[document] = handle
        return handle

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


def _prepare(index: int, request: PolicyRequest) -> _Prepared:
    """Build cedarpy's request and the two entities; raise on unusable facts."""
    agent, target, task, now = request.agent, request.target, request.task, request.now
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    utc = now.astimezone(dt.UTC)
    principal = {"type": AGENT_TYPE, "id": agent.id}
    resource = {"type": TARGET_TYPE, "id": target.name}
    agent_json = json.dumps(
        {
            "uid": principal,
            "attrs": {"name": agent.name, "tenant": agent.tenant},
            "parents": [],
            "tags": dict(agent.labels),
        }
    )
    target_json = json.dumps(
        {
            "uid": resource,
            "attrs": {
                "uri": target.uri,
                "kind": target.kind,
                "environment": target.environment,
                "tenant": target.tenant,
                "risk": target.risk,
            },
            "parents": [],
        }
    )
    # cedarpy would json.dumps a dict context itself; passing the string saves a
    # copy of the request dict.
    context = json.dumps(
        {
            "task": {
                "purpose": task.purpose,
                "intent": task.intent,
                "environment": task.environment,
                "tenant": task.tenant,
                "age_seconds": task.age_seconds,
            },
            "time": {
                "hour": utc.hour,
                "weekday": utc.isoweekday(),
                "epoch": to_epoch(utc),
            },
        }
    )
    return _Prepared(
        index=index,
        request={
            "principal": principal,
            "action": {"type": ACTION_TYPE, "id": request.action},
            "resource": resource,
            "context": context,
        },
        entities={f"A\0{agent.id}": agent_json, f"T\0{target.name}": target_json},
    )


def _consistent_groups(batch: list[_Prepared]) -> list[list[_Prepared]]:
    """
    Split a batch so that no entity id appears with two different descriptions.

    Cedar takes one entity set per batch; two requests that describe the same
    agent id differently (labels changed between them) cannot share one.
    """
    groups: list[list[_Prepared]] = []
    current: list[_Prepared] = []
    seen: dict[str, str] = {}
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
