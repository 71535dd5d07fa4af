"""``gatepass targets`` and ``gatepass keys``."""

from __future__ import annotations


class TestTargets:
    """``gatepass targets list``."""

    def test_list(self, cli):
        """The table shows each configured target."""
        result = cli("targets", "list")
        assert result.exit_code == 0, result.output
        assert "https://tickets.example.internal/" in result.stdout
        assert "read, write, admin" in result.stdout

    def test_list_json(self, cli):
        """--json prints the API's target list."""
        answer = cli.json("targets", "list")
        assert [target["name"] for target in answer["items"]] == [
            "tickets",
            "tickets-prod",
        ]

    def test_bad_token_exits_77(self, cli):
        """A wrong admin token is refused."""
        assert cli("targets", "list", token="gp_admin_nope").exit_code == 77


class TestKeys:
    """``gatepass keys list`` and ``gatepass keys rotate``."""

    def test_list(self, cli):
        """The table shows the current and the next key."""
        result = cli("keys", "list")
        assert result.exit_code == 0, result.output
        assert "current" in result.stdout
        assert "next" in result.stdout

    def test_rotate_promotes_next(self, cli):
        """After a rotation the old next key is current."""
        before = cli.json("keys", "list")["items"]
        upcoming = next(key["kid"] for key in before if key["state"] == "next")
        after = cli.json("keys", "rotate")["items"]
        current = [key["kid"] for key in after if key["state"] == "current"]
        assert current == [upcoming]

    def test_rotate_table(self, cli):
        """Rotate without --json prints the new key table."""
        result = cli("keys", "rotate")
        assert result.exit_code == 0, result.output
        assert "signing keys after rotation" in result.stdout

    def test_bad_token_exits_77(self, cli):
        """A wrong admin token cannot rotate keys."""
        assert cli("keys", "rotate", token="gp_admin_nope").exit_code == 77
