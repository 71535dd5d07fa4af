"""What the slicing index reads from each policy shape."""

import json
from typing import Any

import cedarpy
import pytest

from gatepass.policy.model import (
    ACTION,
    ACTION_GROUP,
    ATTRIBUTE_DIMENSIONS,
    PRINCIPAL,
    RESOURCE,
)
from gatepass.policy.shapes import Constraint, constraints_of

AGENT = "Gatepass::Agent"
TARGET = "Gatepass::Target"
ACTION_TYPE = "Gatepass::Action"


def parsed(text: str) -> dict[str, Any]:
    """Return one policy in Cedar's JSON policy format."""
    policies = json.loads(cedarpy.policies_to_json_str(text))["staticPolicies"]
    [policy] = policies.values()
    return policy  # type: ignore[no-any-return]


def shape(text: str) -> tuple[Constraint, ...]:
    """Return the constraints of one policy written in Cedar."""
    return constraints_of(parsed(text))


def on(path: str, *values: str) -> Constraint:
    """A constraint on a string attribute, by its dotted path."""
    dimension = ATTRIBUTE_DIMENSIONS[tuple(path.split("."))]
    return Constraint(dimension, frozenset(values))


def uid(dimension: int, kind: str, identifier: str) -> Constraint:
    """A constraint to one entity."""
    return Constraint(dimension, frozenset({(kind, identifier)}))


class TestScope:
    """Scopes are never evaluated past a mismatch: each one is a constraint."""

    def test_unconstrained_policy_has_no_constraint(self) -> None:
        """Permit (principal, action, resource) is evaluated for every request."""
        assert shape("permit (principal, action, resource);") == ()

    def test_principal_equality(self) -> None:
        """Principal == E constrains the principal to E."""
        assert shape(
            'permit (principal == Gatepass::Agent::"a1", action, resource);'
        ) == (uid(PRINCIPAL, AGENT, "a1"),)

    def test_principal_in_is_equality_for_entities_without_parents(self) -> None:
        """Principal in E holds only for E itself: gatepass's agents have no parents."""
        assert shape(
            'permit (principal in Gatepass::Agent::"a1", action, resource);'
        ) == (uid(PRINCIPAL, AGENT, "a1"),)

    def test_is_in_keeps_the_entity(self) -> None:
        """Principal is T in E constrains to E; a bare `is` constrains nothing."""
        assert shape(
            "permit (principal is Gatepass::Agent in "
            'Gatepass::Agent::"a1", action, resource is Gatepass::Target);'
        ) == (uid(PRINCIPAL, AGENT, "a1"),)

    def test_resource_scopes(self) -> None:
        """Resource == E and resource in E constrain the resource."""
        for operator in ("==", "in"):
            assert shape(
                f"permit (principal, action, resource {operator} "
                'Gatepass::Target::"x");'
            ) == (uid(RESOURCE, TARGET, "x"),)

    def test_action_equality(self) -> None:
        """Action == A constrains the action itself."""
        assert shape(
            'forbid (principal, action == Gatepass::Action::"admin", resource);'
        ) == (uid(ACTION, ACTION_TYPE, "admin"),)

    def test_action_in_a_list_is_a_group_constraint(self) -> None:
        """Action in [A, B] holds when the action is in A or in B (groups included)."""
        assert shape(
            "permit (principal, action in "
            '[Gatepass::Action::"read", Gatepass::Action::"reads"], resource);'
        ) == (
            Constraint(
                ACTION_GROUP,
                frozenset({(ACTION_TYPE, "read"), (ACTION_TYPE, "reads")}),
            ),
        )

    def test_all_three_scopes_together(self) -> None:
        """Each scope adds its constraint, principal and resource first."""
        assert shape(
            'permit (principal == Gatepass::Agent::"a", action == '
            'Gatepass::Action::"read", resource == Gatepass::Target::"x");'
        ) == (
            uid(PRINCIPAL, AGENT, "a"),
            uid(RESOURCE, TARGET, "x"),
            uid(ACTION, ACTION_TYPE, "read"),
        )


class TestConditions:
    """Equalities in `when` are constraints while nothing before them can fail."""

    def test_tenant_equalities_in_order(self) -> None:
        """The multi-tenant permit is constrained by each of its equalities."""
        assert shape(
            'permit (principal, action, resource) when { resource.tenant == "t1" '
            '&& principal.tenant == "t1" && context.task.tenant == "t1" };'
        ) == (
            on("resource.tenant", "t1"),
            on("principal.tenant", "t1"),
            on("context.task.tenant", "t1"),
        )

    def test_literal_on_the_left(self) -> None:
        """The literal may come first: "t1" == resource.tenant."""
        assert shape(
            'permit (principal, action, resource) when { "t1" == resource.tenant };'
        ) == (on("resource.tenant", "t1"),)

    def test_set_literal_contains(self) -> None:
        """["low", "medium"].contains(resource.risk) allows either value."""
        assert shape(
            "permit (principal, action, resource) when "
            '{ ["low", "medium"].contains(resource.risk) };'
        ) == (on("resource.risk", "low", "medium"),)

    def test_entity_equality_in_a_condition(self) -> None:
        """Principal == E inside `when` constrains the principal like the scope."""
        assert shape(
            "permit (principal, action, resource) when "
            '{ principal == Gatepass::Agent::"a1" && resource.kind == "http" };'
        ) == (uid(PRINCIPAL, AGENT, "a1"), on("resource.kind", "http"))

    def test_safe_conjuncts_are_passed_over(self) -> None:
        """Comparisons, has, hasTag, like and || cannot fail: keys after them count."""
        assert shape(
            "permit (principal, action, resource) when { "
            "resource.tenant == principal.tenant && resource has uri && "
            'principal.hasTag("team") && context.time.hour < 8 && '
            'resource.kind like "p*" && (resource.risk == "a" || resource.risk != "b") '
            '&& resource.environment == "prod" };'
        ) == (on("resource.environment", "prod"),)

    def test_unless_is_never_a_key_but_can_be_passed_over(self) -> None:
        """Unless { e } is !e: no key, and a safe e lets a later when count."""
        assert shape(
            "permit (principal, action, resource) "
            'unless { resource.tenant == "t0" } when { resource.tenant == "t1" };'
        ) == (on("resource.tenant", "t1"),)

    def test_equality_on_a_number_is_not_a_key(self) -> None:
        """Only string attributes are keys; a number equality is merely safe."""
        assert shape(
            "permit (principal, action, resource) when "
            '{ context.time.hour == 3 && resource.tenant == "t1" };'
        ) == (on("resource.tenant", "t1"),)

    def test_multiple_attribute_has(self) -> None:
        """`context has task.tenant` is two has tests, both safe."""
        assert shape(
            "permit (principal, action, resource) when "
            '{ context has task.tenant && resource.uri == "u" };'
        ) == (on("resource.uri", "u"),)

    def test_empty_set_is_met_by_no_request(self) -> None:
        """[].contains(...) is a constraint with no allowed value."""
        assert shape(
            "permit (principal, action, resource) when "
            "{ [].contains(resource.tenant) };"
        ) == (Constraint(ATTRIBUTE_DIMENSIONS[("resource", "tenant")], frozenset()),)

    @pytest.mark.parametrize(
        "unsafe",
        [
            "context.task.age_seconds * 1000 > 5",
            "context.time.epoch + 1 > 0",
            "-context.time.hour < 0",
            'principal.getTag("team") == "support"',
            'Gatepass::Agent::"ghost".tenant == "t1"',
            '(if resource.risk == "low" then true else false)',
            'ip("10.0.0.1").isLoopback()',
            "{a: 1}.a == 1",
        ],
    )
    def test_indexing_stops_at_a_conjunct_that_can_fail(self, unsafe: str) -> None:
        """Past arithmetic, getTag, other entities, if, extensions: no key counts."""
        assert shape(
            f"forbid (principal, action, resource) when "
            f'{{ resource.kind == "http" && {unsafe} && resource.tenant == "t1" }};'
        ) == (on("resource.kind", "http"),)

    def test_unless_that_can_fail_stops_indexing(self) -> None:
        """An unless body that can fail hides the keys after it."""
        assert (
            shape(
                "forbid (principal, action, resource) "
                "unless { context.task.age_seconds * 1000 > 5 } "
                'when { resource.tenant == "t1" };'
            )
            == ()
        )

    def test_or_of_keys_is_not_a_key(self) -> None:
        """A == x || a == y is safe but not a constraint."""
        assert (
            shape(
                "permit (principal, action, resource) when "
                '{ resource.tenant == "t1" || resource.tenant == "t2" };'
            )
            == ()
        )

    def test_scope_constraints_stay_when_conditions_stop(self) -> None:
        """Whatever the conditions, the scope still constrains."""
        assert shape(
            'forbid (principal, action == Gatepass::Action::"write", resource) when '
            '{ context.task.age_seconds * 1000 > 5 && resource.tenant == "t1" };'
        ) == (uid(ACTION, ACTION_TYPE, "write"),)


class TestUnknownShapes:
    """What the index does not understand is evaluated for every request."""

    def test_template_slot_scope_constrains_nothing(self) -> None:
        """A ?principal slot is no constraint."""
        policy = {
            "effect": "permit",
            "principal": {"op": "==", "slot": "?principal"},
            "action": {"op": "All"},
            "resource": {"op": "All"},
            "conditions": [],
        }
        assert constraints_of(policy) == ()

    def test_unknown_condition_kind_stops_indexing(self) -> None:
        """A condition kind Cedar may add later is not read."""
        policy = parsed(
            'permit (principal, action, resource) when { resource.kind == "a" };'
        )
        policy["conditions"][0]["kind"] = "whenever"
        assert constraints_of(policy) == ()

    def test_malformed_conditions_keep_the_scope(self) -> None:
        """Conditions that are not a list leave the scope constraints only."""
        policy = parsed('permit (principal == Gatepass::Agent::"a", action, resource);')
        policy["conditions"] = {"kind": "when"}
        assert constraints_of(policy) == (uid(PRINCIPAL, AGENT, "a"),)

    def test_unknown_attribute_is_not_safe(self) -> None:
        """An attribute gatepass does not always set could be missing: not safe."""
        policy = parsed(
            "permit (principal, action, resource) when "
            '{ resource.tenant == "t1" && resource.kind == "a" };'
        )
        body = policy["conditions"][0]["body"]["&&"]
        body["left"]["=="]["left"]["."]["attr"] = "owner"
        assert constraints_of(policy) == ()

    def test_deep_nesting_is_bounded(self) -> None:
        """A deeply nested conjunct is not safe; the analysis never recurses far."""
        expression: dict[str, Any] = {"Value": True}
        for _ in range(5_000):
            expression = {"!": {"arg": expression}}
        key = {
            "==": {
                "left": {".": {"left": {"Var": "resource"}, "attr": "kind"}},
                "right": {"Value": "a"},
            }
        }
        policy = {
            "effect": "permit",
            "principal": {"op": "All"},
            "action": {"op": "All"},
            "resource": {"op": "All"},
            "conditions": [
                {"kind": "when", "body": {"&&": {"left": expression, "right": key}}}
            ],
        }
        assert constraints_of(policy) == ()

    def test_constraint_repr_names_the_dimension(self) -> None:
        """A constraint reads as its dimension and sorted values."""
        assert repr(on("resource.risk", "medium", "low")) == (
            "Constraint(resource.risk: 'low', 'medium')"
        )


def attribute(*path: str) -> dict[str, Any]:
    """``principal.tenant`` and the like in Cedar's JSON format."""
    node: dict[str, Any] = {"Var": path[0]}
    for name in path[1:]:
        node = {".": {"left": node, "attr": name}}
    return node


def policy_with(**parts: Any) -> dict[str, Any]:
    """An unconstrained policy in Cedar's JSON format, with some parts replaced."""
    return {
        "effect": "permit",
        "principal": {"op": "All"},
        "action": {"op": "All"},
        "resource": {"op": "All"},
        "conditions": [],
        **parts,
    }


def when(*conjuncts: Any) -> list[dict[str, Any]]:
    """One when clause joining the conjuncts with &&."""
    body = conjuncts[0]
    for conjunct in conjuncts[1:]:
        body = {"&&": {"left": body, "right": conjunct}}
    return [{"kind": "when", "body": body}]


TENANT_KEY = {"==": {"left": attribute("resource", "tenant"), "right": {"Value": "t"}}}
ENTITY = {"type": AGENT, "id": "a"}
PRINCIPAL_VAR = {"Var": "principal"}


class TestMalformedJSON:
    """Nodes Cedar does not produce are never trusted: they index nothing."""

    @pytest.mark.parametrize(
        ("parts", "expected"),
        [
            ({"principal": None}, ()),
            ({"principal": {"op": "==", "entity": {"type": AGENT, "id": 5}}}, ()),
            ({"principal": {"op": "==", "entity": {"__entity": ENTITY}}}, "a"),
            ({"principal": {"op": "is", "entity_type": AGENT, "in": "x"}}, ()),
            ({"action": None}, ()),
            ({"action": {"op": "in", "entities": "read"}}, ()),
            ({"action": {"op": "in", "entities": [ENTITY, {"id": "x"}]}}, ()),
            ({"action": {"op": "in", "entity": ENTITY}}, "group"),
            ({"conditions": [5]}, ()),
        ],
    )
    def test_scopes_and_clauses(self, parts: dict[str, Any], expected: object) -> None:
        """Odd scopes and clauses constrain nothing; Cedar's escapes are read."""
        found = constraints_of(policy_with(**parts))
        if expected == "a":
            assert found == (uid(PRINCIPAL, AGENT, "a"),)
        elif expected == "group":
            assert found == (Constraint(ACTION_GROUP, frozenset({(AGENT, "a")})),)
        else:
            assert found == expected

    @pytest.mark.parametrize(
        "conjunct",
        [
            {
                "contains": {
                    "left": {"Set": [{"Var": "principal"}]},
                    "right": PRINCIPAL_VAR,
                }
            },
            {
                "contains": {
                    "left": {"Set": [{"Value": "a"}]},
                    "right": attribute("context", "time", "hour"),
                }
            },
            {
                "contains": {
                    "left": {"Set": [{"Value": 1}]},
                    "right": attribute("resource", "tenant"),
                }
            },
            {"contains": {"left": {"Var": "context"}, "right": {"Var": "principal"}}},
        ],
    )
    def test_contains_that_is_no_key_is_passed_over(
        self, conjunct: dict[str, Any]
    ) -> None:
        """A contains over non-literals, numbers or other paths is safe, not a key."""
        found = constraints_of(policy_with(conditions=when(conjunct, TENANT_KEY)))
        assert found == (on("resource.tenant", "t"),)

    @pytest.mark.parametrize(
        "conjunct",
        [
            {"Set": "not a list"},
            {"contains": {"left": 5, "right": attribute("resource", "tenant")}},
            {"==": {"left": 5, "right": 6}},
            {"==": {"left": {"Var": "principal"}, "right": 5}},
            {"==": {"left": {".": {"left": {"Var": "resource"}, "attr": 5}}}},
            {"Value": {"__extn": {"fn": "ip", "arg": "10.0.0.1"}}},
            {"Var": "somewhere"},
            {"!": "not an expression"},
        ],
    )
    def test_conjuncts_that_are_not_understood_stop_indexing(
        self, conjunct: dict[str, Any]
    ) -> None:
        """A conjunct the index cannot read hides the tenant key after it."""
        assert constraints_of(policy_with(conditions=when(conjunct, TENANT_KEY))) == ()

    def test_is_in_inside_a_condition_is_safe(self) -> None:
        """`resource is T in E` cannot fail: the key after it counts."""
        assert shape(
            "permit (principal, action, resource) when { resource is Gatepass::Target "
            'in Gatepass::Target::"x" && resource.tenant == "t" };'
        ) == (on("resource.tenant", "t"),)
