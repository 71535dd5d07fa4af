"""Tests for AgentIdentity."""

from __future__ import annotations

import json
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from gatepass.clock import FrozenClock
from gatepass.errors import ConfigurationError
from gatepass.sdk import AgentIdentity
from gatepass.tokens import DPoPKey, private_jwk

from .conftest import AGENT_ID, BROKER


def write(path: Path, document: object) -> Path:
    """Write a JSON identity file."""
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


class TestAgentIdentity:
    """Loading and using an identity."""

    def test_load_private_jwk_file(self, tmp_path: Path) -> None:
        """The broker's demo-agent.json shape loads."""
        key = DPoPKey.generate("EdDSA")
        path = write(
            tmp_path / "agent.json",
            {
                "agent_id": AGENT_ID,
                "broker": BROKER,
                "private_jwk": private_jwk(key.private_key),
            },
        )
        identity = AgentIdentity.load(path)
        assert identity.agent_id == AGENT_ID
        assert identity.broker_url == BROKER
        assert identity.algorithm == "EdDSA"

    def test_load_pem_file(self, tmp_path: Path) -> None:
        """A private_key_pem member loads too."""
        key = DPoPKey.generate()
        pem = key.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        path = write(
            tmp_path / "a.json", {"agent_id": AGENT_ID, "private_key_pem": pem}
        )
        identity = AgentIdentity.load(path)
        assert identity.broker_url is None
        assert identity.public_jwk == key.public_jwk

    def test_key_object_is_accepted(self) -> None:
        """A cryptography key object is accepted directly."""
        key = ec.generate_private_key(ec.SECP256R1())
        identity = AgentIdentity(AGENT_ID, key, BROKER)
        assert identity.algorithm == "ES256"

    def test_repr_never_shows_the_key(self) -> None:
        """The repr shows the agent and broker only."""
        jwk = private_jwk(DPoPKey.generate().private_key)
        identity = AgentIdentity(AGENT_ID, jwk, BROKER)
        assert jwk["d"] not in repr(identity)
        assert AGENT_ID in repr(identity)

    def test_assertion_is_signed_for_the_broker(self) -> None:
        """The assertion names the agent as iss and sub and the broker as aud."""
        identity = AgentIdentity(AGENT_ID, ed25519.Ed25519PrivateKey.generate(), BROKER)
        token = identity.assertion(BROKER, now=FrozenClock().now())
        claims = jwt.decode(token, options={"verify_signature": False})
        assert claims["iss"] == claims["sub"] == AGENT_ID
        assert claims["aud"] == BROKER

    @pytest.mark.parametrize(
        "document",
        [
            [],
            {"broker": BROKER},
            {"agent_id": AGENT_ID},
            {"agent_id": AGENT_ID, "broker": 5, "private_jwk": {}},
            {"agent_id": AGENT_ID, "private_jwk": {"kty": "EC"}},
            {"agent_id": "bob", "private_key_pem": "x"},
        ],
    )
    def test_bad_files_are_configuration_errors(
        self, tmp_path: Path, document: object
    ) -> None:
        """An incomplete or invalid file raises ConfigurationError."""
        with pytest.raises(ConfigurationError):
            AgentIdentity.load(write(tmp_path / "bad.json", document))

    def test_missing_file(self, tmp_path: Path) -> None:
        """A missing file raises ConfigurationError naming it."""
        with pytest.raises(ConfigurationError, match="does not exist"):
            AgentIdentity.load(tmp_path / "nope.json")

    def test_not_json(self, tmp_path: Path) -> None:
        """A file that is not JSON raises ConfigurationError."""
        path = tmp_path / "x.json"
        path.write_text("{", encoding="utf-8")
        with pytest.raises(ConfigurationError, match="json"):
            AgentIdentity.load(path)
