"""``gatepass leases``."""

from __future__ import annotations


class TestLeasesList:
    """``gatepass leases list``."""

    def test_list(self, cli):
        """The table shows an active lease with its target and actions."""
        _, lease_id = cli.broker.open_lease()
        result = cli("leases", "list")
        assert result.exit_code == 0, result.output
        assert lease_id in result.stdout
        assert "active" in result.stdout

    def test_list_filters_as_json(self, cli):
        """--state, --task and --limit reach the API; --json prints its answer."""
        task_id, lease_id = cli.broker.open_lease()
        answer = cli.json(
            "leases", "list", "--state", "active", "--task", task_id, "--limit", "1"
        )
        assert [lease["id"] for lease in answer["items"]] == [lease_id]
        assert cli.json("leases", "list", "--state", "revoked") == {"items": []}

    def test_empty_list(self, cli):
        """With no leases the command says so."""
        result = cli("leases", "list")
        assert result.exit_code == 0
        assert "no leases" in result.stdout


class TestLeasesShowAndRevoke:
    """``gatepass leases show`` and ``gatepass leases revoke``."""

    def test_show(self, cli):
        """Show prints one lease."""
        task_id, lease_id = cli.broker.open_lease()
        result = cli("leases", "show", lease_id)
        assert result.exit_code == 0, result.output
        assert task_id in result.stdout
        assert cli.json("leases", "show", lease_id)["target"]

    def test_show_unknown_exits_66(self, cli):
        """An unknown lease id is not_found."""
        result = cli("leases", "show", "lse_missing")
        assert result.exit_code == 66
        assert result.stderr == "gatepass: no such lease\n"

    def test_revoke(self, cli):
        """Revoke ends the lease at once."""
        _, lease_id = cli.broker.open_lease()
        result = cli("leases", "revoke", lease_id)
        assert result.exit_code == 0, result.output
        assert "revoked" in result.stdout
        assert cli.json("leases", "show", lease_id)["revoked_at"] is not None

    def test_revoke_json(self, cli):
        """--json prints the revoked lease."""
        _, lease_id = cli.broker.open_lease()
        assert cli.json("leases", "revoke", lease_id)["state"] == "revoked"

    def test_revoke_twice_exits_65(self, cli):
        """Revoking a revoked lease is a conflict, exit code 65."""
        _, lease_id = cli.broker.open_lease()
        cli("leases", "revoke", lease_id)
        result = cli("leases", "revoke", lease_id)
        assert result.exit_code == 65
        assert result.stderr == "gatepass: lease is already revoked\n"

    def test_revoke_unknown_exits_66(self, cli):
        """Revoking an unknown lease is not_found."""
        assert cli("leases", "revoke", "lse_missing").exit_code == 66

    def test_id_stays_one_path_segment(self, cli):
        """An id with a slash cannot reach another admin route."""
        result = cli("leases", "show", "../agents")
        assert result.exit_code == 66
