"""
Policy slicing: evaluate only the policies that can apply to a request.

Cedar evaluates every policy of the set it is given, about 2 µs each, so a set of
10,000 policies costs ~20 ms a decision. Most of those policies cannot apply: a
policy for tenant ``t123`` is false for every request of tenant ``t9``. The
:class:`PolicyIndex`, built once at load, files each policy under the
:class:`~gatepass.policy.shapes.Constraint` that narrows it most (its agent, its
target, its tenant...); for a request it returns the policies whose every
constraint the request meets, plus those it could not classify. The
:class:`PolicySlicer` turns that selection into a cedarpy policy set (cached: a
parse costs ~60 µs a policy) in which every policy keeps the positional id it has
in the whole set (``policy17``), so reasons and errors read exactly as before.

Why leaving the others out changes nothing — not the decision, not the deciding
ids, not the errors — is argued in :mod:`gatepass.policy.shapes`; the differential
tests and ``bench/policy.py`` check it against the whole set.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import cast

import cedarpy

from gatepass.policy.model import ACTION, ACTION_GROUP, ACTION_TYPE, Keys, Uid
from gatepass.policy.shapes import Constraint, constraints_of

__all__ = ["MAX_SHARE", "MAX_SLICE", "PolicyIndex", "PolicySlicer"]

# The cache holds at most this many policies over all its slices. A policy in a
# cached set costs ~4 KB, so this is ~64 MB at most.
_CACHE_POLICIES = 16_384
# Parsing a policy into a slice's set costs ~60 µs, evaluating it ~2.2 µs: about 25
# times as much. A slice of at most 1/25 of the set therefore costs no more to
# parse than one evaluation of the whole set, so that even a cache that misses on
# every request (a working set far larger than the cache) is no slower than not
# slicing. Larger slices use the whole set.
MAX_SHARE = 1 / 25
"""The largest share of the set a slice may hold; larger ones use the whole set."""
MAX_SLICE = 1_024
"""The most policies a slice may hold, whatever the set's size."""

_Selection = tuple[int, ...]


class PolicyIndex:
    """
    Policies filed by what they constrain, to find those a request can meet.

    Args:
        shapes: the constraints of each policy, by position in the set.

    Attributes:
        size: how many policies the set holds.
        always: positions of the policies evaluated for every request.
        groups: the action entities named by ``action in [...]`` scopes.
    """

    def __init__(self, shapes: Sequence[tuple[Constraint, ...]]) -> None:
        """File every policy under its most selective constraint."""
        self.size = len(shapes)
        # A dimension in which policies name many distinct values (tenants, agents)
        # splits the set finely; one with few (actions, environments) does not.
        distinct: dict[int, set[object]] = {}
        for constraints in shapes:
            for constraint in constraints:
                distinct.setdefault(constraint.dimension, set()).update(
                    constraint.values
                )
        always: list[int] = []
        tables: dict[int, dict[object, list[int]]] = {}
        # What is left to check of each policy once its table matched, as plain
        # tuples: select runs per request and attribute lookups add up.
        rest: list[tuple[tuple[int, frozenset[object]], ...]] = []
        for position, constraints in enumerate(shapes):
            if not constraints:
                always.append(position)
                rest.append(())
                continue
            primary = max(
                constraints,
                key=lambda c: (
                    len(distinct[c.dimension]) / max(len(c.values), 1),
                    -c.dimension,
                ),
            )
            rest.append(
                tuple((c.dimension, c.values) for c in constraints if c is not primary)
            )
            # A constraint with no values is met by no request: the policy is never
            # satisfied and never fails, so it is filed nowhere.
            for value in primary.values:
                tables.setdefault(primary.dimension, {}).setdefault(value, []).append(
                    position
                )
        self._rest = tuple(rest)
        self.always: tuple[int, ...] = tuple(always)
        # ACTION_GROUP constraints hold action uids (shapes._action_constraint).
        self.groups = cast(
            "tuple[Uid, ...]", tuple(sorted(distinct.get(ACTION_GROUP, ()), key=repr))
        )
        self._tables = tuple(
            (dimension, {value: tuple(found) for value, found in table.items()})
            for dimension, table in sorted(tables.items())
        )

    def select(self, keys: Keys, groups: frozenset[Uid]) -> set[int]:
        """
        Return the positions of the policies one request can satisfy or fail.

        Args:
            keys: the request's value in each dimension (``model.request_keys``).
            groups: the action entities in :attr:`groups` its action is ``in``.

        Returns:
            The policies whose every constraint the request meets, and the
            unclassified ones.
        """
        found = set(self.always)
        for dimension, table in self._tables:
            candidates: Sequence[int]
            if dimension == ACTION_GROUP:
                candidates = [p for group in groups for p in table.get(group, ())]
            else:
                candidates = table.get(keys[dimension], ())
            for position in candidates:
                if self._meets(position, keys, groups):
                    found.add(position)
        return found

    def _meets(self, position: int, keys: Keys, groups: frozenset[Uid]) -> bool:
        """Tell whether a request meets the constraints left after the table's."""
        for dimension, values in self._rest[position]:
            if dimension == ACTION_GROUP:
                if values.isdisjoint(groups):
                    return False
            elif keys[dimension] not in values:
                return False
        return True


class PolicySlicer:
    """
    Picks and builds the cedarpy policy set to evaluate a batch of requests with.

    Args:
        policies: every static policy in Cedar's JSON policy format, by position.
        max_share: the largest share of the set worth a slice of its own.
        max_slice: the largest slice worth parsing.

    Safe to share between threads.
    """

    def __init__(
        self,
        policies: Sequence[Mapping[str, object]],
        *,
        max_share: float = MAX_SHARE,
        max_slice: int = MAX_SLICE,
    ) -> None:
        """Index the policies and keep each one's JSON text for building slices."""
        self.index = PolicyIndex([constraints_of(policy) for policy in policies])
        # Text, not the parsed documents: 10,000 policies are some 400,000 small
        # dicts, and keeping them alive would slow every full garbage collection
        # of the broker's process.
        self._fragments = tuple(
            json.dumps(policy, separators=(",", ":")) for policy in policies
        )
        self._max_size = min(max_slice, int(len(policies) * max_share))
        # Keyed by action uid, as request keys carry it; bounded by the actions the
        # schema declares, since only schema-checked actions are learnt.
        self._groups_of: dict[object, frozenset[Uid]] = {}
        self._group_probe = _group_probe(self.index.groups)
        self._lock = threading.Lock()
        self._cache: OrderedDict[_Selection, cedarpy.PolicySet] = OrderedDict()
        self._cached_policies = 0

    def learn_action(
        self, action: str, request: dict[str, object], entities: cedarpy.Entities
    ) -> None:
        """
        Ask Cedar once which ``action in [...]`` groups an action belongs to.

        Action groups come from the schema, which is the same for every request, so
        the answer holds for every request with this action. Until an action is
        learnt, its requests are decided with the whole set.

        Args:
            action: the action's id.
            request: a schema-checked request for the action.
            entities: the request's entities (they carry the schema's actions).
        """
        uid = (ACTION_TYPE, action)
        if self._group_probe is None:
            self._groups_of[uid] = frozenset()
            return
        result = cedarpy.is_authorized(request, self._group_probe, entities)
        if result.diagnostics.errors:
            return
        self._groups_of[uid] = frozenset(
            self.index.groups[int(reason.removeprefix("g"))]
            for reason in result.diagnostics.reasons
        )

    def select(self, batch: Sequence[Keys]) -> _Selection | None:
        """
        Return the positions of the policies any request of the batch may meet.

        Args:
            batch: each request's keys (``model.request_keys``).

        Returns:
            The sorted positions, or None when an action's groups are not known.
        """
        found: set[int] = set()
        for keys in batch:
            groups = self._groups_of.get(keys[ACTION])
            if groups is None:
                return None
            found |= self.index.select(keys, groups)
        return tuple(sorted(found))

    def policy_set(self, selection: _Selection) -> cedarpy.PolicySet | None:
        """
        Return the policy set of a selection, or None when the whole set is better.

        Args:
            selection: positions from :meth:`select`.

        Returns:
            A cached cedarpy set holding exactly those policies under their
            positional ids in the whole set.
        """
        if len(selection) > self._max_size:
            return None
        with self._lock:
            cached = self._cache.get(selection)
            if cached is not None:
                self._cache.move_to_end(selection)
                return cached
        # Parsed outside the lock: two threads that miss together both parse, and
        # both get the first one cached; the other parse is only wasted work.
        handle = cedarpy.PolicySet.from_json_str(self._document(selection))
        with self._lock:
            kept = self._cache.setdefault(selection, handle)
            if kept is handle:
                self._cached_policies += len(selection)
                while self._cached_policies > _CACHE_POLICIES and len(self._cache) > 1:
                    evicted, _ = self._cache.popitem(last=False)
                    self._cached_policies -= len(evicted)
        return kept

    @property
    def max_size(self) -> int:
        """The most policies a slice may hold; 0 when this set is never sliced."""
        return self._max_size

    @property
    def cached_slices(self) -> int:
        """How many slice sets the cache holds."""
        return len(self._cache)

    def _document(self, selection: _Selection) -> str:
        parts = [f'"policy{p}":{self._fragments[p]}' for p in selection]
        return (
            '{"templates":{},"templateLinks":[],"staticPolicies":{'
            + ",".join(parts)
            + "}}"
        )


def _group_probe(groups: Sequence[Uid]) -> cedarpy.PolicySet | None:
    """Return one ``permit (principal, action in [G], resource)`` per group G."""
    if not groups:
        return None
    policies = {
        f"g{number}": {
            "effect": "permit",
            "principal": {"op": "All"},
            "action": {"op": "in", "entities": [{"type": kind, "id": identifier}]},
            "resource": {"op": "All"},
            "conditions": [],
        }
        for number, (kind, identifier) in enumerate(groups)
    }
    return cedarpy.PolicySet.from_json_str(
        json.dumps({"templates": {}, "templateLinks": [], "staticPolicies": policies})
    )
