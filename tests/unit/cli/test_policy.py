"""``gatepass policy``."""

from __future__ import annotations

from .conftest import QUICKSTART_POLICIES

FAILING_CASE = """
[agents.demo]
tenant = "acme"
labels = { team = "support" }

[targets.tickets-prod]
environment = "prod"
tenant = "acme"
risk = "high"

[tasks.triage]
purpose = "support-triage"
environment = "dev"
tenant = "acme"

[[case]]
name = "admin on prod is allowed"
agent = "demo"
target = "tickets-prod"
task = "triage"
action = "admin"
at = 2026-01-06T10:00:00Z
expect = "allow"
"""


class TestPolicyValidate:
    """``gatepass policy validate``: local, with no broker and no token."""

    def test_valid_directory(self, local_cli):
        """A valid directory prints its policy count and digest and exits 0."""
        result = local_cli("policy", "validate", str(QUICKSTART_POLICIES))
        assert result.exit_code == 0, result.output
        assert "15 policies valid" in result.stdout
        assert "digest sha256:" in result.stdout

    def test_broken_directory_exits_78(self, local_cli, broken_policies):
        """A syntax error is reported with its file and exits 78."""
        result = local_cli("policy", "validate", str(broken_policies))
        assert result.exit_code == 78
        assert result.stderr.startswith("gatepass: ")
        assert "support.cedar" in result.stderr

    def test_missing_directory_exits_78(self, local_cli, tmp_path):
        """A directory that does not exist is a configuration error."""
        result = local_cli("policy", "validate", str(tmp_path / "nowhere"))
        assert result.exit_code == 78
        assert "not found" in result.stderr


class TestPolicyTest:
    """``gatepass policy test``: local, with no broker and no token."""

    def test_quickstart_cases_pass(self, local_cli):
        """The quickstart's own cases (DIR/tests by default) all pass."""
        result = local_cli("policy", "test", str(QUICKSTART_POLICIES))
        assert result.exit_code == 0, result.output
        assert "PASS quickstart.toml:" in result.stdout
        assert " 0 failed" in result.stdout

    def test_failing_case_exits_1(self, local_cli, tmp_path):
        """A failing case prints FAIL with the reason and exits 1."""
        cases = tmp_path / "cases.toml"
        cases.write_text(FAILING_CASE, encoding="utf-8")
        result = local_cli(
            "policy", "test", str(QUICKSTART_POLICIES), "--cases", str(cases)
        )
        assert result.exit_code == 1
        assert "FAIL cases.toml: admin on prod is allowed" in result.stdout
        assert "expected allow, got deny" in result.stdout
        assert "0 passed, 1 failed" in result.stdout

    def test_malformed_case_file_exits_64(self, local_cli, tmp_path):
        """A case file with an unknown key is an invalid request."""
        cases = tmp_path / "cases.toml"
        cases.write_text('[[case]]\nname = "x"\nexpectt = "allow"\n')
        result = local_cli(
            "policy", "test", str(QUICKSTART_POLICIES), "--cases", str(cases)
        )
        assert result.exit_code == 64
        assert "unknown keys" in result.stderr

    def test_broken_policies_exit_78(self, local_cli, broken_policies):
        """Cases are not run against a directory that does not load."""
        assert local_cli("policy", "test", str(broken_policies)).exit_code == 78


class TestPolicyServer:
    """``gatepass policy status`` and ``gatepass policy reload``."""

    def test_status(self, cli):
        """Status shows the live set's count and digest."""
        result = cli("policy", "status")
        assert result.exit_code == 0, result.output
        assert "policy_count" in result.stdout
        status = cli.json("policy", "status")
        assert status["policy_count"] == 15
        assert status["last_error"] is None

    def test_reload(self, cli):
        """Reload answers with the status of the reloaded set."""
        answer = cli.json("policy", "reload")
        assert answer["digest"].startswith("sha256:")

    def test_reload_refuses_a_broken_set(self, cli):
        """A broken directory is refused (exit 64) and the old set stays live."""
        (cli.broker.policy_dir / "support.cedar").write_text("permit (")
        result = cli("policy", "reload")
        assert result.exit_code == 64
        assert "policy set refused" in result.stderr
        assert cli.json("policy", "status")["policy_count"] == 15

    def test_bad_token_exits_77(self, cli):
        """Status needs the admin token."""
        assert cli("policy", "status", token="gp_admin_nope").exit_code == 77
