"""``gatepass operators``, ``gatepass tokens`` and ``gatepass whoami``."""

from __future__ import annotations

import json
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from .conftest import Cli

NOT_AGAIN = "will not be shown again"


def add_approver(cli: Cli, name: str = "alice") -> dict[str, object]:
    """Add an acme prod approver with --json; return the API's answer."""
    answer: dict[str, object] = cli.json(
        "operators",
        "add",
        name,
        "--role",
        "approver",
        "--group",
        "prod-approvers",
        "--tenant",
        "acme",
    )
    return answer


class TestOperators:
    """Adding, listing, showing and disabling operators."""

    def test_add_prints_the_token_once(self, cli: Cli) -> None:
        """The token alone on stdout; the operator's table and a note on stderr."""
        result = cli(
            "operators",
            "add",
            "alice",
            "--role",
            "approver",
            "--group",
            "prod-approvers",
            "--tenant",
            "acme",
        )
        assert result.exit_code == 0, result.output
        token_lines = [
            line for line in result.stdout.splitlines() if line.startswith("gp_")
        ]
        assert len(token_lines) == 1
        assert token_lines[0].startswith("gp_operator_")
        assert result.stdout.strip() == token_lines[0]
        assert "prod-approvers" in result.stderr
        assert NOT_AGAIN in result.stderr
        me = json.loads(cli("whoami", "--json", token=token_lines[0]).stdout)
        assert me["actor"] == "operator:alice"
        assert me["permissions"] == ["approve"]

    def test_add_json_holds_the_token_and_the_note(self, cli: Cli) -> None:
        """--json prints the API's answer, and the note still goes to stderr."""
        result = cli("operators", "add", "carol", "--role", "auditor", "--json")
        assert result.exit_code == 0, result.output
        answer = json.loads(result.stdout)
        assert answer["token"].startswith("gp_operator_")
        assert answer["operator"]["roles"] == ["auditor"]
        assert NOT_AGAIN in result.stderr

    def test_list_show_disable(self, cli: Cli) -> None:
        """An operator is listed, shown with their tokens, then disabled."""
        added = add_approver(cli)
        listed = cli("operators", "list")
        assert listed.exit_code == 0
        assert "alice" in listed.stdout
        shown = cli("operators", "show", "alice")
        assert shown.exit_code == 0
        assert str(added["token_id"]) in shown.stdout
        assert str(added["token"]) not in shown.stdout
        disabled = cli.json("operators", "disable", "alice")
        assert disabled["status"] == "disabled"
        refused = cli("whoami", token=str(added["token"]))
        assert refused.exit_code == 77
        assert cli.json("operators", "list", "--status", "active")["items"] == []

    def test_token_makes_another(self, cli: Cli) -> None:
        """``operators token`` makes a second token that works on its own."""
        add_approver(cli)
        result = cli("operators", "token", "alice", "--description", "laptop")
        assert result.exit_code == 0, result.output
        token = next(
            line for line in result.stdout.splitlines() if line.startswith("gp_")
        )
        assert NOT_AGAIN in result.stderr
        me = json.loads(cli("whoami", "--json", token=token).stdout)
        assert me["name"] == "alice"

    def test_errors_exit_with_their_codes(self, cli: Cli) -> None:
        """Bad input is 64, a taken name 65, an unknown name 66."""
        add_approver(cli)
        bad = cli("operators", "add", "bob", "--role", "root")
        assert bad.exit_code == 64
        assert "roles must be" in bad.stderr
        lonely = cli("operators", "add", "bob", "--role", "approver")
        assert lonely.exit_code == 64
        assert "approver needs" in lonely.stderr
        assert cli("operators", "add", "alice", "--role", "auditor").exit_code == 65
        assert cli("operators", "show", "nobody").exit_code == 66
        assert cli("operators", "disable", "nobody").exit_code == 66

    def test_approver_cannot_add_agents(self, cli: Cli, tmp_path: Path) -> None:
        """An approver's token is refused on admin commands with exit code 77."""
        token = str(add_approver(cli)["token"])
        key = tmp_path / "agent.pem"
        key.write_bytes(
            ec.generate_private_key(ec.SECP256R1())
            .public_key()
            .public_bytes(
                serialization.Encoding.PEM,
                serialization.PublicFormat.SubjectPublicKeyInfo,
            )
        )
        args = ("agents", "add", "x-bot", "--tenant", "acme", "--public-key", str(key))
        refused = cli(*args, token=token)
        assert refused.exit_code == 77
        assert "may not administer" in refused.stderr
        owned = cli.json(*args, "--owner", "alice")
        assert owned["owners"] == ["alice"]


class TestTokens:
    """Service tokens and whoami."""

    def test_create_list_revoke(self, cli: Cli) -> None:
        """A service token is printed once, listed by id, and revoked."""
        created = cli(
            "tokens", "create", "--role", "introspect", "--description", "tickets api"
        )
        assert created.exit_code == 0, created.output
        # The token alone on stdout: TOKEN=$(gatepass tokens create …) works.
        token = created.stdout.strip()
        assert token.startswith("gp_introspect_")
        assert "\n" not in token
        assert NOT_AGAIN in created.stderr
        assert "tickets api" in created.stderr
        listed = cli.json("tokens", "list")
        mine = [t for t in listed["items"] if t["description"] == "tickets api"]
        assert len(mine) == 1
        assert token not in json.dumps(listed)
        table = cli("tokens", "list")
        assert mine[0]["id"] in table.stdout
        revoked = cli.json("tokens", "revoke", mine[0]["id"])
        assert revoked["state"] == "revoked"
        assert cli("tokens", "revoke", mine[0]["id"]).exit_code == 65
        assert cli("tokens", "revoke", "tok_missing").exit_code == 66

    def test_last_admin_token_cannot_be_revoked(self, cli: Cli) -> None:
        """Revoking the only credential able to administer is a conflict."""
        listed = cli.json("tokens", "list")
        admin_id = next(t["id"] for t in listed["items"] if t["role"] == "admin")
        result = cli("tokens", "revoke", admin_id)
        assert result.exit_code == 65
        assert "last credential" in result.stderr

    def test_whoami_for_the_bootstrap_token(self, cli: Cli) -> None:
        """The bootstrap token administers and audits, and never approves."""
        result = cli("whoami")
        assert result.exit_code == 0, result.output
        assert "administer" in result.stdout
        me = cli.json("whoami")
        assert me["kind"] == "service"
        assert "approve" not in me["permissions"]
