"""
A broker with the console, its operators, and signing in from a browser.

Built on the approvals broker (``approvals_kit``: quickstart policies, a frozen
clock, the demo agent): operators of two tenants are added through the broker's
use case, and :func:`sign_in` walks a browser through a one-time login link.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
from playwright.sync_api import BrowserContext, Page

from gatepass.broker import Caller, OperatorRegistration
from gatepass.models import ApiRole, Operator, OperatorRole

from .approvals_kit import ApprovalBroker

ADMIN = Caller.of("tok_test_admin", ApiRole.ADMIN)
T = TypeVar("T")


def run(work: Callable[..., Awaitable[T]], *args: Any) -> T:
    """
    Run a broker coroutine to completion from a test.

    In a thread of its own: Playwright's sync API keeps an event loop running in
    the test's thread, where ``anyio.run`` may not start another.
    """
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(anyio.run, work, *args).result()


@dataclass(frozen=True)
class Operators:
    """The operators of the console tests."""

    root: Operator
    alice: Operator
    audrey: Operator
    gina: Operator


def add_operators(broker: ApprovalBroker) -> Operators:
    """Add an admin of all tenants, an approver, an auditor, another tenant's admin."""

    def add(
        name: str,
        roles: set[OperatorRole],
        *,
        tenants: frozenset[str],
        groups: frozenset[str] = frozenset(),
    ) -> Operator:
        registration = OperatorRegistration(
            name=name, roles=frozenset(roles), tenants=tenants, groups=groups
        )
        issued = run(broker.runtime.broker.operators.add, ADMIN, registration)
        operator = issued.operator
        assert operator is not None
        return operator

    return Operators(
        root=add("root", {OperatorRole.ADMIN}, tenants=frozenset({"*"})),
        alice=add(
            "alice",
            {OperatorRole.APPROVER},
            groups=frozenset({"prod-approvers"}),
            tenants=frozenset({"acme"}),
        ),
        audrey=add("audrey", {OperatorRole.AUDITOR}, tenants=frozenset({"acme"})),
        gina=add("gina", {OperatorRole.ADMIN}, tenants=frozenset({"globex"})),
    )


def link_for(broker: ApprovalBroker, operator: Operator) -> str:
    """Make a login link for ``operator`` (with their own token, as approvers must)."""
    caller = Caller.of("tok_test_own", ApiRole.OPERATOR, operator)
    link = run(broker.runtime.broker.console.make_link, caller, None)
    return f"{broker.url}/console/login/link?token={link.token}"


def sign_in(context: BrowserContext, broker: ApprovalBroker, who: Operator) -> Page:
    """Open a page, follow a login link, press Sign in; return the signed-in page."""
    page = context.new_page()
    page.goto(link_for(broker, who))
    page.get_by_test_id("use-link").click()
    page.wait_for_url(f"{broker.url}/console/")
    assert page.get_by_test_id("operator").inner_text() == who.name
    return page


def post_from_page(page: Page, path: str, form: dict[str, str]) -> tuple[int, str]:
    """POST a urlencoded form with the page's own cookies (as a script on it could)."""
    answer: dict[str, object] = page.evaluate(
        """async ([path, form]) => {
            const response = await fetch(path, {
                method: "POST",
                headers: {"Content-Type": "application/x-www-form-urlencoded"},
                body: new URLSearchParams(form).toString(),
                redirect: "manual",
            });
            return {status: response.status, text: await response.text()};
        }""",
        [path, form],
    )
    return int(str(answer["status"])), str(answer["text"])
