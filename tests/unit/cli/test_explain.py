"""Errors that tell you what to do, and ``gatepass policy explain`` (issue 17)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gatepass.tokens import DPoPKey, create_assertion, load_private_key

from .conftest import ISSUER, TOKEN_EXCHANGE, LiveBroker


def _open_task(broker: LiveBroker, **details: Any) -> Any:
    """Ask the token endpoint to open a task for the demo agent; return the answer."""
    identity = json.loads((broker.state_dir / "demo-agent.json").read_text())
    private_key, _, algorithm = load_private_key(identity["private_jwk"])
    key = DPoPKey.generate()
    now = broker.clock.now()
    assertion = create_assertion(
        private_key,
        algorithm=algorithm,
        agent_id=identity["agent_id"],
        audience=ISSUER,
        now=now,
    )
    task = {
        "type": "agent_task",
        "intent": "triage",
        "purpose": "support-triage",
        "environment": "dev",
        "targets": ["tickets"],
        **details,
    }
    form = {
        "grant_type": TOKEN_EXCHANGE,
        "subject_token": assertion,
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "requested_token_type": "urn:ietf:params:oauth:token-type:txn_token",
        "authorization_details": json.dumps([task]),
    }
    proof = key.proof("POST", f"{ISSUER}/token", now=now)
    return broker.http.post("/token", data=form, headers={"DPoP": proof})


class TestIssue17Messages:
    """A denial names the action and the target; an unknown target its name."""

    def test_issue17_policy_denial_names_action_and_target(self, broker):
        """Cross-tenant OpenTask is refused naming OpenTask and the target."""
        answer = _open_task(broker, tenant="globex")
        assert answer.status_code == 403
        body = answer.json()
        assert body["error"] == "access_denied"
        assert body["error_description"] == "policy denied OpenTask on target tickets"
        assert "forbid-cross-tenant" not in answer.text

    def test_issue17_deciding_ids_stay_in_the_audit(self, cli):
        """The audit record of the denial carries the deciding policy ids."""
        _open_task(cli.broker, tenant="globex")
        result = cli("audit", "tail", "--outcome", "deny", "-o", "json")
        record = json.loads(result.stdout.splitlines()[-1])
        assert record["kind"] == "task.open"
        assert "policy denied OpenTask on target tickets" in record["data"]["detail"]
        assert record["data"]["policy_ids"]

    def test_issue17_unknown_target_names_the_target(self, broker):
        """invalid_target says which target was asked for."""
        answer = _open_task(broker, targets=["tickets", "payroll-db"])
        assert answer.status_code == 400
        assert answer.json()["error"] == "invalid_target"
        assert answer.json()["error_description"] == "unknown target 'payroll-db'"

    def test_issue17_unknown_target_uri_is_named(self, broker):
        """A plain URI that names no target is shown as it was asked for."""
        answer = _open_task(broker, targets=["https://payroll.example/api/"])
        assert answer.json()["error_description"] == (
            "unknown target 'https://payroll.example/api/'"
        )

    @pytest.mark.parametrize(
        "reference",
        [
            "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl",
            "9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c",
            "https://user:hunter2@db.example/",
            "https://api.example/?key=abc",
            "x" * 400,
        ],
    )
    def test_issue17_secret_looking_target_is_never_echoed(self, broker, reference):
        """What could be a pasted secret is described, not repeated."""
        answer = _open_task(broker, targets=[reference])
        description = answer.json()["error_description"]
        assert description == (
            "unknown target (not shown: it is not a target name or URI)"
        )
        for part in ("hunter2", "key=abc", "eyJ", "9f8e7d6c", "xxxx"):
            assert part not in answer.text


class TestIssue17Explain:
    """``gatepass policy explain AGENT TARGET ACTION``: a what-if from the CLI."""

    def test_issue17_explain_allow_with_policy_ids_and_ttl(self, cli):
        """A read on tickets is allowed by the support policy, with its TTL cap."""
        answer = cli.json("policy", "explain", "demo-agent", "tickets", "read")
        assert answer["decision"] == "allow"
        assert answer["policy_ids"] == ["support-reads-low-risk"]
        assert answer["ttl_seconds"] == 600
        assert answer["profile"]["agent"]["id"] == cli.broker.demo_agent_id
        assert answer["profile"]["task"]["environment"] == "dev"
        assert answer["notes"] == []

    def test_issue17_explain_deny_table(self, cli):
        """Admin on tickets-prod is denied by never-admin; the table says DENY."""
        result = cli("policy", "explain", "demo-agent", "tickets-prod", "admin")
        assert result.exit_code == 0, result.output
        assert "DENY" in result.stdout
        assert "never-admin" in result.stdout

    def test_issue17_explain_purpose_environment_and_time(self, cli):
        """--purpose, --environment and --at reach the decision and its notes."""
        night = cli.json(
            "policy",
            "explain",
            cli.broker.demo_agent_id,
            "tickets-prod",
            "read",
            "--purpose",
            "support-triage",
            "--environment",
            "prod",
            "--at",
            "2026-01-06T22:00:00Z",
        )
        assert night["decision"] == "deny"
        assert "prod-business-hours-only" in night["policy_ids"]
        assert night["profile"]["at"] == "2026-01-06T22:00:00Z"
        elsewhere = cli.json(
            "policy", "explain", "demo-agent", "tickets", "write", "-e", "prod"
        )
        assert any("environment dev" in note for note in elsewhere["notes"])

    def test_issue17_explain_issues_nothing_and_audits_nothing(self, cli):
        """A what-if leaves no lease, no task and no audit record."""
        before = cli("audit", "tail", "-o", "json").stdout
        cli.json("policy", "explain", "demo-agent", "tickets", "read")
        assert cli("audit", "tail", "-o", "json").stdout == before
        assert cli.json("tasks", "list") == {"items": []}

    def test_issue17_explain_unknown_agent_and_target(self, cli):
        """An unknown agent is exit 66; an unknown target exit 64 naming it."""
        nobody = cli("policy", "explain", "nobody", "tickets", "read")
        assert nobody.exit_code == 66
        assert "nobody" in nobody.stderr
        nowhere = cli("policy", "explain", "demo-agent", "nowhere", "read")
        assert nowhere.exit_code == 64
        assert "unknown target 'nowhere'" in nowhere.stderr
