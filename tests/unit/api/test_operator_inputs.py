"""Operator and API-token bodies at the edge: precise refusals, never a crash."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gatepass.api.inputs import agent_registration, validated
from gatepass.api.operator_inputs import (
    OperatorQuery,
    operator_registration,
    operator_token_description,
    service_token_request,
)
from gatepass.broker import OperatorRegistration, check_registration
from gatepass.errors import GatepassError, InvalidRequestError
from gatepass.models import AgentStatus, ApiRole, OperatorRole
from gatepass.tokens import DPoPKey

NAMES = st.from_regex(r"\A[a-z0-9][a-z0-9._-]{0,20}\Z")
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(["name", "roles", "groups", "tenants", "description"])
            | st.text(max_size=8),
            inner,
            max_size=5,
        )
    ),
    max_leaves=12,
)


class TestOperatorRegistration:
    """``POST /v1/admin/operators`` bodies."""

    def test_valid(self) -> None:
        """A full body becomes a registration; roles are deduplicated."""
        registration = operator_registration(
            {
                "name": "alice",
                "roles": ["approver", "auditor", "approver"],
                "groups": ["prod-approvers"],
                "tenants": ["acme", "*"],
                "description": "laptop",
            }
        )
        assert registration == OperatorRegistration(
            name="alice",
            roles=frozenset({OperatorRole.APPROVER, OperatorRole.AUDITOR}),
            groups=frozenset({"prod-approvers"}),
            tenants=frozenset({"acme", "*"}),
            description="laptop",
        )

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            ({"roles": ["admin"]}, "missing field name"),
            ({"name": "alice"}, "missing field roles"),
            ({"name": "alice", "roles": []}, "roles must be a non-empty list"),
            ({"name": "alice", "roles": ["root"]}, "roles must be a non-empty list"),
            ({"name": "Alice", "roles": ["admin"]}, "name must match"),
            ({"name": "a", "roles": ["admin"], "groups": "g"}, "groups must be a list"),
            ({"name": "a", "roles": ["admin"], "groups": ["G"]}, "groups must hold"),
            ({"name": "a", "roles": ["admin"], "tenants": ["*", "*"]}, "repeat"),
            ({"name": "a", "roles": ["admin"], "description": 5}, "description"),
            ({"name": "a", "roles": ["admin"], "admin": True}, "unknown field"),
        ],
    )
    def test_refusals(self, body: dict[str, Any], message: str) -> None:
        """Each malformed field is named; the value is never echoed."""
        with pytest.raises(InvalidRequestError, match=message):
            operator_registration(body)

    @given(
        name=NAMES,
        roles=st.frozensets(st.sampled_from(OperatorRole), min_size=1),
        groups=st.frozensets(NAMES, max_size=3),
        tenants=st.frozensets(NAMES | st.just("*"), max_size=3),
    )
    def test_broker_rules_agree_with_the_edge(
        self,
        name: str,
        roles: frozenset[OperatorRole],
        groups: frozenset[str],
        tenants: frozenset[str],
    ) -> None:
        """What the edge accepts, the broker accepts unless an approver lacks scope."""
        registration = operator_registration(
            {
                "name": name,
                "roles": sorted(roles),
                "groups": sorted(groups),
                "tenants": sorted(tenants),
            }
        )
        lacks_scope = OperatorRole.APPROVER in roles and not (groups and tenants)
        if lacks_scope:
            with pytest.raises(InvalidRequestError, match="approver needs"):
                check_registration(registration)
        else:
            check_registration(registration)


class TestTokenBodies:
    """``POST /v1/admin/tokens`` and ``POST /v1/admin/operators/{name}/tokens``."""

    def test_service_token(self) -> None:
        """A role and a description make a request."""
        request = service_token_request({"role": "proxy", "description": "eu"})
        assert (request.role, request.description) == (ApiRole.PROXY, "eu")

    @pytest.mark.parametrize(
        "body",
        [
            {"role": "operator", "description": "x"},
            {"role": "ADMIN", "description": "x"},
            {"role": "proxy"},
            {"role": "proxy", "description": ""},
            {"role": "proxy", "description": "x" * 201},
            {"role": "proxy", "description": "x", "token": "gp_x"},
        ],
    )
    def test_service_token_refusals(self, body: dict[str, Any]) -> None:
        """Operator roles, empty or long descriptions and extra fields are refused."""
        with pytest.raises(InvalidRequestError):
            service_token_request(body)

    def test_operator_token_description(self) -> None:
        """The description is optional and at most 200 characters."""
        assert operator_token_description({}) == ""
        assert operator_token_description({"description": "ci"}) == "ci"
        with pytest.raises(InvalidRequestError, match="description"):
            operator_token_description({"description": "x" * 201})

    def test_operator_query(self) -> None:
        """The status filter takes the operator statuses only."""
        assert validated(OperatorQuery, {}).status is None
        found = validated(OperatorQuery, {"status": "disabled", "x": "1"})
        assert found.status is AgentStatus.DISABLED
        with pytest.raises(InvalidRequestError, match="status must be one of"):
            validated(OperatorQuery, {"status": "asleep"})


class TestOwners:
    """Agents' ``owners`` at registration."""

    def test_owners(self) -> None:
        """Owners are a list of distinct operator names."""
        key = DPoPKey.generate("EdDSA").public_jwk
        body = {"name": "bot", "tenant": "acme", "public_key": key}
        assert agent_registration(body).owners == ()
        owned = agent_registration({**body, "owners": ["alice", "bob"]})
        assert owned.owners == ("alice", "bob")
        for owners in (["alice", "alice"], ["Alice"], "alice", ["x"] * 17):
            with pytest.raises(InvalidRequestError, match="owners"):
                agent_registration({**body, "owners": owners})


@given(JSON)
def test_any_json_is_parsed_or_refused(payload: object) -> None:
    """No JSON value makes these parsers raise anything but a gatepass error."""
    for parse in (
        operator_registration,
        operator_token_description,
        service_token_request,
    ):
        try:
            parse(payload)
        except GatepassError:
            continue
