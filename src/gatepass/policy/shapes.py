"""
What a policy constrains: the necessary conditions the slicing index reads.

For each policy, :func:`constraints_of` returns a tuple of :class:`Constraint`: for
each, a dimension of the request (its principal, action, resource, or one of its
string attributes) and the values that dimension must take for the policy to be
**satisfied or to fail** on that request. A request that misses one of them can be
left out of evaluation without changing anything Cedar answers: the decision, the
deciding policies and the errors. That is Cedar's own definition of a sound policy
slice (cedar-spec, ``Cedar/Thm/Authorization/PolicySlice.lean``: every policy left
out is neither satisfied nor erroring, and then ``satisfiedPolicies`` and
``errorPolicies`` are those of the whole set). The policy is read in Cedar's JSON
policy format (``policies_to_json_str``), once, at load.

Why each constraint is exact, from Cedar's semantics (cedar-spec
``Cedar/Spec/Policy.lean`` and ``Cedar/Spec/Evaluator.lean``):

- A policy is the expression ``principal-scope && action-scope && resource-scope &&
  c1 && ... && cn``, where a ``when { e }`` contributes ``e`` and an ``unless { e }``
  contributes ``!e``, and ``&&`` evaluates its left side first and stops when it is
  false (``Policy.toExpr``, ``Conditions.toExpr``: "evaluated top to bottom, and
  short circuit").
- **Scope.** ``principal == E``, ``principal in E``, ``principal is T in E``,
  ``action == A``, ``action in [A, ...]`` and the resource forms never raise an
  error (``==`` compares any two values; ``in`` on entity uids looks up ancestors,
  with an empty answer for unknown entities). So when a scope does not match, the
  policy is false and nothing else of it runs: it can contribute neither a
  decision nor an error. gatepass's entities have no parents
  (:mod:`gatepass.policy.model`), so ``principal in E`` holds exactly when the
  principal is ``E``; action groups come from the schema and are asked of Cedar
  itself (see :mod:`gatepass.policy.slicing`).
- **Conditions.** A conjunct ``<attribute> == "literal"`` (or the literal first) or
  ``["a", "b"].contains(<attribute>)``, for a string attribute that every request
  carries (``model.KEY_PATHS``), cannot raise an error either. It is used only when
  every conjunct before it is *safe* (below): then either an earlier conjunct is
  false, or this one runs and is false, and either way the policy is false without
  an error. Indexing stops at the first conjunct that is not safe, because past it
  a request could make the policy fail, and a failing policy must stay in the
  slice so that its error still denies.
- **Safe** means "cannot raise an error for any request gatepass builds": literals,
  variables, the attributes every request carries, and ``==``, ``!=``, ``<``,
  ``<=``, ``>``, ``>=``, ``&&``, ``||``, ``!``, ``in``, ``has``, ``hasTag``,
  ``like``, ``is``, ``contains``, ``containsAll``, ``containsAny`` and set literals
  over safe operands. None of these raises anything but a type error, and the
  loader validates every policy against the schema, which rules type errors out
  (Cedar's validator soundness: a validated expression evaluates to a value of its
  type or fails with ``entityDoesNotExist``, ``extensionError`` or
  ``arithBoundsError`` only — ``Cedar/Thm/Validation``). Those three come from
  attributes of other entities, extension functions and arithmetic, none of which
  is safe here.
- Everything else is left alone and keeps the policy in every slice from that
  conjunct on: ``unless`` and ``||`` (not used as keys), ``if-then-else``,
  arithmetic, ``getTag``, extension functions, record literals, attributes not on
  the list, template slots and any node this module does not know.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from gatepass.policy.model import (
    ACTION,
    ACTION_GROUP,
    ALWAYS_PRESENT,
    ATTRIBUTE_DIMENSIONS,
    DIMENSIONS,
    PRINCIPAL,
    RESOURCE,
    Uid,
)

__all__ = ["Constraint", "constraints_of"]

# Deeper expressions are simply not safe: the analysis stays bounded whatever the
# policy, and a conjunct this deep is no index key anyway.
_MAX_DEPTH = 48
# Operators that raise nothing but type errors when their operands do not: their
# safety is that of their operands.
_SAFE_BINARY = frozenset(
    {
        "==",
        "!=",
        "<",
        "<=",
        ">",
        ">=",
        "&&",
        "||",
        "in",
        "hasTag",
        "contains",
        "containsAll",
        "containsAny",
    }
)
# The operand fields of each safe operator in Cedar's JSON format.
_SAFE_OPERANDS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(_SAFE_BINARY, ("left", "right")),
    "!": ("arg",),
    "has": ("left",),
    "like": ("left",),
    "is": ("left",),
}
_VARIABLES = frozenset({"principal", "action", "resource", "context"})
_SCOPE_DIMENSIONS = {"principal": PRINCIPAL, "resource": RESOURCE}
_ENTITY_DIMENSIONS = {**_SCOPE_DIMENSIONS, "action": ACTION}


@dataclass(frozen=True, slots=True)
class Constraint:
    """
    A request can satisfy a policy, or make it fail, only with one of these values.

    Attributes:
        dimension: the request's dimension (``model.PRINCIPAL``...).
        values: the values it must take; for ``model.ACTION_GROUP``, the groups of
            which the request's action must be in at least one.
    """

    dimension: int
    values: frozenset[object]

    def __repr__(self) -> str:
        """Show the dimension by name and the values in a stable order."""
        shown = sorted(map(repr, self.values))
        return f"Constraint({DIMENSIONS[self.dimension]}: {', '.join(shown)})"


def constraints_of(policy: Mapping[str, object]) -> tuple[Constraint, ...]:
    """
    Return what a request must match for the policy to be satisfied or to fail.

    Args:
        policy: one static policy in Cedar's JSON policy format.

    Returns:
        The constraints, scope first; empty when the policy is not indexed (it is
        then evaluated for every request).
    """
    found: list[Constraint] = []
    for variable, dimension in _SCOPE_DIMENSIONS.items():
        uid = _scope_uid(policy.get(variable))
        if uid is not None:
            found.append(Constraint(dimension, frozenset({uid})))
    action = _action_constraint(policy.get("action"))
    if action is not None:
        found.append(action)
    for conjunct in _conjuncts(policy.get("conditions")):
        key = _key(conjunct)
        if key is not None:
            found.append(key)
        elif not _safe(conjunct, 0):
            break
    return tuple(found)


def _conjuncts(conditions: object) -> list[object]:
    """
    Return a policy's conditions as the conjuncts Cedar evaluates, in order.

    Anything not in the shape Cedar documents becomes a None conjunct, which is
    not safe, so the indexing stops there.
    """
    if not isinstance(conditions, list):
        return [None]
    found: list[object] = []
    for condition in conditions:
        kind = condition.get("kind") if isinstance(condition, dict) else None
        if kind == "when":
            found.extend(_flatten_and(condition.get("body")))
        elif kind == "unless":
            # unless { e } is !e: one conjunct, never a key.
            found.append({"!": {"arg": condition.get("body")}})
        else:
            found.append(None)
            break
    return found


def _flatten_and(expression: object) -> Iterator[object]:
    """Yield the operands of nested ``&&`` left to right (Cedar's evaluation order)."""
    stack = [expression]
    while stack:
        node = stack.pop()
        operands = _binary(node, "&&")
        if operands is None:
            yield node
        else:
            stack.extend(reversed(operands))


def _key(conjunct: object) -> Constraint | None:
    """Return the constraint a conjunct imposes, if it is an index key."""
    equality = _binary(conjunct, "==")
    if equality is not None:
        left, right = equality
        return _equality_key(left, right) or _equality_key(right, left)
    membership = _binary(conjunct, "contains")
    if membership is not None:
        elements = _set_literal(membership[0])
        dimension = ATTRIBUTE_DIMENSIONS.get(_path(membership[1]) or ())
        if elements is None or dimension is None:
            return None
        strings = [_string(element) for element in elements]
        if any(value is None for value in strings):
            return None
        return Constraint(dimension, frozenset(strings))
    return None


def _equality_key(side: object, other: object) -> Constraint | None:
    """Return the constraint of ``side == other`` with ``other`` a literal."""
    dimension = ATTRIBUTE_DIMENSIONS.get(_path(side) or ())
    value = _string(other)
    if dimension is not None and value is not None:
        return Constraint(dimension, frozenset({value}))
    dimension = _ENTITY_DIMENSIONS.get(_variable(side) or "")
    uid = _entity_literal(other)
    if dimension is not None and uid is not None:
        return Constraint(dimension, frozenset({uid}))
    return None


def _safe(expression: object, depth: int) -> bool:
    """Tell whether evaluating ``expression`` can raise no error (see module doc)."""
    if depth > _MAX_DEPTH or not isinstance(expression, dict) or len(expression) != 1:
        return False
    ((operator, payload),) = expression.items()
    if operator == "Value":
        literal = isinstance(payload, str | int | bool)
        return literal or _entity_literal(expression) is not None
    if operator == "Var":
        return payload in _VARIABLES
    if operator == ".":
        return _path(expression) in ALWAYS_PRESENT
    operands = _safe_operator_operands(operator, payload)
    return operands is not None and all(_safe(item, depth + 1) for item in operands)


def _safe_operator_operands(operator: str, payload: object) -> list[object] | None:
    """Return the operands of a safe operator; None for any other node."""
    if operator == "Set":
        return payload if isinstance(payload, list) else None
    keys = _SAFE_OPERANDS.get(operator)
    if keys is None or not isinstance(payload, dict):
        return None
    operands = [payload.get(key) for key in keys]
    if operator == "is" and "in" in payload:
        operands.append(payload["in"])
    return operands


def _binary(expression: object, operator: str) -> tuple[object, object] | None:
    """Return the two operands when ``expression`` is ``operator`` applied to them."""
    if not isinstance(expression, dict) or len(expression) != 1:
        return None
    payload = expression.get(operator)
    if not isinstance(payload, dict) or "left" not in payload or "right" not in payload:
        return None
    return payload["left"], payload["right"]


def _path(expression: object) -> tuple[str, ...] | None:
    """Return ``("resource", "tenant")`` for ``resource.tenant``, else None."""
    attributes: list[str] = []
    node = expression
    while isinstance(node, dict) and len(node) == 1 and "." in node:
        payload = node["."]
        if not isinstance(payload, dict) or not isinstance(payload.get("attr"), str):
            return None
        attributes.append(payload["attr"])
        node = payload.get("left")
    variable = _variable(node)
    if variable is None or not attributes:
        return None
    return (variable, *reversed(attributes))


def _variable(expression: object) -> str | None:
    if isinstance(expression, dict) and len(expression) == 1:
        name = expression.get("Var")
        if isinstance(name, str) and name in _VARIABLES:
            return name
    return None


def _string(expression: object) -> str | None:
    if isinstance(expression, dict) and len(expression) == 1:
        value = expression.get("Value")
        if isinstance(value, str):
            return value
    return None


def _set_literal(expression: object) -> Sequence[object] | None:
    if isinstance(expression, dict) and len(expression) == 1:
        elements = expression.get("Set")
        if isinstance(elements, list):
            return elements
    return None


def _entity_literal(expression: object) -> Uid | None:
    """Return the uid of an entity literal (``{"Value": {"__entity": ...}}``)."""
    if not isinstance(expression, dict) or len(expression) != 1:
        return None
    value = expression.get("Value")
    if not isinstance(value, dict) or len(value) != 1:
        return None
    return _uid(value.get("__entity"))


def _uid(entity: object) -> Uid | None:
    """Return the uid of ``{"type": ..., "id": ...}`` or its ``__entity`` escape."""
    if isinstance(entity, dict) and set(entity) == {"__entity"}:
        entity = entity["__entity"]
    if not isinstance(entity, dict) or set(entity) != {"type", "id"}:
        return None
    kind, identifier = entity["type"], entity["id"]
    if isinstance(kind, str) and isinstance(identifier, str):
        return (kind, identifier)
    return None


def _scope_uid(scope: object) -> Uid | None:
    """Return the entity a principal or resource scope requires, if any."""
    if not isinstance(scope, dict):
        return None
    operator = scope.get("op")
    if operator in {"==", "in"}:
        return _uid(scope.get("entity"))
    if operator == "is":
        inner = scope.get("in")
        return _uid(inner.get("entity")) if isinstance(inner, dict) else None
    return None


def _action_constraint(scope: object) -> Constraint | None:
    """Return the constraint of an action scope, if it has one."""
    if not isinstance(scope, dict):
        return None
    operator = scope.get("op")
    if operator == "==":
        uid = _uid(scope.get("entity"))
        return None if uid is None else Constraint(ACTION, frozenset({uid}))
    if operator != "in":
        return None
    entities = scope.get("entities")
    if entities is None and "entity" in scope:
        entities = [scope["entity"]]
    if not isinstance(entities, list):
        return None
    uids = [_uid(entity) for entity in entities]
    if any(uid is None for uid in uids):
        return None
    return Constraint(ACTION_GROUP, frozenset(uids))
