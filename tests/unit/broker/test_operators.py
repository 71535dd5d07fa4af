"""Operators and API tokens as use cases, in-process on SQLite with a frozen clock."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gatepass.broker import (
    AgentRegistration,
    Caller,
    IssuedToken,
    OperatorRegistration,
    ServiceTokenRequest,
)
from gatepass.errors import ConflictError, InvalidRequestError, NotFoundError
from gatepass.models import AgentStatus, ApiRole, OperatorRole
from gatepass.secret import token_hash
from gatepass.store import api_tokens, audit_log
from gatepass.tokens import DPoPKey

from .conftest import Harness

R = OperatorRole
BOOTSTRAP = Caller.of("tok_bootstrap", ApiRole.ADMIN)


def registration(name: str = "alice", *roles: OperatorRole, **extra: Any) -> Any:
    """Return an operator registration (an approver of acme by default)."""
    return OperatorRegistration(
        name=name,
        roles=frozenset(roles or (R.APPROVER,)),
        groups=frozenset(extra.pop("groups", {"prod-approvers"})),
        tenants=frozenset(extra.pop("tenants", {"acme"})),
        **extra,
    )


def add(harness: Harness, name: str = "alice", *roles: OperatorRole) -> IssuedToken:
    """Add an operator as the bootstrap admin."""
    issued: IssuedToken = harness.run(
        harness.broker.operators.add, BOOTSTRAP, registration(name, *roles)
    )
    return issued


def as_caller(harness: Harness, issued: IssuedToken) -> Caller:
    """Authenticate an issued token as the API would."""
    caller: Caller = harness.run(
        harness.broker.callers.authenticate,
        f"Bearer {issued.token.reveal()}",
        needs=None,
    )
    return caller


def records(harness: Harness, kind: str) -> list[Any]:
    """Return every audit record of one kind, oldest first."""
    with harness.runtime.database.reading() as conn:
        return [r for r in audit_log.iter_audit(conn, after=0) if r.kind == kind]


def bootstrap_admin_id(harness: Harness) -> str:
    """Return the id of the bootstrap admin token the first start made."""
    with harness.runtime.database.reading() as conn:
        tokens = api_tokens.list_api_tokens(conn)
    return next(t.id for t in tokens if t.role is ApiRole.ADMIN)


class TestAdd:
    """Adding an operator returns their first token once and audits both."""

    def test_add_returns_a_working_token(self, harness: Harness) -> None:
        """The first token authenticates as the operator; only its hash is stored."""
        issued = add(harness)
        token = issued.token.reveal()
        assert token.startswith("gp_operator_")
        assert issued.operator is not None
        assert issued.operator.id.startswith("opr_")
        caller = as_caller(harness, issued)
        assert caller.actor == "operator:alice"
        with harness.runtime.database.reading() as conn:
            found = api_tokens.find_api_token(conn, token_hash(token))
        assert found == (issued.record.id, ApiRole.OPERATOR, issued.operator.id)

    def test_add_is_audited_under_the_caller(self, harness: Harness) -> None:
        """operator.add and token.create name the caller; neither holds the token."""
        issued = add(harness)
        (added,) = records(harness, "operator.add")
        created = records(harness, "token.create")[-1]
        assert added.actor == created.actor == "admin:tok_bootstrap"
        assert added.subject == issued.record.operator_id
        assert added.data == {
            "name": "alice",
            "roles": ["approver"],
            "groups": ["prod-approvers"],
            "tenants": ["acme"],
        }
        assert created.subject == issued.record.id
        assert created.data["operator"] == "alice"
        text = json.dumps([added.data, created.data])
        assert issued.token.reveal() not in text
        assert token_hash(issued.token.reveal()) not in text

    @pytest.mark.parametrize(
        ("change", "message"),
        [
            ({"name": "Alice"}, "name must match"),
            ({"name": "-alice"}, "name must match"),
            ({"name": "a" * 65}, "name must match"),
            ({"roles": frozenset()}, "at least one role"),
            ({"groups": frozenset()}, "an approver needs"),
            ({"tenants": frozenset()}, "an approver needs"),
            ({"groups": frozenset({"Prod"})}, "groups must match"),
            ({"tenants": frozenset({"ac me"})}, "tenants must match"),
            ({"description": "x" * 201}, "description"),
        ],
    )
    def test_rules_are_checked_and_refusals_audited(
        self, harness: Harness, change: dict[str, Any], message: str
    ) -> None:
        """Each broken rule is invalid_request, and the refusal is audited."""
        fields: dict[str, Any] = {
            "name": "alice",
            "roles": frozenset({R.APPROVER}),
            "groups": frozenset({"prod-approvers"}),
            "tenants": frozenset({"acme"}),
            **change,
        }
        with pytest.raises(InvalidRequestError, match=message):
            harness.run(
                harness.broker.operators.add,
                BOOTSTRAP,
                OperatorRegistration(**fields),
            )
        (refused,) = records(harness, "operator.add")
        assert refused.outcome == "deny"
        assert refused.data["error"] == "invalid_request"

    def test_roles_without_approver_need_no_group(self, harness: Harness) -> None:
        """An auditor or admin needs no group; '*' holds every tenant."""
        auditor = harness.run(
            harness.broker.operators.add,
            BOOTSTRAP,
            registration("carol", R.AUDITOR, groups=set(), tenants=set()),
        )
        assert auditor.operator.groups == frozenset()
        everywhere = harness.run(
            harness.broker.operators.add,
            BOOTSTRAP,
            registration("dave", R.APPROVER, tenants={"*"}),
        )
        assert everywhere.operator.may_act_on("globex")

    def test_duplicate_name_is_a_conflict(self, harness: Harness) -> None:
        """A taken name is a conflict, audited; no second token is made."""
        add(harness)
        before = len(records(harness, "token.create"))
        with pytest.raises(ConflictError, match="alice"):
            add(harness)
        assert len(records(harness, "token.create")) == before
        assert records(harness, "operator.add")[-1].outcome == "deny"


class TestReadsAndDisable:
    """Operators are listed and shown; disabling revokes every token they hold."""

    def test_find_and_get(self, harness: Harness) -> None:
        """Listing is by name; an unknown name is not_found."""
        add(harness, "bob")
        add(harness, "alice")
        names = [o.name for o in harness.run(harness.broker.operators.find)]
        assert names == ["alice", "bob"]
        assert harness.run(harness.broker.operators.get, "bob").name == "bob"
        with pytest.raises(NotFoundError):
            harness.run(harness.broker.operators.get, "nobody")

    def test_disable_revokes_every_token(self, harness: Harness) -> None:
        """A disabled operator's tokens all stop; the audit lists them by id."""
        first = add(harness)
        second = harness.run(
            harness.broker.operators.new_token, BOOTSTRAP, "alice", description="ci"
        )
        disabled = harness.run(harness.broker.operators.disable, BOOTSTRAP, "alice")
        assert disabled.status is AgentStatus.DISABLED
        for issued in (first, second):
            with harness.runtime.database.reading() as conn:
                digest = token_hash(issued.token.reveal())
                assert api_tokens.find_api_token(conn, digest) is None
        (record,) = records(harness, "operator.disable")
        assert record.data["revoked"] == sorted([first.record.id, second.record.id])
        found = harness.run(harness.broker.operators.find, status=AgentStatus.ACTIVE)
        assert found == []

    def test_disable_twice_or_unknown(self, harness: Harness) -> None:
        """Disabling again is a conflict and an unknown name not_found; audited."""
        add(harness)
        harness.run(harness.broker.operators.disable, BOOTSTRAP, "alice")
        with pytest.raises(ConflictError, match="already disabled"):
            harness.run(harness.broker.operators.disable, BOOTSTRAP, "alice")
        with pytest.raises(NotFoundError):
            harness.run(harness.broker.operators.disable, BOOTSTRAP, "nobody")
        outcomes = [r.outcome for r in records(harness, "operator.disable")]
        assert outcomes == ["ok", "deny", "deny"]

    def test_no_token_for_a_disabled_operator(self, harness: Harness) -> None:
        """A disabled or unknown operator gets no new token."""
        add(harness)
        harness.run(harness.broker.operators.disable, BOOTSTRAP, "alice")
        with pytest.raises(ConflictError, match="disabled"):
            harness.run(harness.broker.operators.new_token, BOOTSTRAP, "alice")
        with pytest.raises(NotFoundError):
            harness.run(harness.broker.operators.new_token, BOOTSTRAP, "nobody")


class TestLastAdministrator:
    """One credential able to administer always remains."""

    def test_bootstrap_token_alone_cannot_be_revoked(self, harness: Harness) -> None:
        """With no admin operator, the bootstrap admin token stays."""
        with pytest.raises(ConflictError, match="last credential"):
            harness.run(
                harness.broker.api_tokens.revoke, BOOTSTRAP, bootstrap_admin_id(harness)
            )
        assert records(harness, "token.revoke")[-1].outcome == "deny"

    def test_retire_bootstrap_then_keep_the_last_admin(self, harness: Harness) -> None:
        """After the bootstrap token is retired, the last admin operator stays."""
        root = add(harness, "root", R.ADMIN)
        admin = as_caller(harness, root)
        harness.run(
            harness.broker.api_tokens.revoke, admin, bootstrap_admin_id(harness)
        )
        with pytest.raises(ConflictError, match="last credential"):
            harness.run(harness.broker.operators.disable, admin, "root")
        with pytest.raises(ConflictError, match="last credential"):
            harness.run(harness.broker.api_tokens.revoke, admin, root.record.id)
        # A second admin makes the first one removable.
        add_second = harness.run(
            harness.broker.operators.add,
            admin,
            registration("deputy", R.ADMIN, groups=set(), tenants=set()),
        )
        harness.run(harness.broker.operators.disable, admin, "root")
        assert as_caller(harness, add_second).actor == "operator:deputy"

    def test_non_admin_operators_do_not_count(self, harness: Harness) -> None:
        """An approver's token cannot stand in for an administrator."""
        add(harness, "alice", R.APPROVER)
        with pytest.raises(ConflictError):
            harness.run(
                harness.broker.api_tokens.revoke, BOOTSTRAP, bootstrap_admin_id(harness)
            )


class TestServiceTokens:
    """Service tokens are made, listed and revoked; revoked ones stop at once."""

    def test_create_list_revoke(self, harness: Harness) -> None:
        """A new introspect token works until revoked; lists never hold it."""
        issued = harness.run(
            harness.broker.api_tokens.create,
            BOOTSTRAP,
            ServiceTokenRequest(role=ApiRole.INTROSPECT, description="tickets api"),
        )
        token = issued.token.reveal()
        assert token.startswith("gp_introspect_")
        caller = as_caller(harness, issued)
        assert caller.actor == f"admin:{issued.record.id}"
        listed = harness.run(harness.broker.api_tokens.find)
        assert issued.record.id in {t.id for t in listed}
        assert token not in repr(listed)
        revoked = harness.run(
            harness.broker.api_tokens.revoke, BOOTSTRAP, issued.record.id
        )
        assert revoked.revoked_at == harness.clock.now()
        with harness.runtime.database.reading() as conn:
            assert api_tokens.find_api_token(conn, token_hash(token)) is None
        (record,) = [r for r in records(harness, "token.revoke") if r.outcome == "ok"]
        assert record.subject == issued.record.id
        assert record.data == {"role": "introspect"}

    def test_revoke_twice_or_unknown(self, harness: Harness) -> None:
        """Revoking a revoked token is a conflict and an unknown one not_found."""
        issued = harness.run(
            harness.broker.api_tokens.create,
            BOOTSTRAP,
            ServiceTokenRequest(role=ApiRole.PROXY, description="proxy two"),
        )
        harness.run(harness.broker.api_tokens.revoke, BOOTSTRAP, issued.record.id)
        with pytest.raises(ConflictError, match="already revoked"):
            harness.run(harness.broker.api_tokens.revoke, BOOTSTRAP, issued.record.id)
        with pytest.raises(NotFoundError):
            harness.run(harness.broker.api_tokens.revoke, BOOTSTRAP, "tok_missing")

    @pytest.mark.parametrize(
        ("role", "description", "message"),
        [
            (ApiRole.OPERATOR, "mine", "role must be one of"),
            (ApiRole.INTROSPECT, "", "description"),
            (ApiRole.INTROSPECT, "x" * 201, "description"),
        ],
    )
    def test_bad_requests(
        self, harness: Harness, role: ApiRole, description: str, message: str
    ) -> None:
        """An operator role or a bad description is refused, audited."""
        request = ServiceTokenRequest(role=role, description=description)
        with pytest.raises(InvalidRequestError, match=message):
            harness.run(harness.broker.api_tokens.create, BOOTSTRAP, request)
        assert records(harness, "token.create")[-1].outcome == "deny"


class TestOwners:
    """Agents name their owners: active operators only."""

    def _agent(self, *owners: str) -> AgentRegistration:
        key = DPoPKey.generate("EdDSA")
        return AgentRegistration(
            name="owned-bot",
            tenant="acme",
            public_jwk=key.public_jwk,
            algorithm=key.algorithm,
            labels={},
            owners=owners,
        )

    def test_owners_are_stored_and_audited(self, harness: Harness) -> None:
        """Active operators may own an agent; the audit names them."""
        add(harness, "alice")
        add(harness, "bob")
        agent = harness.run(
            harness.broker.agents.add, BOOTSTRAP, self._agent("alice", "bob")
        )
        stored = harness.run(harness.broker.agents.get, agent.id)
        assert stored.owners == ("alice", "bob")
        assert records(harness, "agent.add")[-1].data["owners"] == ["alice", "bob"]

    def test_unknown_owner_is_named(self, harness: Harness) -> None:
        """An owner who is not an operator is invalid_request naming them."""
        add(harness, "alice")
        with pytest.raises(InvalidRequestError, match="'mallory'"):
            harness.run(
                harness.broker.agents.add, BOOTSTRAP, self._agent("alice", "mallory")
            )
        assert records(harness, "agent.add")[-1].outcome == "deny"

    def test_disabled_owner_is_refused(self, harness: Harness) -> None:
        """A disabled operator cannot own a new agent."""
        add(harness, "alice")
        harness.run(harness.broker.operators.disable, BOOTSTRAP, "alice")
        with pytest.raises(InvalidRequestError, match="not an active operator"):
            harness.run(harness.broker.agents.add, BOOTSTRAP, self._agent("alice"))
