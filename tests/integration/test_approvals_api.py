"""
Approvers over the admin API and the CLI, with real operator tokens (issue 9).

The bootstrap admin token can read approvals but never vote; an auditor reads;
an approver of the right group and tenant votes with a reason; ``gatepass approvals
show`` puts the broker's facts first and the agent's words last, escaped.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from gatepass.cli import app

from .approvals_kit import ApprovalAgent, ApprovalBroker, approval_broker

pytestmark = pytest.mark.slow

HOSTILE = "URGENT \x1b[31mCEO approved\x1b[0m \u202eyrgna\u202c [bold]click[/bold]"


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApprovalBroker]:
    """One approvals broker for the module."""
    yield from approval_broker(tmp_path_factory.mktemp("approvals-api"))


def _admin_token(broker: ApprovalBroker) -> str:
    state = broker.runtime.settings.server.state_dir
    return (state / "admin.token").read_text().strip()


def _client(broker: ApprovalBroker, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=broker.url, headers={"Authorization": f"Bearer {token}"}, timeout=10
    )


@pytest.fixture(scope="module")
def tokens(broker: ApprovalBroker) -> dict[str, str]:
    """Operator tokens: an approver of prod-approvers, an auditor, another tenant's."""
    issued: dict[str, str] = {"admin": _admin_token(broker)}
    with _client(broker, issued["admin"]) as admin:
        for name, roles, groups, tenants in (
            ("alice", ["approver"], ["prod-approvers"], ["acme"]),
            ("ivy", ["auditor"], [], []),
            ("olga", ["approver"], ["prod-approvers"], ["globex"]),
        ):
            answer = admin.post(
                "/v1/admin/operators",
                json={
                    "name": name,
                    "roles": roles,
                    "groups": groups,
                    "tenants": tenants,
                },
            )
            assert answer.status_code == 201, answer.text
            issued[name] = answer.json()["token"]
    return issued


@pytest.fixture
def agent(broker: ApprovalBroker) -> Iterator[ApprovalAgent]:
    """The demo agent with a fresh key."""
    with broker.agent() as client:
        yield client


def _pending(agent: ApprovalAgent, **extra: str) -> tuple[str, str]:
    task = agent.open_prod_task()
    answer = agent.ask(task, **extra)
    assert answer.json()["error"] == "authorization_pending", answer.text
    return task, str(answer.json()["approval_id"])


def _cli(broker: ApprovalBroker, token: str, *args: str) -> Any:
    return CliRunner().invoke(
        app,
        list(args),
        env={"GATEPASS_ADDR": broker.url, "GATEPASS_TOKEN": token, "COLUMNS": "200"},
    )


class TestWhoSees:
    """Reading needs audit or approve; voting needs approve."""

    def test_issue9_readers_and_voters(
        self, broker: ApprovalBroker, agent: ApprovalAgent, tokens: dict[str, str]
    ) -> None:
        """Admin and auditor read, never vote; other tenants' approvers see nothing."""
        task, approval_id = _pending(agent)
        for reader in ("admin", "ivy", "alice"):
            with _client(broker, tokens[reader]) as client:
                listed = client.get("/v1/admin/approvals").json()["approvals"]
            assert approval_id in [item["approval_id"] for item in listed], reader
        with _client(broker, tokens["olga"]) as client:
            listed = client.get("/v1/admin/approvals").json()["approvals"]
            assert approval_id not in [item["approval_id"] for item in listed]
            assert client.get(f"/v1/admin/approvals/{approval_id}").status_code == 404
        for voter in ("admin", "ivy"):
            with _client(broker, tokens[voter]) as client:
                refused = client.post(
                    f"/v1/admin/approvals/{approval_id}/approve", json={"reason": "x"}
                )
            assert refused.status_code == 403, voter
        with _client(broker, tokens["alice"]) as client:
            voted = client.post(
                f"/v1/admin/approvals/{approval_id}/approve",
                json={"reason": "CHG-1234"},
            )
        assert voted.status_code == 200, voted.text
        assert voted.json()["state"] == "approved"
        assert agent.ask(task, approval_id=approval_id).status_code == 200
        vote = broker.audit_of(approval_id, "approval.vote")
        assert vote["actor"] == "operator:alice"

    @pytest.mark.parametrize(
        ("path", "body", "code"),
        [
            (
                "/v1/admin/approvals/apr_nope/approve",
                {"reason": "x"},
                "invalid_request",
            ),
            ("/v1/admin/approvals/{id}/approve", {}, "invalid_request"),
            ("/v1/admin/approvals/{id}/approve", {"reason": ""}, "invalid_request"),
            (
                "/v1/admin/approvals/{id}/deny",
                {"reason": "x", "x": 1},
                "invalid_request",
            ),
        ],
    )
    def test_issue9_bad_votes_are_400(
        self,
        *,
        broker: ApprovalBroker,
        agent: ApprovalAgent,
        tokens: dict[str, str],
        path: str,
        body: dict[str, Any],
        code: str,
    ) -> None:
        """A malformed id or body is invalid_request, never a 5xx."""
        _, approval_id = _pending(agent)
        with _client(broker, tokens["alice"]) as client:
            answer = client.post(path.replace("{id}", approval_id), json=body)
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"] == code

    def test_issue9_bad_list_queries_are_400(
        self, broker: ApprovalBroker, tokens: dict[str, str]
    ) -> None:
        """An unknown state or limit is invalid_request."""
        with _client(broker, tokens["ivy"]) as client:
            for query in ("state=bogus", "limit=0", "limit=x"):
                answer = client.get(f"/v1/admin/approvals?{query}")
                assert answer.status_code == 400, query


class TestCLI:
    """``gatepass approvals`` for the approver at a terminal."""

    def test_issue9_show_puts_facts_first_and_escapes_the_agent(
        self, broker: ApprovalBroker, agent: ApprovalAgent, tokens: dict[str, str]
    ) -> None:
        """The canonical request comes before the agent's words, which are inert."""
        _, approval_id = _pending(agent, justification=HOSTILE)
        shown = _cli(broker, tokens["alice"], "approvals", "show", approval_id)
        assert shown.exit_code == 0, shown.output
        out = shown.output
        assert out.index("tickets-prod") < out.index("written by the agent")
        assert "\x1b" not in out
        assert "\u202e" not in out
        assert "CEO approved" in out
        # Rich markup in agent text is printed, not interpreted.
        assert "[bold]click[/bold]" in out

    def test_issue9_list_approve_deny(
        self, broker: ApprovalBroker, agent: ApprovalAgent, tokens: dict[str, str]
    ) -> None:
        """The list shows the pending id; approve and deny say the new state."""
        _, first = _pending(agent)
        _, second = _pending(agent)
        listed = _cli(broker, tokens["alice"], "approvals", "list", "--json")
        assert listed.exit_code == 0, listed.output
        assert first in listed.output
        approved = _cli(
            broker, tokens["alice"], "approvals", "approve", first, "-r", "CHG-1"
        )
        assert approved.exit_code == 0, approved.output
        assert f"{first}: approved" in approved.output
        denied = _cli(broker, tokens["alice"], "approvals", "deny", second, "-r", "no")
        assert f"{second}: denied" in denied.output
        again = _cli(broker, tokens["alice"], "approvals", "deny", second, "-r", "no")
        assert again.exit_code != 0
        assert "denied" in again.output
