"""
Operators: the named humans who administer, approve and audit.

An operator has a name, roles (admin, approver, auditor), the approver groups they
belong to, the tenants they may act on, and API tokens of their own. Adding one
returns their first token, shown once. Disabling one revokes every token they hold
in the same transaction, so it takes effect at their next request. Every change is
audited under the caller's name, in the transaction of the change.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Final

from gatepass.audit import Outcome
from gatepass.broker.callers import Caller
from gatepass.broker.context import BrokerContext
from gatepass.broker.requests import OperatorRegistration
from gatepass.broker.service_tokens import (
    IssuedToken,
    keep_one_administrator,
    mint_token,
    token_attempt,
)
from gatepass.broker.trail import Attempt, AuditRecorder
from gatepass.errors import (
    ConflictError,
    GatepassError,
    InvalidRequestError,
    NotFoundError,
)
from gatepass.ids import new_operator_id
from gatepass.models import AgentStatus, ApiRole, Operator, OperatorRole
from gatepass.store import Connection, api_tokens
from gatepass.store import operators as operator_rows

__all__ = ["OPERATOR_NAME", "Operators", "check_registration"]

OPERATOR_NAME: Final = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_MAX_MEMBERSHIPS = 64


def _names(values: frozenset[str], field: str, *, wildcard: bool = False) -> None:
    if len(values) > _MAX_MEMBERSHIPS:
        raise InvalidRequestError(f"{field} may name at most {_MAX_MEMBERSHIPS}")
    for value in sorted(values):
        if wildcard and value == "*":
            continue
        if OPERATOR_NAME.match(value) is None:
            extra = " or be *" if wildcard else ""
            raise InvalidRequestError(
                f"{field} must match [a-z0-9][a-z0-9._-]{{0,63}}{extra}"
            )


def check_registration(registration: OperatorRegistration) -> None:
    """
    Check an operator to add against the rules every face shares.

    The name and every group match ``[a-z0-9][a-z0-9._-]{0,63}``; tenants match it
    too or are ``*`` (every tenant); there is at least one role; an approver
    belongs to at least one group and holds at least one tenant, since a vote is
    only ever counted for a group and a tenant the approver holds.

    Raises:
        InvalidRequestError: naming the rule broken, never echoing a value.
    """
    if OPERATOR_NAME.match(registration.name) is None:
        raise InvalidRequestError("name must match [a-z0-9][a-z0-9._-]{0,63}")
    if not registration.roles:
        raise InvalidRequestError("an operator needs at least one role")
    _names(registration.groups, "groups")
    _names(registration.tenants, "tenants", wildcard=True)
    if OperatorRole.APPROVER in registration.roles and not (
        registration.groups and registration.tenants
    ):
        raise InvalidRequestError(
            "an approver needs at least one group and at least one tenant"
        )
    if len(registration.description) > 200:
        raise InvalidRequestError("description must be at most 200 characters")


class Operators:
    """
    Add, list, show and disable operators; make their tokens.

    Args:
        context: the broker's collaborators.
    """

    def __init__(self, context: BrokerContext) -> None:
        """Keep the context."""
        self._context = context

    async def add(
        self, caller: Caller, registration: OperatorRegistration
    ) -> IssuedToken:
        """
        Add an operator and make their first token.

        Returns:
            The token (show it once) with the operator.

        Raises:
            InvalidRequestError: the registration breaks a rule (audited).
            ConflictError: the name is taken (audited).
        """
        context = self._context
        try:
            check_registration(registration)
        except GatepassError as error:
            await self.reject(caller, "operator.add", error)
            raise
        operator = Operator(
            id=new_operator_id(),
            name=registration.name,
            roles=registration.roles,
            groups=registration.groups,
            tenants=registration.tenants,
            created_at=context.clock.now(),
        )
        adding = Attempt(
            kind="operator.add",
            actor=caller.actor,
            subject=operator.id,
            data={
                "name": operator.name,
                "roles": sorted(role.value for role in operator.roles),
                "groups": sorted(operator.groups),
                "tenants": sorted(operator.tenants),
            },
        )
        description = registration.description or f"operator {operator.name}"

        def add(conn: Connection, audit: AuditRecorder) -> IssuedToken:
            operator_rows.insert_operator(conn, operator)
            audit.record(conn, adding, Outcome.OK)
            issued = mint_token(
                conn,
                role=ApiRole.OPERATOR,
                description=description,
                context=context,
                operator=operator,
            )
            audit.record(conn, token_attempt(caller, issued), Outcome.OK)
            return issued

        try:
            return await context.trail.write(add)
        except GatepassError as error:
            await self.reject(caller, "operator.add", error)
            raise

    async def find(self, *, status: AgentStatus | None = None) -> list[Operator]:
        """Return operators by name, optionally of one status."""
        wanted = None if status is None else status.value
        return await self._context.database.read(
            lambda c: operator_rows.list_operators(c, status=wanted)
        )

    async def get(self, name: str) -> Operator:
        """
        Return one operator by name.

        Raises:
            NotFoundError: no such operator.
        """
        found = await self._context.database.read(
            lambda c: operator_rows.get_operator_by_name(c, name)
        )
        if found is None:
            raise NotFoundError("no such operator")
        return found

    async def disable(self, caller: Caller, name: str) -> Operator:
        """
        Disable an operator and revoke every token they hold.

        Raises:
            NotFoundError: no such operator (audited).
            ConflictError: already disabled, or their tokens are the last able to
                administer (audited).
        """
        context = self._context
        now = context.clock.now()
        attempt = Attempt(kind="operator.disable", actor=caller.actor)

        def disable(conn: Connection, audit: AuditRecorder) -> Operator:
            operator = operator_rows.get_operator_by_name(conn, name)
            if operator is None:
                raise NotFoundError("no such operator")
            attempt.subject = operator.id
            attempt.data = {"name": operator.name}
            if operator.status is not AgentStatus.ACTIVE:
                raise ConflictError("operator is already disabled")
            held = api_tokens.list_api_tokens(
                conn, operator_id=operator.id, include_revoked=False
            )
            keep_one_administrator(conn, removing={token.id for token in held})
            revoked = operator_rows.disable_operator(conn, operator.id, now) or []
            attempt.data["revoked"] = revoked
            audit.record(conn, attempt, Outcome.OK)
            return dataclasses.replace(operator, status=AgentStatus.DISABLED)

        try:
            return await context.trail.write(disable)
        except GatepassError as error:
            attempt.data.pop("revoked", None)
            await context.trail.refuse(attempt, error)
            raise

    async def new_token(
        self, caller: Caller, name: str, *, description: str = ""
    ) -> IssuedToken:
        """
        Make another token for an active operator (a second device, a rotation).

        Raises:
            NotFoundError: no such operator (audited).
            ConflictError: the operator is disabled (audited).
            InvalidRequestError: the description is longer than 200 (audited).
        """
        context = self._context
        attempt = Attempt(kind="token.create", actor=caller.actor)

        def create(conn: Connection, audit: AuditRecorder) -> IssuedToken:
            if len(description) > 200:
                raise InvalidRequestError("description must be at most 200 characters")
            operator = operator_rows.get_operator_by_name(conn, name)
            if operator is None:
                raise NotFoundError("no such operator")
            attempt.data = {"operator": operator.name}
            if operator.status is not AgentStatus.ACTIVE:
                raise ConflictError("operator is disabled")
            issued = mint_token(
                conn,
                role=ApiRole.OPERATOR,
                description=description or f"operator {operator.name}",
                context=context,
                operator=operator,
            )
            audit.record(conn, token_attempt(caller, issued), Outcome.OK)
            return issued

        try:
            return await context.trail.write(create)
        except GatepassError as error:
            await context.trail.refuse(attempt, error)
            raise

    async def reject(self, caller: Caller, kind: str, error: GatepassError) -> None:
        """
        Audit an operator request refused at the edge (a malformed body).

        Raises:
            StoreError: the refusal could not be audited.
        """
        await self._context.trail.refuse(Attempt(kind=kind, actor=caller.actor), error)
