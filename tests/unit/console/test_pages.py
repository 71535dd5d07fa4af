"""The console's pages in-process (httpx over ASGI, no sockets) (issue 13)."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from gatepass.api import create_app
from gatepass.broker import Caller, OperatorRegistration, Runtime, build_runtime
from gatepass.config import Settings
from gatepass.models import ApiRole, OperatorRole

REPO = Path(__file__).resolve().parents[3]
ADMIN = Caller.of("tok_admin", ApiRole.ADMIN)
PAGES = ["/", "/tasks", "/leases", "/agents", "/approvals", "/audit", "/policy"]


def runtime_at(tmp_path: Path, issuer: str) -> Runtime:
    """A quickstart-like broker with the console's bootstrap operator."""
    settings = Settings.model_validate(
        {
            "server": {"issuer": issuer, "state_dir": str(tmp_path / "state")},
            "policy": {
                "directory": str(REPO / "examples" / "quickstart" / "policies"),
                "reload_interval_seconds": 0,
            },
            "demo": {"enabled": True, "tenant": "acme"},
            "console": {"bootstrap_operator": "admin"},
        }
    )
    return build_runtime(settings)


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    """A fresh broker."""
    built = runtime_at(tmp_path, "http://broker.test")
    try:
        yield built
    finally:
        built.database.dispose()


async def browser(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client speaking to the app in-process."""
    app = create_app(runtime, background_jobs=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url=runtime.settings.server.issuer
    ) as client:
        yield client


async def signed_in(
    client: httpx.AsyncClient, runtime: Runtime, operator: str | None = None
) -> str:
    """Sign in with a login link; return the page's CSRF token."""
    link = await runtime.broker.console.make_link(ADMIN, operator)
    shown = await client.get("/console/login/link", params={"token": link.token})
    assert shown.status_code == 200
    used = await client.post("/console/login/link", data={"token": link.token})
    assert used.status_code == 303
    page = await client.get("/console/")
    found = re.search(r'name="csrf" value="([0-9a-f]{64})"', page.text)
    assert found
    return found.group(1)


def run(runtime: Runtime, check: Any) -> None:
    """Run an async check with a client."""

    async def main() -> None:
        async for client in browser(runtime):
            await check(client)

    anyio.run(main)


class TestAccess:
    """No session, no page; every answer carries the security headers."""

    def test_issue13_pages_need_a_session(self, runtime: Runtime) -> None:
        """A page without a session sends to sign-in; an action is refused."""

        async def check(client: httpx.AsyncClient) -> None:
            for path in PAGES:
                answer = await client.get(f"/console{path}")
                assert answer.status_code == 303
                assert answer.headers["location"] == "/console/login"
            refused = await client.post(
                "/console/tasks/tsk_x/close", data={"reason": "x"}
            )
            assert refused.status_code == 403
            assert "access_denied" in refused.text
            assert refused.headers["x-frame-options"] == "DENY"

        run(runtime, check)

    def test_issue13_every_page_renders_with_headers(self, runtime: Runtime) -> None:
        """Signed in, each page answers 200 with the CSP and no-store."""

        async def check(client: httpx.AsyncClient) -> None:
            await signed_in(client, runtime)
            for path in PAGES:
                answer = await client.get(f"/console{path}")
                assert answer.status_code == 200, (path, answer.text[-400:])
                assert (
                    "frame-ancestors 'none'"
                    in answer.headers["content-security-policy"]
                )
                assert answer.headers["cache-control"] == "no-store"
                assert "<script>" not in answer.text
                assert " style=" not in answer.text

        run(runtime, check)

    def test_issue13_link_page_spends_nothing(self, runtime: Runtime) -> None:
        """Opening the link only shows a button; the link still works after."""

        async def check(client: httpx.AsyncClient) -> None:
            link = await runtime.broker.console.make_link(ADMIN, None)
            for _ in range(2):
                shown = await client.get(
                    "/console/login/link", params={"token": link.token}
                )
                assert shown.status_code == 200
            used = await client.post("/console/login/link", data={"token": link.token})
            assert used.status_code == 303
            cookie = used.headers["set-cookie"].lower()
            for part in ("httponly", "samesite=strict", "path=/console"):
                assert part in cookie
            assert "secure" not in cookie
            again = await client.post("/console/login/link", data={"token": link.token})
            assert again.status_code == 401

        run(runtime, check)

    def test_issue13_secure_cookie_under_https(self, tmp_path: Path) -> None:
        """Behind an https issuer the session cookie is Secure."""
        built = runtime_at(tmp_path, "https://broker.test")
        try:

            async def check(client: httpx.AsyncClient) -> None:
                link = await built.broker.console.make_link(ADMIN, None)
                used = await client.post(
                    "/console/login/link", data={"token": link.token}
                )
                assert "secure" in used.headers["set-cookie"].lower()

            run(built, check)
        finally:
            built.database.dispose()


class TestForms:
    """Forms are strict."""

    def test_issue13_repeated_field_and_bad_choice_are_invalid(
        self, runtime: Runtime
    ) -> None:
        """A repeated field or an unknown vote choice is 400 invalid_request."""

        async def check(client: httpx.AsyncClient) -> None:
            csrf = await signed_in(client, runtime)
            repeated = await client.post(
                "/console/tasks/tsk_x/close",
                content=f"csrf={csrf}&reason=a&reason=b",
                headers={"content-type": "application/x-www-form-urlencoded"},
            )
            assert repeated.status_code == 400
            assert "invalid_request" in repeated.text

        run(runtime, check)

    def test_issue13_auditor_sees_no_actions(self, runtime: Runtime) -> None:
        """An auditor's pages have no Close, Revoke or Disable form."""

        async def check(client: httpx.AsyncClient) -> None:
            await runtime.broker.operators.add(
                ADMIN,
                OperatorRegistration(
                    name="audrey",
                    roles=frozenset({OperatorRole.AUDITOR}),
                    tenants=frozenset({"*"}),
                ),
            )
            await signed_in(client, runtime, "audrey")
            agents = await runtime.broker.agents.find()
            page = await client.get(f"/console/agents/{agents[0].id}")
            assert page.status_code == 200
            assert "disable-agent" not in page.text
            refused = await client.get("/console/approvals")
            assert refused.status_code == 200

        run(runtime, check)


class TestAudit:
    """Export and verify-now, in-process."""

    def test_issue13_export_is_json_lines_in_chain_order(
        self, runtime: Runtime
    ) -> None:
        """The export holds every record once, oldest first, each with its hash."""

        async def check(client: httpx.AsyncClient) -> None:
            await signed_in(client, runtime)
            answer = await client.get("/console/audit/export")
            assert answer.status_code == 200
            assert answer.headers["content-type"].startswith("application/x-ndjson")
            assert "attachment" in answer.headers["content-disposition"]
            records = [json.loads(line) for line in answer.text.splitlines()]
            seqs = [record["seq"] for record in records]
            assert seqs == list(range(1, len(seqs) + 1))
            assert all(len(record["hash"]) == 64 for record in records)
            only = await client.get("/console/audit/export?kind=console")
            kinds = {json.loads(line)["kind"] for line in only.text.splitlines()}
            assert kinds <= {"console.link", "console.login"}
            assert kinds

        run(runtime, check)

    def test_issue13_verify_now_answers_a_fragment_to_htmx(
        self, runtime: Runtime
    ) -> None:
        """With HX-Request the answer is the result alone; without, a whole page."""

        async def check(client: httpx.AsyncClient) -> None:
            csrf = await signed_in(client, runtime)
            fragment = await client.post(
                "/console/audit/verify",
                data={"csrf": csrf},
                headers={"hx-request": "true"},
            )
            assert fragment.status_code == 200
            assert fragment.text.lstrip().startswith('<span class="ok"')
            page = await client.post("/console/audit/verify", data={"csrf": csrf})
            assert "<html" in page.text
            assert "verified:" in page.text

        run(runtime, check)

    def test_issue13_scoped_operator_exports_one_agent_only(
        self, runtime: Runtime
    ) -> None:
        """An operator of some tenants must name an agent or task to export."""

        async def check(client: httpx.AsyncClient) -> None:
            await runtime.broker.operators.add(
                ADMIN,
                OperatorRegistration(
                    name="ann",
                    roles=frozenset({OperatorRole.AUDITOR}),
                    tenants=frozenset({"acme"}),
                ),
            )
            await signed_in(client, runtime, "ann")
            refused = await client.get("/console/audit/export")
            assert refused.status_code == 403
            agents = await runtime.broker.agents.find()
            allowed = await client.get(f"/console/audit/export?agent={agents[0].id}")
            assert allowed.status_code == 200
            assert allowed.text

        run(runtime, check)


class TestActions:
    """Disable, sign out and unknown pages, in-process."""

    def test_issue13_disable_agent_from_its_page(self, runtime: Runtime) -> None:
        """An admin disables the demo agent; its page says so; again conflicts."""

        async def check(client: httpx.AsyncClient) -> None:
            csrf = await signed_in(client, runtime)
            agent = (await runtime.broker.agents.find())[0]
            path = f"/console/agents/{agent.id}/disable"
            done = await client.post(path, data={"csrf": csrf})
            assert done.status_code == 303
            page = await client.get(done.headers["location"])
            assert 'data-testid="agent-status">disabled' in page.text
            again = await client.post(path, data={"csrf": csrf})
            assert again.status_code == 409

        run(runtime, check)

    def test_issue13_sign_out_ends_the_session(self, runtime: Runtime) -> None:
        """After signing out the same cookie opens nothing."""

        async def check(client: httpx.AsyncClient) -> None:
            csrf = await signed_in(client, runtime)
            out = await client.post("/console/logout", data={"csrf": csrf})
            assert out.status_code == 303
            cookie = next(iter(client.cookies.jar)).value if client.cookies else None
            assert (
                cookie is None or await runtime.broker.console.session(cookie) is None
            )
            again = await client.get("/console/tasks")
            assert again.status_code == 303

        run(runtime, check)

    def test_issue13_unknown_page_and_bad_id(self, runtime: Runtime) -> None:
        """An unknown path is a 404 page; a malformed id is 400, both with headers."""

        async def check(client: httpx.AsyncClient) -> None:
            await signed_in(client, runtime)
            missing = await client.get("/console/nothing-here")
            assert missing.status_code == 404
            assert "not_found" in missing.text
            assert missing.headers["x-frame-options"] == "DENY"
            bad = await client.get("/console/tasks/" + "x" * 80)
            assert bad.status_code == 400
            unknown = await client.get("/console/tasks/tsk_unknown")
            assert unknown.status_code == 404

        run(runtime, check)
