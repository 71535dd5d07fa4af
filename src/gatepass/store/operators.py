"""
Persistence of operators: the named humans who administer, approve and audit.

Roles, groups and tenants are stored as sorted JSON lists. Disabling an operator
revokes its API tokens in the same transaction, so no token of a disabled operator
outlives the change (the broker's authentication also checks the operator's status,
as a second lock on the same door).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Connection, Row, select, update
from sqlalchemy.exc import IntegrityError

from gatepass.errors import ConflictError
from gatepass.ids import OperatorId
from gatepass.models import AgentStatus, Operator, OperatorRole
from gatepass.store.api_tokens import revoke_operator_tokens
from gatepass.store.tables import operators

__all__ = [
    "disable_operator",
    "get_operator",
    "get_operator_by_name",
    "insert_operator",
    "list_operators",
]


def _to_operator(row: Row[Any]) -> Operator:
    return Operator(
        id=OperatorId(row.id),
        name=row.name,
        roles=frozenset(OperatorRole(role) for role in row.roles),
        groups=frozenset(row.groups),
        tenants=frozenset(row.tenants),
        status=AgentStatus(row.status),
        created_at=row.created_at,
    )


def insert_operator(conn: Connection, operator: Operator) -> None:
    """
    Record a new operator.

    Raises:
        ConflictError: an operator with that name already exists.
    """
    try:
        with conn.begin_nested():
            conn.execute(
                operators.insert().values(
                    id=operator.id,
                    name=operator.name,
                    roles=sorted(role.value for role in operator.roles),
                    groups=sorted(operator.groups),
                    tenants=sorted(operator.tenants),
                    status=operator.status.value,
                    created_at=operator.created_at,
                )
            )
    except IntegrityError as exc:
        raise ConflictError(
            f"an operator named {operator.name!r} already exists"
        ) from exc


def get_operator(conn: Connection, operator_id: str) -> Operator | None:
    """Return the operator with this id, or None."""
    row = conn.execute(
        select(operators).where(operators.c.id == operator_id)
    ).one_or_none()
    return None if row is None else _to_operator(row)


def get_operator_by_name(conn: Connection, name: str) -> Operator | None:
    """Return the operator with this name, or None."""
    row = conn.execute(select(operators).where(operators.c.name == name)).one_or_none()
    return None if row is None else _to_operator(row)


def list_operators(conn: Connection, *, status: str | None = None) -> list[Operator]:
    """Return operators by name, optionally of one status."""
    query = select(operators).order_by(operators.c.name)
    if status is not None:
        query = query.where(operators.c.status == status)
    return [_to_operator(row) for row in conn.execute(query)]


def disable_operator(
    conn: Connection, operator_id: str, now: dt.datetime
) -> list[str] | None:
    """
    Disable an active operator and revoke its tokens, in the caller's transaction.

    Returns:
        The ids of the tokens revoked, or None if the operator is not active (no
        such operator, or already disabled): nothing changed.
    """
    result = conn.execute(
        update(operators)
        .where(
            operators.c.id == operator_id,
            operators.c.status == AgentStatus.ACTIVE.value,
        )
        .values(status=AgentStatus.DISABLED.value, disabled_at=now)
    )
    if result.rowcount == 0:
        return None
    return revoke_operator_tokens(conn, operator_id, now)
