"""Console sign-in: one-time links, sessions, and who may make a link (issue 13)."""

from __future__ import annotations

import datetime as dt

import pytest

from gatepass.broker import Caller, OperatorRegistration
from gatepass.errors import AccessDeniedError, AuthenticationError, InvalidRequestError
from gatepass.models import ApiRole, Operator, OperatorRole
from gatepass.store import audit_log

from .conftest import Harness

ADMIN = Caller.of("tok_admin", ApiRole.ADMIN)


def add(
    harness: Harness,
    name: str,
    *roles: OperatorRole,
    groups: tuple[str, ...] = (),
    tenants: tuple[str, ...] = ("acme",),
) -> Operator:
    """Add an operator through the use case."""
    registration = OperatorRegistration(
        name=name,
        roles=frozenset(roles),
        groups=frozenset(groups),
        tenants=frozenset(tenants),
    )
    issued = harness.run(harness.broker.operators.add, ADMIN, registration)
    added: Operator | None = issued.operator
    assert added is not None
    return added


def own(operator: Operator) -> Caller:
    """The caller of the operator's own token."""
    return Caller.of("tok_own", ApiRole.OPERATOR, operator)


def kinds(harness: Harness) -> list[str]:
    """Every audit kind, oldest first."""
    with harness.runtime.database.reading() as conn:
        return [record.kind for record in audit_log.iter_audit(conn)]


class TestLinks:
    """A login link works once, briefly, and only its hash is stored."""

    def test_issue13_link_opens_one_session_once(self, harness: Harness) -> None:
        """The first use opens a session; a second use of the same link is refused."""
        root = add(harness, "root", OperatorRole.ADMIN, tenants=("*",))
        link = harness.run(harness.broker.console.make_link, ADMIN, "root")
        assert link.expires_at - harness.clock.now() <= dt.timedelta(minutes=5)
        cookie, session = harness.run(harness.broker.console.redeem_link, link.token)
        assert session.operator.id == root.id
        assert session.caller.actor == "operator:root"
        found = harness.run(harness.broker.console.session, cookie)
        assert found is not None
        assert found.session_id == session.session_id
        with pytest.raises(AuthenticationError):
            harness.run(harness.broker.console.redeem_link, link.token)
        assert kinds(harness)[-3:] == ["console.link", "console.login", "console.login"]

    def test_issue13_link_expires_after_its_ttl(self, harness: Harness) -> None:
        """A link unused for five minutes no longer signs anyone in."""
        add(harness, "root", OperatorRole.ADMIN, tenants=("*",))
        link = harness.run(harness.broker.console.make_link, ADMIN, "root")
        harness.clock.advance(dt.timedelta(seconds=301))
        with pytest.raises(AuthenticationError):
            harness.run(harness.broker.console.redeem_link, link.token)

    def test_issue13_store_holds_hashes_only(self, harness: Harness) -> None:
        """Neither the link token nor the session cookie is in the database."""
        add(harness, "root", OperatorRole.ADMIN, tenants=("*",))
        link = harness.run(harness.broker.console.make_link, ADMIN, "root")
        cookie, _ = harness.run(harness.broker.console.redeem_link, link.token)
        with harness.runtime.database.reading() as conn:
            dumped = "\n".join(
                str(row)
                for table in (
                    "gp_console_links",
                    "gp_console_sessions",
                    "gp_audit_events",
                )
                for row in conn.exec_driver_sql(f"SELECT * FROM {table}")  # noqa: S608
            )
        assert link.token not in dumped
        assert cookie not in dumped

    def test_issue13_approver_link_needs_the_approvers_own_token(
        self, harness: Harness
    ) -> None:
        """The admin token cannot sign in as an approver; the approver's token can."""
        alice = add(harness, "alice", OperatorRole.APPROVER, groups=("prod-approvers",))
        with pytest.raises(AccessDeniedError):
            harness.run(harness.broker.console.make_link, ADMIN, "alice")
        link = harness.run(harness.broker.console.make_link, own(alice), None)
        assert link.operator.id == alice.id

    def test_issue13_non_admin_links_only_itself(self, harness: Harness) -> None:
        """An auditor's token makes a link for the auditor, never for another."""
        audrey = add(harness, "audrey", OperatorRole.AUDITOR)
        add(harness, "root", OperatorRole.ADMIN, tenants=("*",))
        with pytest.raises(AccessDeniedError):
            harness.run(harness.broker.console.make_link, own(audrey), "root")

    def test_issue13_admin_token_must_name_an_operator(self, harness: Harness) -> None:
        """Without a bootstrap operator configured, the admin token names one."""
        with pytest.raises(InvalidRequestError):
            harness.run(harness.broker.console.make_link, ADMIN, None)


class TestSessions:
    """Sessions end at sign-out and when the operator is disabled."""

    def test_issue13_sign_out_and_disable_end_sessions(self, harness: Harness) -> None:
        """A signed-out cookie and a disabled operator's cookie open nothing."""
        add(harness, "root", OperatorRole.ADMIN, tenants=("*",))
        add(harness, "audrey", OperatorRole.AUDITOR)
        console = harness.broker.console
        cookie, session = harness.run(
            console.redeem_link, harness.run(console.make_link, ADMIN, "root").token
        )
        harness.run(console.sign_out, session)
        assert harness.run(console.session, cookie) is None
        other, _ = harness.run(
            console.redeem_link, harness.run(console.make_link, ADMIN, "audrey").token
        )
        assert harness.run(console.session, other) is not None
        harness.run(harness.broker.operators.disable, ADMIN, "audrey")
        assert harness.run(console.session, other) is None

    def test_issue13_session_expires(self, harness: Harness) -> None:
        """A session lives [console] session_ttl_seconds, then is gone."""
        add(harness, "root", OperatorRole.ADMIN, tenants=("*",))
        console = harness.broker.console
        cookie, _ = harness.run(
            console.redeem_link, harness.run(console.make_link, ADMIN, "root").token
        )
        ttl = harness.runtime.settings.console.session_ttl_seconds
        harness.clock.advance(dt.timedelta(seconds=ttl))
        assert harness.run(console.session, cookie) is None
        assert harness.run(console.forget_expired) >= 1

    def test_issue13_unmapped_sign_in_is_refused_and_audited(
        self, harness: Harness
    ) -> None:
        """An IdP identity that maps to no operator gets no session, and is audited."""
        with pytest.raises(AuthenticationError):
            harness.run(
                harness.broker.console.sign_in,
                None,
                method="oidc",
                evidence={"issuer": "https://idp.test", "claim": "email"},
            )
        with harness.runtime.database.reading() as conn:
            last = audit_log.last_audit(conn, 1)[0]
        assert last.kind == "console.login"
        assert last.outcome == "deny"
        assert last.data["issuer"] == "https://idp.test"

    def test_issue13_garbage_cookie_opens_nothing(self, harness: Harness) -> None:
        """A cookie that is not a session token is no session (and no query)."""
        assert harness.run(harness.broker.console.session, "x" * 500) is None
        assert harness.run(harness.broker.console.session, "gps_nothing") is None
