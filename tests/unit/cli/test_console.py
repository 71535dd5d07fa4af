"""``gatepass console login``: a one-time console link from the CLI (issue 13)."""

from __future__ import annotations

from .conftest import Cli


def add_operator(cli: Cli, name: str, *options: str) -> str:
    """Add an operator with --json; return their token."""
    answer = cli.json("operators", "add", name, *options)
    return str(answer["token"])


class TestConsoleLogin:
    """The link is printed once; who may have one is the broker's rule."""

    def test_issue13_admin_token_links_a_named_operator(self, cli: Cli) -> None:
        """The admin token makes a link for an auditor; it is printed as one URL."""
        add_operator(cli, "audrey", "--role", "auditor", "--tenant", "acme")
        result = cli("console", "login", "--operator", "audrey")
        assert result.exit_code == 0, result.output
        url = result.stdout.strip()
        assert url.startswith("http://127.0.0.1:8400/console/login/link?token=gpl_")
        assert "sign in as audrey" in result.stderr

    def test_issue13_operator_token_links_itself(self, cli: Cli) -> None:
        """An approver's own token makes the approver's link (--json)."""
        token = add_operator(
            cli,
            "alice",
            "--role",
            "approver",
            "--group",
            "prod-approvers",
            "--tenant",
            "acme",
        )
        result = cli("console", "login", "--json", token=token)
        assert result.exit_code == 0, result.output
        assert '"operator": "alice"' in result.stdout

    def test_issue13_admin_token_cannot_link_an_approver(self, cli: Cli) -> None:
        """The admin token is refused an approver's link (exit 77)."""
        add_operator(
            cli,
            "alice",
            "--role",
            "approver",
            "--group",
            "prod-approvers",
            "--tenant",
            "acme",
        )
        result = cli("console", "login", "--operator", "alice")
        assert result.exit_code == 77
        assert "own token" in result.stderr

    def test_issue13_admin_token_must_name_someone(self, cli: Cli) -> None:
        """Without a bootstrap operator configured, --operator is needed (exit 64)."""
        result = cli("console", "login")
        assert result.exit_code == 64
        assert "--operator" in result.stderr
