"""SSH certificates through the broker: issue over HTTP, revoke into the KRL."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from gatepass.sdk import AgentIdentity, GatepassClient

from .conftest import LiveBroker

pytestmark = pytest.mark.slow


def openssh_public_key() -> str:
    """Return a fresh Ed25519 public key in OpenSSH format (the agent's own key)."""
    key = ed25519.Ed25519PrivateKey.generate()
    return (
        key.public_key()
        .public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
        .decode()
    )


def is_revoked(krl: bytes, certificate: str, tmp_path: Path) -> bool:
    """Ask ssh-keygen whether the KRL revokes the certificate."""
    (tmp_path / "krl").write_bytes(krl)
    (tmp_path / "cert.pub").write_text(certificate + "\n")
    ssh_keygen = shutil.which("ssh-keygen")
    assert ssh_keygen is not None
    result = subprocess.run(  # noqa: S603 - fixed arguments
        [ssh_keygen, "-Q", "-f", str(tmp_path / "krl"), str(tmp_path / "cert.pub")],
        capture_output=True,
        text=True,
        check=False,
    )
    return "REVOKED" in result.stdout


class TestSSHThroughTheBroker:
    """A certificate for the agent's key, revoked into the KRL at close."""

    def test_certificate_then_krl(
        self, live_broker: LiveBroker, tmp_path: Path
    ) -> None:
        """The certificate names the lease; closing the task revokes it in the KRL."""
        krl_url = f"{live_broker.url}/v1/ssh/bastion/krl"
        client = GatepassClient(
            AgentIdentity.load(live_broker.state_dir / "demo-agent.json")
        )
        with (
            client,
            client.open_task(
                intent="rotate logs on the bastion",
                purpose="maintenance",
                environment="dev",
                targets=["bastion"],
            ) as task,
        ):
            credential = task.ssh_certificate(
                "bastion", "read", public_key=openssh_public_key()
            )
            assert credential.password is None
            assert credential.fields["key_id"] == credential.lease_id
            assert credential.fields["principals"] == ["readonly"]
            certificate = credential.certificate
            assert certificate is not None
            assert certificate.startswith("ssh-ed25519-cert-v01@openssh.com ")
            from gatepass.errors import ConflictError  # noqa: PLC0415

            with pytest.raises(ConflictError, match="request a new one"):
                task.renew(credential)
            before = httpx.get(krl_url)
            assert before.status_code == 200
            assert not is_revoked(before.content, certificate, tmp_path)
        after = httpx.get(krl_url)
        assert is_revoked(after.content, certificate, tmp_path)

    def test_krl_of_a_non_ssh_target(self, live_broker: LiveBroker) -> None:
        """Only SSH targets have a KRL."""
        response = httpx.get(f"{live_broker.url}/v1/ssh/tickets/krl")
        assert response.status_code == 404


class TestCredentialEndpoint:
    """POST /v1/credentials refuses what it must, with the right code."""

    def test_refusals(self, live_broker: LiveBroker) -> None:
        """No token, JSON errors and http targets are refused precisely."""
        url = f"{live_broker.url}/v1/credentials"
        missing = httpx.post(url, json={"target": "bastion", "scope": "read"})
        assert missing.status_code == 401
        assert missing.json()["error"] == "invalid_token"
        not_json = httpx.post(
            url, content=b"{", headers={"Content-Type": "application/json"}
        )
        assert not_json.status_code == 400
        client = GatepassClient(
            AgentIdentity.load(live_broker.state_dir / "demo-agent.json")
        )
        from gatepass.errors import InvalidRequestError, InvalidTargetError  # noqa: PLC0415

        with (
            client,
            client.open_task(
                intent="x",
                purpose="maintenance",
                environment="dev",
                targets=["tickets", "bastion"],
            ) as task,
        ):
            with pytest.raises(InvalidTargetError):
                task.credential("tickets", "read")
            with pytest.raises(InvalidRequestError):
                task.ssh_certificate("bastion", "read", public_key="ssh-dss AAAA nope")
