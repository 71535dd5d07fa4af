"""
Who is signed in to the web console: one-time login links and browser sessions.

A login link (``gatepass console login``) is a random token shown once, stored as
its SHA-256, valid for ``[console] link_ttl_seconds`` (at most five minutes) and
spent by its first use. Spending it opens a session: another random token, the
browser's cookie, stored as its SHA-256 too and valid for
``[console] session_ttl_seconds``. Each request re-reads the operator, so
disabling one shuts their sessions at their next click. OIDC sign-ins end in the
same session, opened for the operator the IdP's claim maps to.

Links are made with an API token: an operator's own token makes a link for that
operator; the admin token (or an admin operator) makes one for an operator who is
not an approver. An approver's link is made with the approver's own token only,
so that no service token ever gets to vote through the console (callers.py).
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from gatepass.audit import Outcome
from gatepass.broker.callers import Caller, Permission
from gatepass.broker.context import BrokerContext
from gatepass.broker.trail import Attempt, AuditRecorder
from gatepass.errors import (
    AccessDeniedError,
    AuthenticationError,
    GatepassError,
    InvalidRequestError,
    NotFoundError,
)
from gatepass.ids import new_operator_id
from gatepass.models import AgentStatus, ApiRole, Operator, OperatorRole
from gatepass.secret import token_hash
from gatepass.store import Connection, console_sessions
from gatepass.store import operators as operator_rows

__all__ = ["ConsoleAccess", "ConsoleLink", "ConsoleSession"]

_LINK_PREFIX: Final = "gpl_"
_SESSION_PREFIX: Final = "gps_"


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsoleLink:
    """
    A one-time login link's secret part, shown once.

    Attributes:
        token: the link token (only its hash is stored).
        operator: who it signs in.
        expires_at: when it stops working.
    """

    token: str
    operator: Operator
    expires_at: dt.datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsoleSession:
    """
    A signed-in browser.

    Attributes:
        session_id: the session's id (audit and sign-out; never the cookie).
        caller: the operator as a caller (``operator:<name>`` in the audit).
        expires_at: when the session ends.
    """

    session_id: str
    caller: Caller
    expires_at: dt.datetime

    @property
    def operator(self) -> Operator:
        """The signed-in operator."""
        operator = self.caller.operator
        if operator is None:  # pragma: no cover - sessions are operators' only
            raise AuthenticationError("no operator")
        return operator


def _caller(session_id: str, operator: Operator) -> Caller:
    return Caller.of(f"console:{session_id}", ApiRole.OPERATOR, operator)


class ConsoleAccess:
    """
    Make login links, open, check and end console sessions.

    Args:
        context: the broker's collaborators.
    """

    def __init__(self, context: BrokerContext) -> None:
        """Keep the context."""
        self._context = context

    async def make_link(self, caller: Caller, operator_name: str | None) -> ConsoleLink:
        """
        Make a one-time login link for an operator.

        Args:
            caller: the API caller asking (an operator, or an administrator).
            operator_name: who the link signs in; None: the calling operator, or
                for the admin token ``[console] bootstrap_operator`` (made as an
                admin of every tenant the first time).

        Returns:
            The link's token (show it once) and whom it is for.

        Raises:
            InvalidRequestError: no operator named and none to default to.
            NotFoundError: no such operator, or a disabled one.
            AccessDeniedError: the caller may not sign that operator in.
        """
        context = self._context
        settings = context.settings.console
        attempt = Attempt(kind="console.link", actor=caller.actor)
        try:
            name = operator_name
            if name is None and caller.operator is not None:
                name = caller.operator.name
            if name is None:
                name = settings.bootstrap_operator
            if name is None:
                raise InvalidRequestError(
                    "name the operator to sign in as (gatepass console login "
                    "--operator NAME)"
                )
            attempt.data["operator"] = name[:64]
            now = context.clock.now()
            token = _LINK_PREFIX + secrets.token_urlsafe(32)
            expires_at = now + dt.timedelta(seconds=settings.link_ttl_seconds)
            bootstrap = name == settings.bootstrap_operator and caller.operator is None

            def make(
                conn: Connection, audit: AuditRecorder
            ) -> Operator | GatepassError:
                operator = operator_rows.get_operator_by_name(conn, name)
                if operator is None and bootstrap and caller.may(Permission.ADMINISTER):
                    operator = self._bootstrap(conn, audit, caller, name, now)
                if operator is None or operator.status is not AgentStatus.ACTIVE:
                    return NotFoundError("no such operator")
                refusal = self._refusal(caller, operator)
                if refusal is not None:
                    return refusal
                console_sessions.insert_link(
                    conn,
                    token_hash=token_hash(token),
                    operator_id=operator.id,
                    now=now,
                    expires_at=expires_at,
                )
                attempt.subject = operator.id
                attempt.data["expires_at"] = expires_at.isoformat()
                audit.record(conn, attempt, Outcome.OK)
                return operator

            made = await context.trail.write(make)
            if isinstance(made, GatepassError):
                raise made
        except GatepassError as error:
            await context.trail.refuse(attempt, error)
            raise
        return ConsoleLink(token=token, operator=made, expires_at=expires_at)

    def _bootstrap(
        self,
        conn: Connection,
        audit: AuditRecorder,
        caller: Caller,
        name: str,
        now: dt.datetime,
    ) -> Operator:
        operator = Operator(
            id=new_operator_id(),
            name=name,
            roles=frozenset({OperatorRole.ADMIN}),
            tenants=frozenset({"*"}),
            created_at=now,
        )
        operator_rows.insert_operator(conn, operator)
        audit.record(
            conn,
            Attempt(
                kind="operator.add",
                actor=caller.actor,
                subject=operator.id,
                data={
                    "name": name,
                    "roles": ["admin"],
                    "groups": [],
                    "tenants": ["*"],
                    "reason": "console bootstrap operator",
                },
            ),
            Outcome.OK,
        )
        return operator

    @staticmethod
    def _refusal(caller: Caller, operator: Operator) -> GatepassError | None:
        if caller.operator is not None and caller.operator.id == operator.id:
            return None
        if not caller.may(Permission.ADMINISTER):
            return AccessDeniedError(
                f"{caller.describe()} may make a login link for itself only"
            )
        if OperatorRole.APPROVER in operator.roles:
            return AccessDeniedError(
                "an approver's login link is made with the approver's own token"
            )
        held = caller.operator.tenants if caller.operator is not None else {"*"}
        if "*" not in held and not operator.tenants <= held:
            return AccessDeniedError("that operator holds tenants you do not")
        return None

    async def redeem_link(self, token: str) -> tuple[str, ConsoleSession]:
        """
        Spend a login link and open a session.

        Returns:
            The session's cookie value (set it once; only its hash is stored)
            and the session.

        Raises:
            AuthenticationError: the link is unknown, used, expired, or its
                operator was disabled (audited, one answer for all).
        """
        now = self._context.clock.now()

        def spend(conn: Connection) -> str | None:
            return console_sessions.spend_link(conn, token_hash(token), now)

        attempt = Attempt(
            kind="console.login",
            data={"method": "link", "link_hash": token_hash(token)[:12]},
        )
        return await self._open(attempt, spend, now)

    async def sign_in(
        self, operator_name: str | None, *, method: str, evidence: dict[str, str]
    ) -> tuple[str, ConsoleSession]:
        """
        Open a session for an operator an identity provider vouched for.

        Args:
            operator_name: the operator the IdP's claim maps to; None when it
                maps to none (refused and audited).
            method: how they proved it (``oidc``).
            evidence: what to audit about the proof (issuer, claim; no token).

        Returns:
            As :meth:`redeem_link`.

        Raises:
            AuthenticationError: no operator, or a disabled one (audited).
        """
        now = self._context.clock.now()

        def find(conn: Connection) -> str | None:
            if operator_name is None:
                return None
            operator = operator_rows.get_operator_by_name(conn, operator_name)
            return None if operator is None else operator.id

        attempt = Attempt(kind="console.login", data={"method": method, **evidence})
        return await self._open(attempt, find, now)

    async def _open(
        self,
        attempt: Attempt,
        who: Callable[[Connection], str | None],
        now: dt.datetime,
    ) -> tuple[str, ConsoleSession]:
        context = self._context
        ttl = dt.timedelta(seconds=context.settings.console.session_ttl_seconds)
        cookie = _SESSION_PREFIX + secrets.token_urlsafe(32)
        session_id = f"cs_{secrets.token_hex(8)}"
        method = str(attempt.data["method"])

        def open_session(conn: Connection, audit: AuditRecorder) -> Operator | None:
            operator_id = who(conn)
            operator = (
                None
                if operator_id is None
                else operator_rows.get_operator(conn, operator_id)
            )
            if operator is None or operator.status is not AgentStatus.ACTIVE:
                return None
            console_sessions.insert_session(
                conn,
                session_id=session_id,
                token_hash=token_hash(cookie),
                operator_id=operator.id,
                method=method,
                now=now,
                expires_at=now + ttl,
            )
            attempt.actor = f"operator:{operator.name}"
            attempt.subject = session_id
            audit.record(conn, attempt, Outcome.OK)
            return operator

        operator = await context.trail.write(open_session)
        if operator is None:
            error = AuthenticationError("the sign-in was refused")
            attempt.data["reason"] = "no active operator for this sign-in"
            await context.trail.refuse(attempt, error)
            raise error
        return cookie, ConsoleSession(
            session_id=session_id,
            caller=_caller(session_id, operator),
            expires_at=now + ttl,
        )

    async def session(self, cookie: str) -> ConsoleSession | None:
        """
        Return the live session of a cookie value, or None.

        The operator is read again on every call: a disabled operator's session
        ends at their next request.
        """
        now = self._context.clock.now()

        def look_up(conn: Connection) -> ConsoleSession | None:
            found = console_sessions.find_session(conn, token_hash(cookie), now)
            if found is None:
                return None
            operator = operator_rows.get_operator(conn, found.operator_id)
            if operator is None or operator.status is not AgentStatus.ACTIVE:
                return None
            return ConsoleSession(
                session_id=found.id,
                caller=_caller(found.id, operator),
                expires_at=found.expires_at,
            )

        if not cookie.startswith(_SESSION_PREFIX) or len(cookie) > 100:
            return None
        return await self._context.database.read(look_up)

    async def sign_out(self, session: ConsoleSession) -> None:
        """End a session (audited)."""
        context = self._context
        now = context.clock.now()
        attempt = Attempt(
            kind="console.logout",
            actor=session.caller.actor,
            subject=session.session_id,
        )

        def end(conn: Connection, audit: AuditRecorder) -> None:
            if console_sessions.end_session(conn, session.session_id, now):
                audit.record(conn, attempt, Outcome.OK)

        await context.trail.write(end)

    async def forget_expired(self) -> int:
        """Delete expired links and sessions (the sweep's job)."""
        now = self._context.clock.now()
        return await self._context.database.write(
            lambda conn: console_sessions.forget_expired(conn, now)
        )
