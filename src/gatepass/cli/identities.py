"""
Agent keys and identity files, made on the operator's machine.

``gatepass agents add --write-identity FILE`` writes the file
:meth:`gatepass.sdk.AgentIdentity.load` reads: the agent's id, its broker and its
key. The key is either generated here (``--generate-key``: the private JWK goes
into the identity file, and nowhere else) or an existing private key file
(``--private-key``: the identity file refers to it by a path relative to itself).
Only the public half is ever sent to the broker.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from gatepass.errors import InvalidRequestError
from gatepass.tokens import load_private_key, private_jwk

__all__ = [
    "AgentKey",
    "check_writable",
    "generate_agent_key",
    "read_agent_key",
    "write_identity",
]


@dataclass(frozen=True, slots=True)
class AgentKey:
    """
    An agent's key as the identity file will hold it.

    Attributes:
        public_jwk: the public half, the only part sent to the broker.
        reference: what the identity file stores: ``{"private_jwk": …}`` for a
            generated key, ``{"private_key_file": …}`` for a key file.
    """

    public_jwk: dict[str, Any]
    reference: dict[str, Any]


def generate_agent_key(algorithm: Literal["ES256", "EdDSA"]) -> AgentKey:
    """
    Generate a P-256 (``ES256``) or Ed25519 (``EdDSA``) key pair here.

    Returns:
        The key, its private JWK to be written only into the identity file.
    """
    key = (
        ec.generate_private_key(ec.SECP256R1())
        if algorithm == "ES256"
        else ed25519.Ed25519PrivateKey.generate()
    )
    jwk = private_jwk(key)
    _, public, _ = load_private_key(jwk)
    return AgentKey(public_jwk=public, reference={"private_jwk": jwk})


def read_agent_key(path: Path, identity: Path | None) -> AgentKey:
    """
    Read an existing private key file (PEM or JWK) and derive its public half.

    Args:
        path: the private key file.
        identity: the identity file that will refer to it, if any.

    Raises:
        InvalidRequestError: the file is unreadable or holds no supported
            private key (the message never shows its content).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidRequestError(f"{path}: cannot read the private key") from exc
    try:
        source: str | dict[str, Any] = (
            json.loads(text) if text.lstrip().startswith("{") else text
        )
        _, public, _ = load_private_key(source)
    except (ValueError, InvalidRequestError):
        raise InvalidRequestError(
            f"{path}: not a P-256 or Ed25519 private key (PEM or JWK)"
        ) from None
    where = path.resolve()
    if identity is not None:
        # Relative to the identity file, so the two can move together.
        where = Path(os.path.relpath(where, identity.resolve().parent))
    return AgentKey(public_jwk=public, reference={"private_key_file": str(where)})


def check_writable(path: Path) -> None:
    """
    Refuse an identity file path before anything is registered.

    Raises:
        InvalidRequestError: the file exists (it may hold a key) or its directory
            does not.
    """
    if path.exists():
        raise InvalidRequestError(f"{path} already exists: remove it or choose another")
    if not path.parent.is_dir():
        raise InvalidRequestError(f"{path.parent} is not a directory")


def write_identity(path: Path, *, agent_id: str, broker: str, key: AgentKey) -> None:
    """
    Write the identity file, readable by its owner only (mode 0600).

    Raises:
        InvalidRequestError: the file appeared meanwhile or cannot be written.
    """
    document = {"agent_id": agent_id, "broker": broker, **key.reference}
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise InvalidRequestError(
            f"cannot write {path} ({exc.strerror}); agent {agent_id} is registered: "
            "disable it or write its identity by hand"
        ) from None
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(document, indent=2) + "\n")
