"""Who may do what: the permission table, and authentication of API tokens."""

from __future__ import annotations

import datetime as dt

import pytest

from gatepass.audit import AuditRecord
from gatepass.broker import Caller, OperatorRegistration, Permission, permissions_of
from gatepass.errors import AccessDeniedError, AuthenticationError
from gatepass.ids import OperatorId
from gatepass.models import ApiRole, Operator, OperatorRole
from gatepass.secret import token_hash
from gatepass.store import audit_log

from .conftest import Harness

P = Permission
R = OperatorRole

OPERATOR = Operator(
    id=OperatorId("opr_test"),
    name="alice",
    roles=frozenset({R.APPROVER}),
    groups=frozenset({"prod-approvers"}),
    tenants=frozenset({"acme"}),
    created_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
)


@pytest.mark.parametrize(
    ("role", "operator_roles", "expected"),
    [
        (ApiRole.ADMIN, (), {P.ADMINISTER, P.AUDIT, P.SIGNAL}),
        (ApiRole.INTROSPECT, (), {P.INTROSPECT}),
        (ApiRole.PROXY, (), {P.INTROSPECT, P.PROXY}),
        (ApiRole.OPERATOR, (R.ADMIN,), {P.ADMINISTER, P.AUDIT, P.SIGNAL}),
        (ApiRole.OPERATOR, (R.APPROVER,), {P.APPROVE}),
        (ApiRole.OPERATOR, (R.AUDITOR,), {P.AUDIT}),
        (ApiRole.OPERATOR, (R.APPROVER, R.AUDITOR), {P.APPROVE, P.AUDIT}),
        (ApiRole.OPERATOR, (), set()),
        # Operator roles never widen a service token: approval is for humans only.
        (ApiRole.ADMIN, (R.APPROVER,), {P.ADMINISTER, P.AUDIT, P.SIGNAL}),
        (ApiRole.PROXY, (R.ADMIN,), {P.INTROSPECT, P.PROXY}),
    ],
)
def test_permission_table(
    role: ApiRole, operator_roles: tuple[OperatorRole, ...], expected: set[Permission]
) -> None:
    """Each token role and operator role grants exactly its permissions."""
    assert permissions_of(role, operator_roles) == frozenset(expected)


def test_no_service_token_may_approve() -> None:
    """No service role, whatever else it holds, carries approve."""
    for role in ApiRole:
        if role is not ApiRole.OPERATOR:
            assert P.APPROVE not in permissions_of(role, tuple(R))


class TestCaller:
    """The caller's audit name and how refusals describe it."""

    def test_operator_actor_names_the_operator(self) -> None:
        """An operator's caller is audited as operator:<name>."""
        caller = Caller.of("tok_1", ApiRole.OPERATOR, OPERATOR)
        assert caller.actor == "operator:alice"
        assert caller.may(P.APPROVE)
        assert not caller.may(P.ADMINISTER)
        assert caller.describe() == "an approver"

    def test_service_actor_names_the_token(self) -> None:
        """A service token's caller is audited as admin:<token id>."""
        caller = Caller.of("tok_2", ApiRole.INTROSPECT)
        assert caller.actor == "admin:tok_2"
        assert caller.describe() == "an introspect token"


def _operator(harness: Harness, name: str, *roles: OperatorRole) -> tuple[str, str]:
    """Add an operator as the bootstrap admin; return their token and its id."""
    admin = Caller.of("tok_bootstrap", ApiRole.ADMIN)
    registration = OperatorRegistration(
        name=name,
        roles=frozenset(roles),
        groups=frozenset({"prod-approvers"}),
        tenants=frozenset({"acme"}),
    )
    issued = harness.run(harness.broker.operators.add, admin, registration)
    return issued.token.reveal(), issued.record.id


def _last_record(harness: Harness) -> AuditRecord:
    with harness.runtime.database.reading() as conn:
        return audit_log.last_audit(conn, 1)[0]


class TestAuthenticate:
    """Tokens are checked against the store and the permission asked for."""

    def test_operator_token_authenticates_with_its_operator(
        self, harness: Harness
    ) -> None:
        """An operator's token yields a caller carrying the operator."""
        token, token_id = _operator(harness, "alice", R.APPROVER)
        caller = harness.run(
            harness.broker.callers.authenticate,
            f"Bearer {token}",
            needs=P.APPROVE,
        )
        assert caller.token_id == token_id
        assert caller.operator is not None
        assert caller.operator.name == "alice"
        assert caller.operator.may_act_on("acme")

    def test_missing_permission_is_refused_and_audited(self, harness: Harness) -> None:
        """An approver asking to administer gets access_denied, audited by name."""
        token, token_id = _operator(harness, "alice", R.APPROVER)
        with pytest.raises(AccessDeniedError, match="an approver may not administer"):
            harness.run(
                harness.broker.callers.authenticate,
                f"Bearer {token}",
                needs=P.ADMINISTER,
            )
        record = _last_record(harness)
        assert (record.kind, record.outcome) == ("admin.auth", "deny")
        assert record.actor == "operator:alice"
        assert record.subject == token_id
        assert record.data == {"needs": "administer"}

    def test_any_valid_token_passes_without_a_need(self, harness: Harness) -> None:
        """needs=None admits any authenticated caller (whoami)."""
        token, _ = _operator(harness, "carol", R.AUDITOR)
        caller = harness.run(
            harness.broker.callers.authenticate, f"Bearer {token}", needs=None
        )
        assert caller.permissions == frozenset({P.AUDIT})

    def test_disabled_operator_is_unauthenticated(self, harness: Harness) -> None:
        """A disabled operator's token is 401, audited by a hash prefix only."""
        token, _ = _operator(harness, "alice", R.APPROVER)
        admin = Caller.of("tok_bootstrap", ApiRole.ADMIN)
        harness.run(harness.broker.operators.disable, admin, "alice")
        with pytest.raises(AuthenticationError, match="unknown api token"):
            harness.run(
                harness.broker.callers.authenticate, f"Bearer {token}", needs=None
            )
        record = _last_record(harness)
        assert (record.kind, record.outcome) == ("admin.auth", "deny")
        prefix = record.data["token_hash"]
        assert token_hash(token).startswith(prefix)
        assert len(prefix) < len(token_hash(token))
        assert token not in str(record.data)

    def test_malformed_header_is_unauthenticated(self, harness: Harness) -> None:
        """No bearer credential at all is 401 before any lookup."""
        for header in (None, "", "Basic abc", "Bearer "):
            with pytest.raises(AuthenticationError, match="required"):
                harness.run(harness.broker.callers.authenticate, header, needs=P.AUDIT)
