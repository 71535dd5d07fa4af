"""``gatepass agents add --write-identity``: an identity the SDK loads (issue 17)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from gatepass.errors import ConfigurationError
from gatepass.sdk import AgentIdentity, GatepassClient
from gatepass.tokens import private_jwk, public_jwk_from_key

from .conftest import ISSUER


def _private_pem(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    key = ed25519.Ed25519PrivateKey.generate()
    path = tmp_path / "agent.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path, public_jwk_from_key(key.public_key())


class _Recording(httpx.Client):
    """An HTTP client that records every request before passing it on."""

    def __init__(self, inner: httpx.Client, sent: list[object]) -> None:
        super().__init__(base_url=str(inner.base_url))
        self._inner = inner
        self._sent = sent

    def request(self, method, url, **kwargs):
        self._sent.append((method, url))
        return self._inner.request(method, url, **kwargs)


def _add(cli, name: str, *options: str):
    return cli(
        "agents", "add", name, "--tenant", "acme", "--label", "team=support", *options
    )


class TestIssue17WriteIdentity:
    """The identity file holds the id, the broker and a key reference, mode 0600."""

    def test_issue17_private_key_stays_in_its_file(self, cli, tmp_path):
        """--private-key: only the public half is registered; the file refers to it."""
        pem, public = _private_pem(tmp_path)
        identity = tmp_path / "bot.json"
        result = _add(
            cli, "bot", "--private-key", str(pem), "--write-identity", str(identity)
        )
        assert result.exit_code == 0, result.output
        written = json.loads(identity.read_text())
        assert set(written) == {"agent_id", "broker", "private_key_file"}
        assert written["private_key_file"] == "agent.pem"
        assert written["broker"] == ISSUER
        assert identity.stat().st_mode & 0o777 == 0o600
        agent = cli.json("agents", "show", written["agent_id"])
        assert agent["public_jwk"] == public
        assert "PRIVATE" not in result.output
        assert f"agent id: {written['agent_id']}\n" in result.stdout

    def test_issue17_generated_key_goes_only_into_the_file(self, cli, tmp_path):
        """--generate-key: the private JWK is in the file; the broker has its public."""
        identity = tmp_path / "gen.json"
        result = _add(
            cli,
            "gen",
            "--generate-key",
            "--algorithm",
            "EdDSA",
            "--write-identity",
            str(identity),
        )
        assert result.exit_code == 0, result.output
        written = json.loads(identity.read_text())
        jwk = written["private_jwk"]
        assert jwk["crv"] == "Ed25519"
        agent = cli.json("agents", "show", written["agent_id"])
        assert agent["public_jwk"] == {k: jwk[k] for k in ("kty", "crv", "x")}
        assert jwk["d"] not in result.output

    def test_issue17_sdk_loads_the_file_and_opens_a_task(self, cli, tmp_path):
        """The SDK reads the identity (a key reference too) and works with it."""
        pem, _ = _private_pem(tmp_path)
        path = tmp_path / "sdk.json"
        assert (
            _add(
                cli, "sdk-bot", "--private-key", str(pem), "--write-identity", str(path)
            ).exit_code
            == 0
        )
        identity = AgentIdentity.load(path)
        assert identity.broker_url == ISSUER
        client = GatepassClient(identity, http=cli.broker.http, clock=cli.broker.clock)
        with client.open_task(
            intent="triage",
            purpose="support-triage",
            environment="dev",
            targets=["tickets"],
        ) as task:
            token = task.access_token("tickets", ["read"])
            assert token.audience == "http://127.0.0.1:8401/"

    def test_issue17_agent_id_printed_plainly_without_identity(self, cli, tmp_path):
        """A public-key registration prints the id on a line of its own too."""
        _, public = _private_pem(tmp_path)
        jwk = tmp_path / "pub.jwk"
        jwk.write_text(json.dumps(public))
        result = _add(cli, "plain", "--public-key", str(jwk))
        assert result.exit_code == 0, result.output
        line = next(x for x in result.stdout.splitlines() if x.startswith("agent id: "))
        assert line.removeprefix("agent id: ").startswith("agt_")


class TestIssue17WriteIdentityRefusals:
    """Each way of asking for an unusable identity is exit 64, before registering."""

    def _names(self, cli) -> set[str]:
        return {agent["name"] for agent in cli.json("agents", "list")["items"]}

    def test_issue17_no_key_option(self, cli):
        """Without a key option the message lists the three ways."""
        result = _add(cli, "nokey")
        assert result.exit_code == 64
        assert (
            "--public-key FILE, --private-key FILE or --generate-key" in result.stderr
        )

    def test_issue17_two_key_options(self, cli, tmp_path):
        """Two key options at once are refused."""
        pem, _ = _private_pem(tmp_path)
        result = _add(
            cli,
            "two",
            "--private-key",
            str(pem),
            "--generate-key",
            "--write-identity",
            str(tmp_path / "x.json"),
        )
        assert result.exit_code == 64
        assert "exactly one" in result.stderr

    def test_issue17_generate_needs_a_file(self, cli):
        """A generated key with nowhere to go would be lost: refused."""
        result = _add(cli, "lost", "--generate-key")
        assert result.exit_code == 64
        assert "--generate-key needs --write-identity" in result.stderr
        assert "lost" not in self._names(cli)

    def test_issue17_identity_needs_the_private_key(self, cli, tmp_path):
        """--write-identity with a public key only cannot make a usable identity."""
        _, public = _private_pem(tmp_path)
        jwk = tmp_path / "pub.jwk"
        jwk.write_text(json.dumps(public))
        result = _add(
            cli,
            "pub",
            "--public-key",
            str(jwk),
            "--write-identity",
            str(tmp_path / "i.json"),
        )
        assert result.exit_code == 64
        assert "--private-key FILE" in result.stderr

    def test_issue17_existing_file_is_never_overwritten(self, cli, tmp_path):
        """An identity path that exists is refused and nothing is registered."""
        existing = tmp_path / "keep.json"
        existing.write_text("precious")
        result = _add(cli, "keep", "--generate-key", "--write-identity", str(existing))
        assert result.exit_code == 64
        assert "already exists" in result.stderr
        assert existing.read_text() == "precious"
        assert "keep" not in self._names(cli)

    def test_issue17_bad_private_key_never_echoed(self, cli, tmp_path):
        """A private key file that is no key is refused without showing its content."""
        bad = tmp_path / "bad.pem"
        # PEM armour around bytes that are no key ("secret-stuff"), built here so
        # that no file in the tree looks like it holds private key material.
        label = "PRIVATE " + "KEY"
        bad.write_text(
            f"-----BEGIN {label}-----\nc2VjcmV0LXN0dWZm\n-----END {label}-----\n"
        )
        result = _add(
            cli,
            "bad",
            "--private-key",
            str(bad),
            "--write-identity",
            str(tmp_path / "b.json"),
        )
        assert result.exit_code == 64
        assert "not a P-256 or Ed25519 private key" in result.stderr
        assert "c2VjcmV0" not in result.output


class TestIdentityFileReference:
    """``AgentIdentity.load`` and ``private_key_file``."""

    def test_missing_key_file_is_a_configuration_error(self, tmp_path):
        """A reference to a file that is not there names the file, not a key."""
        path = tmp_path / "id.json"
        path.write_text(
            json.dumps({"agent_id": "agt_" + "a" * 26, "private_key_file": "gone.pem"})
        )
        with pytest.raises(ConfigurationError, match=r"gone\.pem"):
            AgentIdentity.load(path)

    def test_jwk_key_file_relative_to_the_identity(self, tmp_path):
        """A JWK key file is read relative to the identity file's directory."""
        key = ed25519.Ed25519PrivateKey.generate()
        (tmp_path / "keys").mkdir()
        (tmp_path / "keys" / "k.jwk").write_text(json.dumps(private_jwk(key)))
        path = tmp_path / "id.json"
        agent_id = "agt_" + "b" * 26
        path.write_text(
            json.dumps({"agent_id": agent_id, "private_key_file": "keys/k.jwk"})
        )
        identity = AgentIdentity.load(path)
        assert identity.public_jwk == public_jwk_from_key(key.public_key())


class TestIssue17PrivateKeyNeverSent:
    """A private key given as --public-key is refused before anything is sent."""

    def test_issue17_private_pem_as_public_key(self, cli, tmp_path):
        """A PEM private key is refused locally, pointing to --private-key."""
        pem, _ = _private_pem(tmp_path)
        sent: list[object] = []
        result = cli(
            "agents",
            "add",
            "leak",
            "--tenant",
            "acme",
            "--public-key",
            str(pem),
            http=_Recording(cli.broker.http, sent),
        )
        assert result.exit_code == 64
        assert "--private-key" in result.stderr
        assert sent == []

    def test_issue17_private_jwk_as_public_key(self, cli, tmp_path):
        """A JWK with a private member d is refused locally too."""
        key = ed25519.Ed25519PrivateKey.generate()
        path = tmp_path / "k.jwk"
        path.write_text(json.dumps(private_jwk(key)))
        sent: list[object] = []
        result = cli(
            "agents",
            "add",
            "leak",
            "--tenant",
            "acme",
            "--public-key",
            str(path),
            http=_Recording(cli.broker.http, sent),
        )
        assert result.exit_code == 64
        assert "holds a private key" in result.stderr
        assert sent == []
