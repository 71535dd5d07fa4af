"""
The console in a real browser (issue 13): Debian's headless chromium.

One approvals broker (frozen clock, quickstart policies, the demo agent) serves
every test of the module; each test signs in with a fresh browser profile.
"""

from __future__ import annotations

from collections.abc import Iterator

import jwt
import pytest
from playwright.sync_api import Browser, BrowserContext, expect

from .approvals_kit import ApprovalAgent, ApprovalBroker, approval_broker
from .console_browser import chromium, context, screenshot
from .console_kit import Operators, add_operators, post_from_page, sign_in

pytestmark = pytest.mark.slow
__all__ = ["chromium", "context"]  # fixtures, used by name


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApprovalBroker]:
    """One approvals broker, with the console, for the module."""
    yield from approval_broker(tmp_path_factory.mktemp("console"))


@pytest.fixture(scope="module")
def people(broker: ApprovalBroker) -> Operators:
    """The module's operators."""
    return add_operators(broker)


@pytest.fixture
def agent(broker: ApprovalBroker) -> Iterator[ApprovalAgent]:
    """The demo agent with a fresh key."""
    with broker.agent() as client:
        yield client


def task_of(task_token: str) -> str:
    """The task id a task token names (read, not verified: the test's own token)."""
    claims = jwt.decode(task_token, options={"verify_signature": False})
    return str(claims["txn"])


def open_task_with_lease(agent: ApprovalAgent) -> tuple[str, str]:
    """Open a dev task and get one access token for it; return (task token, task id)."""
    token = agent.open_task()["access_token"]
    issued = agent.post_token(agent.access_form(token))
    assert issued.status_code == 200, issued.text
    return token, task_of(token)


class TestTasks:
    """An operator sees the demo agent's task and closes it."""

    def test_issue13_close_task_revokes_its_leases(
        self,
        broker: ApprovalBroker,
        people: Operators,
        agent: ApprovalAgent,
        context: BrowserContext,
    ) -> None:
        """An admin finds the new task, closes it, and sees its leases revoked."""
        page = sign_in(context, broker, people.root)
        page.get_by_role("link", name="Tasks", exact=True).click()
        expect(page.get_by_test_id("tasks")).to_be_visible()
        # The agent opens its task while the list is on screen: it appears there
        # by itself (the list refreshes every 5 s).
        token, task_id = open_task_with_lease(agent)
        expect(page.get_by_test_id("tasks")).to_contain_text(task_id, timeout=10_000)
        screenshot(page, "tasks")
        page.get_by_role("link", name=task_id).click()
        expect(page.get_by_test_id("task-state")).to_have_text("open")
        expect(page.get_by_test_id("lease-state")).to_have_text(["active"])
        screenshot(page, "task")
        page.goto(f"{broker.url}/console/")
        expect(page.get_by_test_id("open-tasks")).not_to_have_text("0")
        screenshot(page, "overview")
        page.goto(f"{broker.url}/console/tasks/{task_id}")
        page.get_by_test_id("close-reason").fill("incident 7: stop the triage bot")
        page.get_by_test_id("close-task").click()
        expect(page.get_by_test_id("task-state")).to_have_text("closed")
        expect(page.get_by_test_id("lease-state")).to_have_text(["revoked"])
        expect(page.get_by_test_id("timeline")).to_contain_text("task.close")
        closing = broker.audit_of(task_id, "task.close")
        assert closing["actor"] == "operator:root"
        assert "incident 7" in closing["data"]["reason"]
        # The agent's task token no longer gets anything.
        refused = agent.post_token(agent.access_form(token))
        assert refused.status_code == 400, refused.text

    def test_issue13_revoke_one_lease(
        self,
        broker: ApprovalBroker,
        people: Operators,
        agent: ApprovalAgent,
        context: BrowserContext,
    ) -> None:
        """An admin revokes one lease with a reason; its page shows it revoked."""
        _, task_id = open_task_with_lease(agent)
        page = sign_in(context, broker, people.root)
        page.goto(f"{broker.url}/console/leases?state=active&task={task_id}")
        page.get_by_test_id("leases").get_by_role("link", name="lse_").first.click()
        expect(page.get_by_test_id("lease-state")).to_have_text("active")
        page.locator("input[name=reason]").fill("leaked in a log")
        page.get_by_test_id("revoke-lease").click()
        expect(page.get_by_test_id("lease-state")).to_have_text("revoked")
        expect(page.get_by_test_id("lease-trail")).to_contain_text("lease.revoke")
        expect(page.get_by_test_id("lease-trail")).to_contain_text("operator:root")

    def test_issue13_auditor_cannot_close_tasks(
        self,
        broker: ApprovalBroker,
        people: Operators,
        agent: ApprovalAgent,
        context: BrowserContext,
    ) -> None:
        """An auditor reads the task, has no Close button, and a posted close fails."""
        _, task_id = open_task_with_lease(agent)
        page = sign_in(context, broker, people.audrey)
        page.goto(f"{broker.url}/console/tasks/{task_id}")
        expect(page.get_by_test_id("task-state")).to_have_text("open")
        expect(page.get_by_test_id("close-task")).to_have_count(0)
        csrf = page.locator("form.who input[name=csrf]").get_attribute("value")
        assert csrf
        status, body = post_from_page(
            page,
            f"/console/tasks/{task_id}/close",
            {"csrf": csrf, "reason": "not mine to close"},
        )
        assert status == 403
        assert "access_denied" in body
        page.reload()
        expect(page.get_by_test_id("task-state")).to_have_text("open")


class TestSecurity:
    """CSRF, tenant scope and the headers, as a browser meets them."""

    def test_issue13_forged_post_without_csrf_token_is_refused(
        self,
        broker: ApprovalBroker,
        people: Operators,
        agent: ApprovalAgent,
        context: BrowserContext,
    ) -> None:
        """A POST carrying the session cookie but no CSRF token changes nothing."""
        _, task_id = open_task_with_lease(agent)
        page = sign_in(context, broker, people.root)
        for form in ({"reason": "forged"}, {"reason": "forged", "csrf": "0" * 64}):
            status, body = post_from_page(page, f"/console/tasks/{task_id}/close", form)
            assert status == 403
            assert "invalid_csrf_token" in body
        page.goto(f"{broker.url}/console/tasks/{task_id}")
        expect(page.get_by_test_id("task-state")).to_have_text("open")

    def test_issue13_other_tenant_sees_nothing(
        self,
        broker: ApprovalBroker,
        people: Operators,
        agent: ApprovalAgent,
        context: BrowserContext,
    ) -> None:
        """A globex admin sees no acme task, agent, lease, approval or audit record."""
        _, task_id = open_task_with_lease(agent)
        prod = agent.open_prod_task()
        agent.ask(prod, justification="needs a write")
        page = sign_in(context, broker, people.gina)
        expect(page.get_by_test_id("open-tasks")).to_have_text("0")
        expect(page.get_by_test_id("pending-approvals")).to_have_text("0")
        page.goto(f"{broker.url}/console/tasks")
        expect(page.get_by_test_id("tasks")).not_to_contain_text("tsk_")
        page.goto(f"{broker.url}/console/agents")
        expect(page.get_by_test_id("agents")).not_to_contain_text("demo-agent")
        page.goto(f"{broker.url}/console/leases")
        expect(page.get_by_test_id("leases")).not_to_contain_text("lse_")
        page.goto(f"{broker.url}/console/approvals")
        expect(page.get_by_test_id("pending")).not_to_contain_text("apr_")
        answer = page.goto(f"{broker.url}/console/tasks/{task_id}")
        assert answer is not None
        assert answer.status == 404
        answer = page.goto(f"{broker.url}/console/audit?task={task_id}")
        assert answer is not None
        assert answer.status == 404
        answer = page.goto(f"{broker.url}/console/audit")
        assert answer is not None
        assert answer.status == 403
        answer = page.goto(
            f"{broker.url}/console/policy?agent=demo-agent&target=tickets&action=read"
        )
        assert answer is not None
        assert answer.status == 404
        page.goto(f"{broker.url}/console/policy")
        targets = page.locator("select[name=target] option").all_inner_texts()
        assert targets == ["globex-dev"]

    def test_issue13_headers_forbid_framing_and_inline_script(
        self, broker: ApprovalBroker, people: Operators, context: BrowserContext
    ) -> None:
        """Every page has the strict CSP, no framing, and an HttpOnly Strict cookie."""
        page = sign_in(context, broker, people.root)
        answer = page.goto(f"{broker.url}/console/audit")
        assert answer is not None
        headers = answer.headers
        assert "script-src 'self'" in headers["content-security-policy"]
        assert "unsafe-inline" not in headers["content-security-policy"]
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert headers["x-frame-options"] == "DENY"
        (cookie,) = [c for c in context.cookies() if c["name"] == "gatepass_console"]
        assert cookie["httpOnly"] is True
        assert cookie["sameSite"] == "Strict"
        assert cookie["path"] == "/console"
        page.get_by_test_id("verify").click()
        expect(page.get_by_test_id("verify-ok")).to_contain_text("verified")
        screenshot(page, "audit")

    def test_issue13_policy_what_if(
        self, broker: ApprovalBroker, people: Operators, context: BrowserContext
    ) -> None:
        """The what-if form shows the decision and the deciding policy ids."""
        page = sign_in(context, broker, people.root)
        page.goto(f"{broker.url}/console/policy")
        expect(page.get_by_test_id("policies")).to_contain_text("permit")
        page.locator("input[name=agent]").fill("demo-agent")
        page.locator("select[name=target]").select_option("tickets")
        page.locator("input[name=action]").fill("read")
        page.locator("input[name=purpose]").fill("support-triage")
        page.get_by_test_id("explain").click()
        expect(page.get_by_test_id("decision")).to_have_text("allow")
        screenshot(page, "policy")


class TestLayout:
    """A narrow window, the dark theme, the keyboard."""

    def test_issue13_narrow_dark_and_keyboard(
        self,
        broker: ApprovalBroker,
        people: Operators,
        agent: ApprovalAgent,
        chromium: Browser,
    ) -> None:
        """At 390 px nothing overflows sideways; dark is dark; Tab reaches the nav."""
        _, task_id = open_task_with_lease(agent)
        phone = chromium.new_context(
            viewport={"width": 390, "height": 800}, color_scheme="dark"
        )
        try:
            page = sign_in(phone, broker, people.root)
            for path in ("/console/", f"/console/tasks/{task_id}", "/console/audit"):
                page.goto(f"{broker.url}{path}")
                wide = page.evaluate(
                    "() => document.documentElement.scrollWidth - window.innerWidth"
                )
                assert wide <= 1, (path, wide)
            background = page.evaluate(
                "() => getComputedStyle(document.body).backgroundColor"
            )
            assert background == "rgb(13, 17, 23)"
            page.goto(f"{broker.url}/console/")
            screenshot(page, "overview-narrow-dark")
            page.keyboard.press("Tab")
            assert page.evaluate("() => document.activeElement.textContent") == (
                "Skip to content"
            )
            page.keyboard.press("Tab")
            page.keyboard.press("Tab")
            assert page.evaluate("() => document.activeElement.textContent") == (
                "Overview"
            )
        finally:
            phone.close()


class TestApprovals:
    """The approvals inbox, end to end with the agent polling."""

    def test_issue13_approve_in_console_and_the_agents_poll_succeeds(
        self,
        broker: ApprovalBroker,
        people: Operators,
        agent: ApprovalAgent,
        context: BrowserContext,
    ) -> None:
        """Alice approves the pending write with a reason; the agent's poll succeeds."""
        task = agent.open_prod_task()
        asked = agent.ask(task, justification="close ticket 42 as fixed")
        assert asked.status_code == 400
        approval_id = asked.json()["approval_id"]
        page = sign_in(context, broker, people.alice)
        page.get_by_role("link", name="Approvals", exact=True).click()
        expect(page.get_by_test_id("pending")).to_contain_text(approval_id)
        screenshot(page, "approvals")
        page.get_by_role("link", name=approval_id).first.click()
        expect(page.get_by_test_id("quorum")).to_contain_text("0 approvals")
        facts = page.locator("section.facts-block")
        words = page.locator("section.agent-supplied")
        # The broker's canonical parameters come before the agent's words.
        assert facts.bounding_box()["y"] < words.bounding_box()["y"]  # type: ignore[index]
        expect(words).to_contain_text("close ticket 42 as fixed")
        screenshot(page, "approval")
        page.get_by_test_id("vote-reason").fill("change ticket CHG-9 approved")
        page.get_by_test_id("approve").click()
        expect(page.get_by_test_id("approval-state")).to_have_text("approved")
        expect(page.get_by_test_id("votes")).to_contain_text("alice voted approve")
        polled = agent.ask(task, approval_id=approval_id)
        assert polled.status_code == 200, polled.text
        assert polled.json()["access_token"]
        vote = broker.audit_of(approval_id, "approval.vote")
        assert vote["actor"] == "operator:alice"
        # Redeemed, it leaves the pending list for the history.
        page.goto(f"{broker.url}/console/approvals")
        expect(page.get_by_test_id("pending")).not_to_contain_text(approval_id)
        expect(page.get_by_test_id("history")).to_contain_text(approval_id)
        expect(page.get_by_test_id("history")).to_contain_text("redeemed")

    def test_issue13_agent_text_with_markup_and_script_is_inert(
        self,
        broker: ApprovalBroker,
        people: Operators,
        agent: ApprovalAgent,
        context: BrowserContext,
    ) -> None:
        """Markup, script and control characters from the agent are shown, never run."""
        hostile = (
            '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned=2">'
            "\u202eevil\u001b[31m approve me"
        )
        opened = agent.open_task(
            targets=["tickets-prod"], environment="prod", intent=hostile
        )
        task = opened["access_token"]
        asked = agent.ask(task, justification=hostile)
        approval_id = asked.json()["approval_id"]
        page = sign_in(context, broker, people.alice)
        page.goto(f"{broker.url}/console/approvals/{approval_id}")
        shown = page.get_by_test_id("justification").inner_text()
        assert "<script>window.__pwned = 1</script>" in shown
        assert "\\u{202e}" in shown
        assert "\\u{1b}" in shown
        assert (
            page.get_by_test_id("approval-intent").locator("img, script").count() == 0
        )
        assert page.evaluate("() => window.__pwned") is None
        # The task page shows the same intent inert (to an admin: approvers see
        # approvals, not tasks).
        page = sign_in(context, broker, people.root)
        page.goto(f"{broker.url}/console/tasks/{task_of(task)}")
        expect(page.get_by_test_id("intent")).to_contain_text("<img src=x")
        assert page.get_by_test_id("intent").locator("img, script").count() == 0
        assert page.evaluate("() => window.__pwned") is None
