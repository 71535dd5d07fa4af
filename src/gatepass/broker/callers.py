"""
Who calls the admin API, and what each caller may do.

Every call carries an API token, stored as a hash, with one role. A service token's
role decides its permissions; an operator's token (role ``operator``) may do what
its operator's roles allow:

======================  =====================================
token or operator role  permissions
======================  =====================================
``admin`` token         ``administer``, ``audit``, ``signal``
``introspect`` token    ``introspect``
``proxy`` token         ``introspect``, ``proxy``
``ssf_receiver`` token  ``ssf_receive``
operator ``admin``      ``administer``, ``audit``, ``signal``
operator ``approver``   ``approve``
operator ``auditor``    ``audit``
======================  =====================================

No service token ever holds ``approve``: a vote on an approval comes from a named
human only, so the bootstrap admin token can add operators but never approve.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from gatepass.audit import Outcome
from gatepass.broker.context import BrokerContext
from gatepass.broker.trail import Attempt
from gatepass.errors import AccessDeniedError, AuthenticationError
from gatepass.models import AgentStatus, Operator, OperatorRole
from gatepass.secret import token_hash
from gatepass.store import ApiRole, Connection, api_tokens, operators

__all__ = ["Caller", "Callers", "Permission", "permissions_of"]


class Permission(enum.StrEnum):
    """
    What a caller may do.

    ``administer``: change agents, operators, tokens, policy, keys, leases.
    ``approve``: vote on approvals (of the groups and tenants the operator holds).
    ``audit``: read tasks, leases, agents, approvals and the audit log.
    ``introspect``: RFC 7662 introspection and the revocation stream.
    ``proxy``: submit the proxy's records of proxied calls.
    ``ssf_receive``: manage and read one's own SSF streams (docs/ssf.md).
    ``signal``: send context signals (``POST /v1/signals``: an agent's risk, a
    frozen environment, a tenant's incident).
    """

    ADMINISTER = "administer"
    APPROVE = "approve"
    AUDIT = "audit"
    INTROSPECT = "introspect"
    PROXY = "proxy"
    SSF_RECEIVE = "ssf_receive"
    SIGNAL = "signal"


_SERVICE: Final[dict[ApiRole, frozenset[Permission]]] = {
    ApiRole.ADMIN: frozenset(
        {Permission.ADMINISTER, Permission.AUDIT, Permission.SIGNAL}
    ),
    ApiRole.INTROSPECT: frozenset({Permission.INTROSPECT}),
    ApiRole.PROXY: frozenset({Permission.INTROSPECT, Permission.PROXY}),
    ApiRole.OPERATOR: frozenset(),
    ApiRole.SSF_RECEIVER: frozenset({Permission.SSF_RECEIVE}),
}
_OPERATOR: Final[dict[OperatorRole, frozenset[Permission]]] = {
    OperatorRole.ADMIN: frozenset(
        {Permission.ADMINISTER, Permission.AUDIT, Permission.SIGNAL}
    ),
    OperatorRole.APPROVER: frozenset({Permission.APPROVE}),
    OperatorRole.AUDITOR: frozenset({Permission.AUDIT}),
}
# A refused token is named in the audit by this much of its SHA-256 only: enough
# to tell attempts apart, too little to match a stored hash exactly.
_HASH_PREFIX = 12


def permissions_of(
    role: ApiRole, operator_roles: Iterable[OperatorRole] = ()
) -> frozenset[Permission]:
    """
    Return what a token of ``role`` may do.

    Args:
        role: the token's role.
        operator_roles: for an ``operator`` token, its operator's roles; ignored
            for service tokens, so a service token can never gain ``approve``.
    """
    if role is not ApiRole.OPERATOR:
        return _SERVICE[role]
    granted: frozenset[Permission] = frozenset()
    for operator_role in operator_roles:
        granted |= _OPERATOR[operator_role]
    return granted


@dataclass(frozen=True, slots=True, kw_only=True)
class Caller:
    """
    An authenticated API caller.

    Attributes:
        token_id: the API token's id (never the token).
        role: the token's role.
        permissions: what the caller may do.
        operator: the named operator behind an ``operator`` token, else None. The
            approval code reads its groups and tenants (``Operator.may_act_on``).
    """

    token_id: str
    role: ApiRole
    permissions: frozenset[Permission]
    operator: Operator | None = None

    @classmethod
    def of(
        cls, token_id: str, role: ApiRole, operator: Operator | None = None
    ) -> Caller:
        """
        Return the caller of a token, with the permissions its role grants.

        Args:
            token_id: the token's id.
            role: the token's role.
            operator: the operator of an ``operator`` token.
        """
        roles = () if operator is None else operator.roles
        return cls(
            token_id=token_id,
            role=role,
            permissions=permissions_of(role, roles),
            operator=operator,
        )

    @property
    def actor(self) -> str:
        """Return the audit actor name: ``operator:<name>`` or ``admin:<token id>``."""
        if self.operator is not None:
            return f"operator:{self.operator.name}"
        return f"admin:{self.token_id}"

    def may(self, permission: Permission) -> bool:
        """Tell whether the caller holds ``permission``."""
        return permission in self.permissions

    def describe(self) -> str:
        """Return how refusals name the caller (``an approver``, ``a proxy token``)."""
        if self.operator is None:
            named = f"{self.role.value} token"
        else:
            named = " and ".join(sorted(role.value for role in self.operator.roles))
        article = "an" if named[:1] in "aeiou" else "a"
        return f"{article} {named}"


class Callers:
    """
    Authenticate API tokens and check what they may do.

    Args:
        context: the broker's collaborators.
    """

    def __init__(self, context: BrokerContext) -> None:
        """Keep the context."""
        self._context = context

    async def authenticate(
        self, authorization: str | None, *, needs: Permission | None
    ) -> Caller:
        """
        Check an ``Authorization: Bearer`` API token and the permission it needs.

        Args:
            authorization: the header, as sent.
            needs: the permission the operation needs; None for one that any
                authenticated caller may do (``whoami``).

        Raises:
            AuthenticationError: no token, an unknown or revoked one, or one of a
                disabled operator (audited by a prefix of the token's hash).
            AccessDeniedError: the caller lacks ``needs`` (audited).
        """
        scheme, _, credential = (authorization or "").partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            raise AuthenticationError(
                "an api token is required (Authorization: Bearer)"
            )
        digest = token_hash(credential)

        def look_up(conn: Connection) -> tuple[Caller | None, str]:
            found = api_tokens.find_api_token(conn, digest)
            if found is None:
                return None, "unknown or revoked"
            operator = None
            if found.operator_id is not None:
                operator = operators.get_operator(conn, found.operator_id)
                # Disabling revokes the operator's tokens in the same transaction;
                # checking the status too keeps a token out if that ever failed.
                if operator is None or operator.status is not AgentStatus.ACTIVE:
                    return None, "operator disabled"
            return Caller.of(found.id, found.role, operator), ""

        # Looked up by the SHA-256 of a 256-bit random token: the index lookup
        # leaks no timing about the token itself (store/api_tokens.py).
        caller, why = await self._context.database.read(look_up)
        if caller is None:
            attempt = Attempt(
                kind="admin.auth",
                data={"token_hash": digest[:_HASH_PREFIX], "reason": why},
            )
            await self._context.trail.record(attempt, Outcome.DENY)
            # One answer for every refused token, so a caller cannot tell a
            # revoked token from one that never existed.
            raise AuthenticationError("unknown api token")
        if self._context.seal.ended(caller.token_id):
            # Sealed after a restore: the journal says this token was revoked,
            # although the restored row says otherwise (docs/audit.md).
            attempt = Attempt(
                kind="admin.auth",
                data={"token_hash": digest[:_HASH_PREFIX], "reason": "revoked"},
            )
            await self._context.trail.record(attempt, Outcome.DENY)
            raise AuthenticationError("unknown api token")
        if needs is not None and not caller.may(needs):
            attempt = Attempt(
                kind="admin.auth",
                actor=caller.actor,
                subject=caller.token_id,
                data={"needs": needs.value},
            )
            await self._context.trail.record(attempt, Outcome.DENY)
            raise AccessDeniedError(f"{caller.describe()} may not {needs.value}")
        return caller
