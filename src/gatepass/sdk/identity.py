"""An agent's identity: its id, its broker and its registered private key."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from gatepass.errors import ConfigurationError, InvalidRequestError
from gatepass.ids import AgentId, is_id
from gatepass.tokens import create_assertion, load_private_key, private_jwk

__all__ = ["AgentIdentity", "AgentKey"]

# The key types the broker registers for agents (tokens.load_private_key).
AgentKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


def _read_key_file(identity: Path, reference: object) -> str | dict[str, Any]:
    """
    Read the key file an identity file names, relative to the identity file.

    Raises:
        ConfigurationError: the reference is not a path, or the file cannot be
            read; the message names the file, never its content.
    """
    if not isinstance(reference, str) or not reference:
        raise ConfigurationError(
            f"identity file {identity} has an invalid private_key_file"
        )
    path = identity.parent / reference
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        raise ConfigurationError(
            f"key file {path} named by {identity} is not readable"
        ) from None
    if text.lstrip().startswith("{"):
        try:
            document = json.loads(text)
        except ValueError:
            raise ConfigurationError(f"key file {path} is not valid JWK JSON") from None
        if isinstance(document, dict):
            return document
    return text


class AgentIdentity:
    """
    Who the agent is: the key it signs its assertions with (RFC 7523 §3).

    Args:
        agent_id: the id the broker gave the agent (``agt_…``).
        private_key: the registered P-256 or Ed25519 private key, as a key object,
            a PEM string or a private JWK.
        broker_url: the broker's issuer URL, if known.

    Raises:
        ConfigurationError: the id is malformed or the key is not supported.
    """

    __slots__ = ("_private_key", "agent_id", "algorithm", "broker_url", "public_jwk")

    def __init__(
        self,
        agent_id: str,
        private_key: AgentKey | str | Mapping[str, Any],
        broker_url: str | None = None,
    ) -> None:
        """Load and check the key."""
        if not is_id(agent_id, "agt"):
            raise ConfigurationError("agent id must look like agt_…")
        try:
            source = (
                private_key
                if isinstance(private_key, str | Mapping)
                else private_jwk(private_key)
            )
            key, public, algorithm = load_private_key(source)
        except InvalidRequestError as error:
            raise ConfigurationError(f"agent key: {error.detail}") from None
        self.agent_id = AgentId(agent_id)
        self.broker_url = broker_url
        self.algorithm = algorithm
        self.public_jwk = public
        self._private_key = key

    def __repr__(self) -> str:
        """Show the agent and broker, never the key."""
        return (
            f"AgentIdentity(agent_id={self.agent_id!r}, broker_url={self.broker_url!r})"
        )

    @classmethod
    def load(cls, path: str | Path) -> AgentIdentity:
        """
        Read an identity file, as the broker writes ``demo-agent.json``.

        The file is a JSON object with ``agent_id``, ``broker`` (optional) and one
        of ``private_jwk``, ``private_key_pem`` or ``private_key_file`` (a PEM or
        JWK file, relative to the identity file's directory), which is how
        ``gatepass agents add --private-key KEY --write-identity FILE`` refers
        to a key that stays where it is.

        Args:
            path: the file.

        Returns:
            The identity.

        Raises:
            ConfigurationError: the file is missing, not JSON, or incomplete; the
                message never contains key material.
        """
        location = Path(path)
        try:
            document = json.loads(location.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigurationError(
                f"identity file {location} does not exist"
            ) from None
        except (OSError, ValueError):
            raise ConfigurationError(
                f"identity file {location} is not readable json"
            ) from None
        if not isinstance(document, dict):
            raise ConfigurationError(f"identity file {location} is not a json object")
        agent_id = document.get("agent_id")
        broker = document.get("broker")
        key = document.get("private_jwk", document.get("private_key_pem"))
        if key is None and "private_key_file" in document:
            key = _read_key_file(location, document["private_key_file"])
        if not isinstance(agent_id, str):
            raise ConfigurationError(f"identity file {location} has no agent_id")
        if broker is not None and not isinstance(broker, str):
            raise ConfigurationError(f"identity file {location} has an invalid broker")
        if not isinstance(key, str | dict):
            raise ConfigurationError(
                f"identity file {location} has no private_jwk, private_key_pem "
                "or private_key_file"
            )
        return cls(agent_id, key, broker)

    def assertion(
        self,
        audience: str,
        *,
        now: dt.datetime,
        lifetime: dt.timedelta = dt.timedelta(seconds=60),
    ) -> str:
        """
        Sign a fresh, single-use assertion of this identity.

        Args:
            audience: the broker's issuer URL.
            now: the issue time.
            lifetime: how long the assertion is valid.

        Returns:
            The compact JWS, the ``subject_token`` that opens a task.
        """
        return create_assertion(
            self._private_key,
            algorithm=self.algorithm,
            agent_id=self.agent_id,
            audience=audience,
            now=now,
            lifetime=lifetime,
        )
