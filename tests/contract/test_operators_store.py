"""Operators and API tokens in the store, the same on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import datetime as dt
import secrets

import pytest

from gatepass.errors import ConflictError, StoreError
from gatepass.ids import OperatorId, new_operator_id
from gatepass.models import AgentStatus, ApiRole, Operator, OperatorRole
from gatepass.secret import token_hash
from gatepass.store import Connection, Database, api_tokens, operators
from gatepass.store.tables import operators as operator_table

T0 = dt.datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=dt.UTC)


def make_operator(
    name: str = "alice",
    roles: frozenset[OperatorRole] = frozenset({OperatorRole.APPROVER}),
) -> Operator:
    """Build an operator record."""
    return Operator(
        id=new_operator_id(),
        name=name,
        roles=roles,
        groups=frozenset({"prod-approvers", "dba"}),
        tenants=frozenset({"acme"}),
        created_at=T0,
    )


def add_token(
    conn: Connection,
    *,
    role: ApiRole = ApiRole.OPERATOR,
    operator_id: OperatorId | None = None,
    at: dt.datetime = T0,
) -> tuple[str, str]:
    """Record a token; return its id and the token."""
    token = f"gp_{role.value}_{secrets.token_urlsafe(16)}"
    token_id = f"tok_{secrets.token_hex(8)}"
    api_tokens.insert_api_token(
        conn,
        token_id=token_id,
        token_hash=token_hash(token),
        role=role,
        description=f"{role.value} token",
        now=at,
        operator_id=operator_id,
    )
    return token_id, token


class TestOperators:
    """Operators are stored, found by id and name, listed and disabled."""

    def test_round_trip(self, database: Database) -> None:
        """An operator reads back equal, by id and by name."""
        operator = make_operator()
        with database.transaction() as conn:
            operators.insert_operator(conn, operator)
        with database.reading() as conn:
            assert operators.get_operator(conn, operator.id) == operator
            assert operators.get_operator_by_name(conn, "alice") == operator
            assert operators.get_operator(conn, "opr_missing") is None
            assert operators.get_operator_by_name(conn, "nobody") is None

    def test_duplicate_name_is_a_conflict(self, database: Database) -> None:
        """A second operator of the same name is a ConflictError; the first stays."""
        with database.transaction() as conn:
            operators.insert_operator(conn, make_operator())
        with (
            pytest.raises(ConflictError, match="alice"),
            database.transaction() as conn,
        ):
            operators.insert_operator(conn, make_operator())
        with database.reading() as conn:
            assert len(operators.list_operators(conn)) == 1

    def test_list_by_name_and_status(self, database: Database) -> None:
        """Operators are listed by name, optionally only one status."""
        bob, alice = make_operator("bob"), make_operator("alice")
        with database.transaction() as conn:
            operators.insert_operator(conn, bob)
            operators.insert_operator(conn, alice)
            operators.disable_operator(conn, bob.id, T0)
        with database.reading() as conn:
            assert [o.name for o in operators.list_operators(conn)] == ["alice", "bob"]
            disabled = operators.list_operators(conn, status="disabled")
        assert [o.name for o in disabled] == ["bob"]
        assert disabled[0].status is AgentStatus.DISABLED

    def test_disable_revokes_tokens_in_the_same_transaction(
        self, database: Database
    ) -> None:
        """Disabling returns the ids of the tokens it revoked; they stop matching."""
        operator, other = make_operator(), make_operator("bob")
        later = T0 + dt.timedelta(minutes=5)
        with database.transaction() as conn:
            operators.insert_operator(conn, operator)
            operators.insert_operator(conn, other)
            first, token = add_token(conn, operator_id=operator.id)
            second, _ = add_token(conn, operator_id=operator.id)
            kept, kept_token = add_token(conn, operator_id=other.id)
            revoked = operators.disable_operator(conn, operator.id, later)
        assert revoked == sorted([first, second])
        with database.reading() as conn:
            assert api_tokens.find_api_token(conn, token_hash(token)) is None
            assert api_tokens.find_api_token(conn, token_hash(kept_token)) is not None
            stored = api_tokens.get_api_token(conn, first)
        assert stored is not None
        assert stored.revoked_at == later
        assert kept not in revoked

    def test_disable_twice_changes_nothing(self, database: Database) -> None:
        """Disabling a disabled or unknown operator returns None."""
        operator = make_operator()
        with database.transaction() as conn:
            operators.insert_operator(conn, operator)
            assert operators.disable_operator(conn, operator.id, T0) == []
            assert operators.disable_operator(conn, operator.id, T0) is None
            assert operators.disable_operator(conn, "opr_missing", T0) is None


class TestApiTokens:
    """Tokens are found by hash unless revoked, and listed without their hash."""

    def test_find_returns_the_operator(self, database: Database) -> None:
        """An operator's token matches with its role and operator id."""
        operator = make_operator()
        with database.transaction() as conn:
            operators.insert_operator(conn, operator)
            token_id, token = add_token(conn, operator_id=operator.id)
            service_id, service = add_token(conn, role=ApiRole.INTROSPECT)
        with database.reading() as conn:
            found = api_tokens.find_api_token(conn, token_hash(token))
            service_found = api_tokens.find_api_token(conn, token_hash(service))
            unknown = api_tokens.find_api_token(conn, token_hash("gp_nothing"))
        assert found == (token_id, ApiRole.OPERATOR, operator.id)
        assert service_found == (service_id, ApiRole.INTROSPECT, None)
        assert unknown is None

    def test_revoked_token_is_not_found(self, database: Database) -> None:
        """A revoked token no longer matches; revoking twice changes nothing."""
        with database.transaction() as conn:
            token_id, token = add_token(conn, role=ApiRole.PROXY)
            assert api_tokens.revoke_api_token(conn, token_id, T0) is True
            assert api_tokens.revoke_api_token(conn, token_id, T0) is False
            assert api_tokens.revoke_api_token(conn, "tok_missing", T0) is False
        with database.reading() as conn:
            assert api_tokens.find_api_token(conn, token_hash(token)) is None

    def test_list_never_holds_a_hash(self, database: Database) -> None:
        """Listed tokens name their operator and hold neither token nor hash."""
        operator = make_operator()
        with database.transaction() as conn:
            operators.insert_operator(conn, operator)
            first, token = add_token(conn, role=ApiRole.ADMIN)
            second, _ = add_token(
                conn, operator_id=operator.id, at=T0 + dt.timedelta(seconds=1)
            )
            api_tokens.revoke_api_token(conn, first, T0)
        with database.reading() as conn:
            listed = api_tokens.list_api_tokens(conn)
            live = api_tokens.list_api_tokens(conn, include_revoked=False)
            mine = api_tokens.list_api_tokens(conn, operator_id=operator.id)
        assert [t.id for t in listed] == [first, second]
        assert [t.id for t in live] == [second]
        assert [t.id for t in mine] == [second]
        assert mine[0].operator_name == "alice"
        assert listed[0].operator_name is None
        for record in listed:
            values = [str(value) for value in dataclasses.astuple(record)]
            assert token not in values
            assert token_hash(token) not in values

    def test_live_tokens_leave_out_revoked_and_disabled(
        self, database: Database
    ) -> None:
        """Live tokens are the unrevoked ones of services and active operators."""
        admin = make_operator("root", frozenset({OperatorRole.ADMIN}))
        gone = make_operator("gone", frozenset({OperatorRole.ADMIN}))
        with database.transaction() as conn:
            operators.insert_operator(conn, admin)
            operators.insert_operator(conn, gone)
            service, _ = add_token(conn, role=ApiRole.ADMIN)
            revoked, _ = add_token(conn, role=ApiRole.ADMIN)
            held, _ = add_token(conn, operator_id=admin.id)
            add_token(conn, operator_id=gone.id)
            api_tokens.revoke_api_token(conn, revoked, T0)
            # A disabled operator's token that was somehow not revoked is not live.
            conn.execute(
                operator_table.update()
                .where(operator_table.c.id == gone.id)
                .values(status="disabled")
            )
            live = api_tokens.live_tokens(conn, lock=True)
        assert {token.id for token in live} == {service, held}
        roles = {token.id: token.operator_roles for token in live}
        assert roles[held] == frozenset({OperatorRole.ADMIN})
        assert roles[service] == frozenset()

    def test_count_includes_revoked(self, database: Database) -> None:
        """Revoked tokens still count, so a retired bootstrap token is not remade."""
        with database.transaction() as conn:
            token_id, _ = add_token(conn, role=ApiRole.ADMIN)
            api_tokens.revoke_api_token(conn, token_id, T0)
            assert api_tokens.count_api_tokens(conn, ApiRole.ADMIN) == 1
            assert api_tokens.count_api_tokens(conn, ApiRole.PROXY) == 0


def _locked_read_giving_up(database: Database) -> None:
    """Read live tokens locked, giving up on a lock held by another transaction."""
    with database.transaction() as conn:
        conn.exec_driver_sql("SET LOCAL lock_timeout = '50ms'")
        api_tokens.live_tokens(conn, lock=True)


@pytest.mark.postgres
def test_live_tokens_locked_block_a_second_locker(postgres_database: str) -> None:
    """On PostgreSQL a locked read of live tokens holds off another until commit."""
    database = Database(postgres_database, pool_size=2)
    database.create_schema()
    try:
        with database.transaction() as conn:
            token_id, _ = add_token(conn, role=ApiRole.ADMIN)
        with database.transaction() as first:
            assert token_id in {t.id for t in api_tokens.live_tokens(first, lock=True)}
            with pytest.raises(StoreError):
                _locked_read_giving_up(database)
            # An unlocked read does not wait (MVCC).
            with database.reading() as reader:
                assert token_id in {t.id for t in api_tokens.live_tokens(reader)}
        with database.transaction() as conn:
            api_tokens.revoke_api_token(conn, token_id, T0)
            assert api_tokens.live_tokens(conn, lock=True) == []
    finally:
        with database.transaction() as conn:
            conn.exec_driver_sql("DELETE FROM gp_api_tokens")
        database.dispose()
