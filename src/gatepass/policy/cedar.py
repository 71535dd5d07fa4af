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
  time: {hour, weekday, epoch}}``, time in UTC, weekday 1 = Monday, plus
  ``delegation: {depth, parent_agent, root_agent, root_purpose, root_tenant}``
  for a task received by delegation (an optional attribute in the schema);
- ``Gatepass::Action::"Delegate"``: principal the delegating agent, resource the
  child ``Gatepass::Agent``, context ``{task, time, delegation, subtask: {targets,
  actions, purpose, ttl_seconds, environment, tenant}}``. It is optional: a
  schema that does not declare it denies every delegation.

Any evaluation error is a deny: Cedar skips a policy that errors, so an erroring
``forbid`` would otherwise not block (DESIGN.md, promise 3).

Each request is evaluated against only the policies that can apply to it: the
index of ``policy/slicing.py``, built at load, picks them, and ``policy/shapes.py``
argues why the answer (decision, deciding ids, errors) is the whole set's. The
request model itself lives in ``policy/model.py``.
"""

from __future__ import annotations

import dataclasses
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import cedarpy

from gatepass.errors import ConfigurationError
from gatepass.policy.facts import (
    DELEGATE,
    OPEN_TASK,
    Decision,
    DelegationRequest,
    PolicyEngine,
    PolicyRequest,
)
from gatepass.policy.model import (
    ACTION_TYPE,
    AGENT_TYPE,
    ENTITY_CACHE_SIZE,
    NO_SIGNALS,
    PROBE,
    PROBE_DELEGATED,
    SIGNAL_FEATURE_CHOICES,
    TARGET_TYPE,
    Description,
    Prepared,
    SignalFeatures,
    entity_json,
    prepare,
    prepare_delegation,
)
from gatepass.policy.profiles import IssuanceProfile
from gatepass.policy.slicing import MAX_SHARE, MAX_SLICE, PolicySlicer
from gatepass.policy.sources import PolicyInfo, PolicySources, read_sources

__all__ = ["ACTION_TYPE", "AGENT_TYPE", "TARGET_TYPE", "CedarPolicySet"]

# Cedar's error text can quote whole entity documents; keep decisions readable.
_ERROR_LIMIT = 500
# Cedar quotes a policy's positional id in backticks: "policy `policy3`".
_POSITIONAL_ID = re.compile(r"`(policy\d+)`")
# Sorts errors that name no policy (a request Cedar could not build) first.
_NO_POSITION = -1


class CedarPolicySet:
    """
    A checked Cedar policy directory, parsed once into cedarpy handles.

    Build it with :meth:`from_directory`. Instances are immutable and safe to share
    between threads. Each request is evaluated against only the policies that can
    apply to it (``policy/slicing.py``); the answers are those of the whole set.

    Attributes:
        directory: where the policies were read from.
        digest: ``sha256:`` hash of the schema and policy files.
        policy_count: how many policies the set holds.
        policies: what is known about each policy, in evaluation order.
    """

    def __init__(
        self, sources: PolicySources, *, directory: Path, slicing: bool = True
    ) -> None:
        """
        Parse checked sources into handles; use :meth:`from_directory` instead.

        Args:
            sources: the checked sources.
            directory: where they came from, for messages.
            slicing: evaluate each request against the policies that can apply to
                it (the default); False evaluates every policy every time.

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
        self._rank = {f"policy{index}": index for index in range(self.policy_count)}
        # Slices carry the policies' positional ids in this set, so the JSON and
        # the text must hold the same policies in the same order; when they do not
        # (they always should), every request is decided by the whole set.
        consistent = (
            len(sources.policy_json) == self.policy_count == len(self._policy_set)
        )
        slicer = (
            PolicySlicer(
                sources.policy_json,
                max_share=self._slice_share,
                max_slice=self._slice_size,
            )
            if slicing and consistent
            else None
        )
        # A set too small to ever be sliced skips the selection on every request.
        self._slicer = slicer if slicer is not None and slicer.max_size else None
        self._entities: dict[tuple[Description, ...], cedarpy.Entities] = {}
        self._entities_lock = threading.Lock()
        # Actions whose requests the schema accepts (see _fits); bounded by the
        # actions the schema declares, since only those can ever be added. It only
        # grows, one atomic set.add at a time, so sharing it between threads is safe.
        self._fitting: set[tuple[str, bool]] = set()
        self._no_policies = cedarpy.PolicySet.from_str("")
        # Context signals (principal.risk, context.environment_frozen...) are in
        # requests only when the schema declares them (model.SignalFeatures).
        self.signal_features = self._signal_features()
        problems = self._schema_problems()
        if problems:
            raise ConfigurationError(
                f"{directory}: the schema does not fit gatepass's request model "
                f"(agents with tags, targets, the {OPEN_TASK} action and the task "
                f"and time context): {'; '.join(problems)}"
            )
        self._fits(OPEN_TASK)
        self._fits(OPEN_TASK, delegated=True)

    # Passed to PolicySlicer; tests widen them so that every request is sliced.
    _slice_share: ClassVar[float] = MAX_SHARE
    _slice_size: ClassVar[int] = MAX_SLICE

    @classmethod
    def from_directory(cls, path: Path, *, slicing: bool = True) -> CedarPolicySet:
        """
        Load, parse and validate a policy directory.

        Args:
            path: a directory with ``schema.cedarschema`` and ``*.cedar`` files.
            slicing: see :class:`CedarPolicySet`.

        Returns:
            The loaded policy set.

        Raises:
            ConfigurationError: anything is wrong with the directory; the message
                names the file and, where known, the line.
        """
        return cls(read_sources(path), directory=path, slicing=slicing)

    def decide_delegation(self, request: DelegationRequest) -> Decision:
        """
        Decide a delegation (``Delegate``, the child agent as resource).

        Always evaluated against the whole set and validated by Cedar against the
        schema: delegations are rare (one per hop), and the slicing index assumes
        a target as resource. A schema that does not declare ``Delegate`` (with an
        ``Agent`` resource and the delegation context) makes this an error, so a
        deny.

        Args:
            request: the question.

        Returns:
            The decision; never raises for a bad request, it denies it.
        """
        try:
            prepared = prepare_delegation(request, self.signal_features)
        except (TypeError, ValueError, OverflowError) as exc:
            return _error_decision(f"invalid {DELEGATE} request: {exc}")
        [(_, decision)] = self._evaluate([prepared])
        return decision

    def decide(self, requests: Sequence[PolicyRequest]) -> list[Decision]:
        """
        Decide each request; any error in a request makes its decision a deny.

        Args:
            requests: the questions, in order.

        Returns:
            One decision per request, in the same order.
        """
        decisions: list[Decision | None] = [None] * len(requests)
        batch: list[Prepared] = []
        for index, request in enumerate(requests):
            delegated = request.delegation is not None
            try:
                fits = self._fits(request.action, delegated=delegated)
                batch.append(prepare(index, request, fits, self.signal_features))
            except (TypeError, ValueError, OverflowError) as exc:
                decisions[index] = _error_decision(f"invalid request: {exc}")
        for group in _entity_groups(batch):
            for prepared, decision in self._evaluate(group):
                decisions[prepared.index] = decision
        return [
            decision if decision is not None else _error_decision("not evaluated")
            for decision in decisions
        ]

    def _evaluate(self, group: list[Prepared]) -> list[tuple[Prepared, Decision]]:
        """Run one cedarpy batch; on failure, retry alone so errors stay precise."""
        # Cedar validates each request against the schema it is given: the action
        # must be declared for Agent and Target, and the context must have the
        # declared shape and types; a request that fails is an error, so a deny.
        # That costs ~15-20 us per request, so it is skipped only when prepare
        # has established the same: the action passed that validation with a
        # context of the same shape (_fits), and every context value has the
        # declared type. Anything else is validated by Cedar as before. Entities
        # are always validated, when their handle is built.
        checked = all(prepared.checked for prepared in group)
        try:
            entities = self._entities_for(group)
            results = cedarpy.is_authorized_batch(
                [prepared.request for prepared in group],
                self._policies_for(group) if checked else self._policy_set,
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

    def _policies_for(self, group: list[Prepared]) -> cedarpy.PolicySet:
        """
        Return the policies that can apply to any request of a checked group.

        Only checked requests are sliced: their facts are exact strings, compared
        in the index as Cedar compares them. The rest are rare (they are refused by
        Cedar's schema check, mostly) and are decided by the whole set.
        """
        if self._slicer is None:
            return self._policy_set
        selection = self._slicer.select(
            [prepared.keys for prepared in group if prepared.keys is not None]
        )
        if selection is None:
            return self._policy_set
        try:
            sliced = self._slicer.policy_set(selection)
        # A slice is Cedar's own JSON of policies it parsed, so this should never
        # fail; if it did, the whole set still gives the right answer.
        except Exception:  # noqa: BLE001
            return self._policy_set
        return sliced or self._policy_set

    def _entities_for(self, group: list[Prepared]) -> cedarpy.Entities:
        unique: dict[str, Description] = {}
        for prepared in group:
            unique.update(prepared.entities)
        key = tuple(unique.values())
        cached = self._entities.get(key)
        if cached is not None:
            return cached
        document = "[" + ",".join(map(entity_json, key)) + "]"
        handle = cedarpy.Entities.from_json_str(document, self._schema)
        with self._entities_lock:
            if self._entities and len(self._entities) >= ENTITY_CACHE_SIZE:
                self._entities.pop(next(iter(self._entities)), None)
            self._entities[key] = handle
        return handle

    def _signal_features(self) -> SignalFeatures:
        """Return the richest context-signal facts the schema accepts."""
        for features in SIGNAL_FEATURE_CHOICES:
            if features == NO_SIGNALS:
                break
            try:
                prepared = prepare(0, PROBE, fits=False, features=features)
                result = cedarpy.is_authorized(
                    prepared.request,
                    self._no_policies,
                    self._entities_for([prepared]),
                    schema=self._schema,
                )
            except Exception:  # noqa: BLE001, S112 - anything cedarpy raises means "no"
                continue
            if not result.diagnostics.errors:
                return features
        return NO_SIGNALS

    def _schema_problems(self) -> list[str]:
        """
        Return why the schema cannot take gatepass's requests; empty when it can.

        Asked with no policies, so that only the request and its entities can
        fail: a policy that fails for the probe request is no schema problem.
        """
        prepared = prepare(0, PROBE, fits=False, features=self.signal_features)
        try:
            result = cedarpy.is_authorized(
                prepared.request,
                self._no_policies,
                self._entities_for([prepared]),
                schema=self._schema,
            )
        except Exception as exc:  # noqa: BLE001 - whatever cedarpy raises is the answer
            return [f"cedar: {str(exc) or type(exc).__name__}"[:_ERROR_LIMIT]]
        return [self._readable(error) for error in result.diagnostics.errors]

    def _fits(self, action: object, *, delegated: bool = False) -> bool:
        """
        Tell whether the schema accepts requests for ``action`` with our context.

        The principal and resource types are fixed, and the context always has the
        shape of the probe's (with ``delegation`` for a delegated task's request,
        whose fit is learnt apart: a schema may lack it), so one request validated
        by Cedar against the schema (with no policies, so that only the request
        itself can fail) answers for every request with this action whose values
        have the probe's types.
        """
        if not isinstance(action, str):
            return False
        if (action, delegated) in self._fitting:
            return True
        probe = dataclasses.replace(
            PROBE_DELEGATED if delegated else PROBE, action=action
        )
        try:
            prepared = prepare(0, probe, fits=False, features=self.signal_features)
            entities = self._entities_for([prepared])
            result = cedarpy.is_authorized(
                prepared.request, self._no_policies, entities, schema=self._schema
            )
            if result.diagnostics.errors:
                return False
            if self._slicer is not None:
                # Learnt before the action counts as fitting, so that a checked
                # request's action groups are known (or it is decided whole).
                self._slicer.learn_action(action, prepared.request, entities)
        except Exception:  # noqa: BLE001 - anything cedarpy raises means "no"
            return False
        self._fitting.add((action, delegated))
        return True

    def _decision(self, result: cedarpy.AuthzResult) -> Decision:
        # Cedar reports the deciding policies as a set, in no fixed order, and a
        # slice may list errors in another order than the whole set: both are put
        # in load order, so that a decision reads the same however it was reached.
        raw_errors = sorted(result.diagnostics.errors, key=self._error_rank)
        errors = tuple(self._readable(error) for error in raw_errors)
        reasons = sorted(result.diagnostics.reasons, key=self._reason_rank)
        deciding = [self._info(reason) for reason in reasons]
        policy_ids = tuple(info.display_id for info in deciding)
        if errors:
            # An error may have hidden a forbid: deny, and do not cite permits as
            # if they had decided.
            forbids = tuple(i.display_id for i in deciding if i.effect == "forbid")
            return Decision(allowed=False, policy_ids=forbids, errors=errors)
        if not result.allowed:
            return Decision(allowed=False, policy_ids=policy_ids)
        # Every permit that allowed the request shapes how it is issued: the
        # strictest of their profiles (policy/profiles.py).
        profile = IssuanceProfile.strictest(info.profile for info in deciding)
        return Decision(allowed=True, policy_ids=policy_ids, profile=profile)

    def _reason_rank(self, positional_id: str) -> tuple[int, str]:
        return (self._rank.get(positional_id, self.policy_count), positional_id)

    def _error_rank(self, error: str) -> int:
        match = _POSITIONAL_ID.search(error)
        if match is None:
            return _NO_POSITION
        return self._rank.get(match.group(1), self.policy_count)

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

    @property
    def approval_policy_count(self) -> int:
        """How many loaded policies require a step-up approval (``@approval``)."""
        return sum(
            1 for info in self._by_position.values() if info.profile.needs_approval
        )

    def __repr__(self) -> str:
        """Show where the set came from and what it holds."""
        return (
            f"CedarPolicySet(directory={str(self.directory)!r}, "
            f"policy_count={self.policy_count}, digest={self.digest!r})"
        )


def _error_decision(error: str) -> Decision:
    return Decision(allowed=False, errors=(error[:_ERROR_LIMIT],))


def _entity_groups(batch: list[Prepared]) -> list[list[Prepared]]:
    """
    Split a batch into groups of requests about the same agent and target.

    Cedar takes one entity set per call, and a policy can read any entity in it
    by name (``Gatepass::Agent::"a1".tenant``): a request that shared a call with
    another agent's request would find that agent, where alone the policy fails
    (and denies). So only requests with identical entities share a call, and a
    batch decides exactly as its requests one by one (issue 15: found by the
    differential test). Two descriptions of one agent id (labels changed between
    them) are different entities and so never share a call either.
    """
    groups: dict[tuple[Description, ...], list[Prepared]] = {}
    for prepared in batch:
        groups.setdefault(tuple(prepared.entities.values()), []).append(prepared)
    return list(groups.values())


_: type[PolicyEngine] = CedarPolicySet
