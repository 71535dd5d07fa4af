"""``gatepass agents``."""

from __future__ import annotations

import json
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from gatepass.tokens import public_jwk_from_key


def _pem_file(tmp_path: Path) -> Path:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    path = tmp_path / "agent.pem"
    path.write_bytes(
        key.public_bytes(
            serialization.Encoding.PEM,
            serialization.PublicFormat.SubjectPublicKeyInfo,
        )
    )
    return path


def _jwk_file(tmp_path: Path) -> Path:
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    path = tmp_path / "agent.jwk"
    path.write_text(json.dumps(public_jwk_from_key(key)))
    return path


class TestAgentsAdd:
    """``gatepass agents add``."""

    def test_add_with_pem_key(self, cli, tmp_path):
        """A PEM public key registers an agent, shown as a table."""
        result = cli(
            "agents",
            "add",
            "billing-bot",
            "--tenant",
            "acme",
            "--public-key",
            str(_pem_file(tmp_path)),
            "--label",
            "team=billing",
        )
        assert result.exit_code == 0, result.output
        assert "billing-bot" in result.stdout
        assert "team=billing" in result.stdout
        assert "ES256" in result.stdout

    def test_add_with_jwk_key_as_json(self, cli, tmp_path):
        """A JWK file registers an agent; --json prints the API's agent."""
        agent = cli.json(
            "agents",
            "add",
            "ops-bot",
            "--tenant",
            "acme",
            "--public-key",
            str(_jwk_file(tmp_path)),
        )
        assert agent["name"] == "ops-bot"
        assert agent["algorithm"] == "EdDSA"
        assert agent["id"].startswith("agt_")
        assert agent["labels"] == {}

    def test_invalid_public_key_exits_64(self, cli, tmp_path):
        """A file that is no key is refused by the broker with exit code 64."""
        path = tmp_path / "junk.pem"
        path.write_text("not a key at all")
        result = cli(
            "agents", "add", "junk", "--tenant", "acme", "--public-key", str(path)
        )
        assert result.exit_code == 64
        assert result.stderr.startswith("gatepass: ")

    def test_malformed_jwk_json_exits_64(self, cli, tmp_path):
        """A JWK file that is not JSON is refused before anything is sent."""
        path = tmp_path / "broken.jwk"
        path.write_text('{"kty": ')
        result = cli(
            "agents", "add", "broken", "--tenant", "acme", "--public-key", str(path)
        )
        assert result.exit_code == 64
        assert "not valid JWK JSON" in result.stderr

    def test_label_without_equals_exits_64(self, cli, tmp_path):
        """A label that is not key=value is a usage error of the request."""
        result = cli(
            "agents",
            "add",
            "x",
            "--tenant",
            "acme",
            "--public-key",
            str(_pem_file(tmp_path)),
            "--label",
            "team",
        )
        assert result.exit_code == 64
        assert "not key=value" in result.stderr

    def test_duplicate_name_exits_65(self, cli, tmp_path):
        """Registering a taken name is a conflict."""
        result = cli(
            "agents",
            "add",
            "demo-agent",
            "--tenant",
            "acme",
            "--public-key",
            str(_pem_file(tmp_path)),
        )
        assert result.exit_code == 65


class TestAgentsList:
    """``gatepass agents list``."""

    def test_list_shows_the_demo_agent(self, cli):
        """The table lists the demo agent with its id and labels."""
        result = cli("agents", "list")
        assert result.exit_code == 0, result.output
        assert cli.broker.demo_agent_id in result.stdout
        assert "team=support" in result.stdout

    def test_list_json_is_the_api_answer(self, cli):
        """--json prints the API's items document."""
        answer = cli.json("agents", "list", "--tenant", "acme", "--status", "active")
        assert [agent["name"] for agent in answer["items"]] == ["demo-agent"]

    def test_list_filters_by_tenant(self, cli):
        """An unknown tenant lists nothing."""
        result = cli("agents", "list", "--tenant", "globex")
        assert result.exit_code == 0
        assert "no agents" in result.stdout

    def test_bad_status_exits_64(self, cli):
        """The broker refuses an unknown status filter."""
        result = cli("agents", "list", "--status", "sleeping")
        assert result.exit_code == 64
        assert "status must be one of" in result.stderr


class TestAgentsShowAndDisable:
    """``gatepass agents show`` and ``gatepass agents disable``."""

    def test_show(self, cli):
        """Show prints one agent's fields."""
        agent = cli.json("agents", "show", cli.broker.demo_agent_id)
        assert agent["name"] == "demo-agent"
        result = cli("agents", "show", cli.broker.demo_agent_id)
        assert result.exit_code == 0
        assert "EC P-256" in result.stdout

    def test_show_unknown_exits_66(self, cli):
        """An unknown id is not_found, exit code 66."""
        result = cli("agents", "show", "agt_missing")
        assert result.exit_code == 66
        assert result.stderr.startswith("gatepass: ")

    def test_disable(self, cli):
        """Disable marks the agent disabled."""
        agent = cli.json("agents", "disable", cli.broker.demo_agent_id)
        assert agent["status"] == "disabled"

    def test_disable_twice_exits_65(self, cli):
        """Disabling a disabled agent is a conflict."""
        cli("agents", "disable", cli.broker.demo_agent_id)
        result = cli("agents", "disable", cli.broker.demo_agent_id)
        assert result.exit_code == 65
        assert "already disabled" in result.stderr

    def test_disable_unknown_exits_66(self, cli):
        """Disabling an unknown agent is not_found."""
        assert cli("agents", "disable", "agt_missing").exit_code == 66
