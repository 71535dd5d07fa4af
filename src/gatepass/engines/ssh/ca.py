"""
The SSH engine's certificate authority, and the agent keys it agrees to certify.

The CA key of target ``<name>`` lives in the state directory as
``ssh-ca-<name>.sealed`` (PKCS#8 PEM sealed with the broker's master key, mode
0600), with its public half in ``ssh-ca-<name>.pub`` for ``ssh-keygen -s`` and
operators. It is generated on first use, never replaced silently (a key of another
type than ``ca_algorithm`` is refused), and held in memory until ``forget``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime as dt
import os
import re
import secrets
from pathlib import Path
from typing import Final

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization.ssh import load_ssh_public_identity

from gatepass.engines.settings import engine_path
from gatepass.engines.ssh.settings import CAAlgorithm
from gatepass.errors import ConfigurationError, InvalidRequestError
from gatepass.sealing import Sealer

__all__ = [
    "CLOCK_SKEW",
    "MAX_PUBLIC_KEY_CHARS",
    "MAX_RSA_BITS",
    "MIN_RSA_BITS",
    "AgentKey",
    "CAKey",
    "CertificateAuthority",
    "durable_copy",
    "parse_public_key",
    "write_atomically",
]

CAKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
AgentKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey | rsa.RSAPublicKey

# Hosts and the broker disagree about time by a few seconds; PROTOCOL.certkeys
# validity is checked by the host, so certificates start a little in the past.
CLOCK_SKEW: Final = dt.timedelta(seconds=30)
# An RSA-16384 public key line is about 2.8 kB; anything longer is not a key.
MAX_PUBLIC_KEY_CHARS: Final = 4096
MIN_RSA_BITS: Final = 3072
MAX_RSA_BITS: Final = 16384
_KEY_LINE: Final = re.compile(
    r"\A(ssh-ed25519|ecdsa-sha2-nistp256|ssh-rsa) ([A-Za-z0-9+/]+={0,2})"
    r"(?: [\x20-\x7e]{0,255})?\Z"
)


class CertificateAuthority:
    """
    The per-target CA key: generated once, sealed at rest, pinned to its type.

    Args:
        target: the target name (file names, the public key's comment).
        algorithm: the key type to generate, and to insist on when loading.
        state_dir: where the key files live.
        sealer: seals the private key with the broker's master key.
    """

    def __init__(
        self, *, target: str, algorithm: CAAlgorithm, state_dir: Path, sealer: Sealer
    ) -> None:
        """Touch no file until the key is first needed."""
        self.target = target
        self.state_dir = state_dir
        self._algorithm = algorithm
        self._sealer = sealer
        self._key: CAKey | None = None
        self.sealed_path = state_dir / f"ssh-ca-{target}.sealed"
        self.public_path = state_dir / f"ssh-ca-{target}.pub"

    def key(self) -> CAKey:
        """
        Return the CA key, loading or generating it on first use.

        Raises:
            ConfigurationError: the sealed key cannot be opened, or is of
                another type than configured.
        """
        if self._key is None:
            self._key = self._load_or_create()
            self._write_public_file(self._key)
        return self._key

    def public_line(self) -> str:
        """The CA public key as an OpenSSH line, for hosts' ``TrustedUserCAKeys``."""
        public = (
            self.key()
            .public_key()
            .public_bytes(
                serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
            )
        )
        return f"{public.decode()} gatepass-ca-{self.target}"

    def forget(self) -> None:
        """Drop the key held in memory; the next use reloads it."""
        self._key = None

    def _load_or_create(self) -> CAKey:
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not self.sealed_path.exists():
            self._create()
        pem = self._sealer.unseal(self.sealed_path.read_bytes())
        path = engine_path(self.target)
        try:
            loaded = serialization.load_pem_private_key(pem, password=None)
        except ValueError:
            raise ConfigurationError(
                f"targets.{self.target}: the sealed ssh ca key is corrupt"
            ) from None
        matching = _matching_ca(loaded, self._algorithm)
        if matching is None:
            raise ConfigurationError(
                f"{path}.ca_algorithm: the existing ca key is of another type; "
                "rotate it by hand"
            )
        return matching

    def _create(self) -> None:
        key = _generate_ca(self._algorithm)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        temporary = durable_copy(self.sealed_path, self._sealer.seal(pem), 0o600)
        try:
            # link() never replaces: if another process won the race, its key
            # stays and this one is discarded.
            with contextlib.suppress(FileExistsError):
                os.link(temporary, self.sealed_path)
        finally:
            temporary.unlink(missing_ok=True)

    def _write_public_file(self, key: CAKey) -> None:
        line = key.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
        content = line + f" gatepass-ca-{self.target}\n".encode()
        if self.public_path.exists() and self.public_path.read_bytes() == content:
            return
        write_atomically(self.public_path, content, 0o644)


def _generate_ca(algorithm: CAAlgorithm) -> CAKey:
    if algorithm == "ecdsa-p256":
        return ec.generate_private_key(ec.SECP256R1())
    return ed25519.Ed25519PrivateKey.generate()


def _matching_ca(key: object, algorithm: CAAlgorithm) -> CAKey | None:
    if algorithm == "ecdsa-p256":
        if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(
            key.curve, ec.SECP256R1
        ):
            return key
        return None
    return key if isinstance(key, ed25519.Ed25519PrivateKey) else None


def parse_public_key(text: object) -> AgentKey:
    """
    Parse the agent's OpenSSH public key strictly; never echo it in an error.

    Raises:
        InvalidRequestError: missing, malformed, a certificate, or a weak type.
    """
    if text is None:
        raise InvalidRequestError("public_key is required for an ssh target")
    if not isinstance(text, str) or len(text) > MAX_PUBLIC_KEY_CHARS:
        raise InvalidRequestError("public_key is not an openssh public key")
    match = _KEY_LINE.match(text.removesuffix("\n"))
    if match is None:
        raise InvalidRequestError(
            "public_key must be one ssh-ed25519, ecdsa-sha2-nistp256 or ssh-rsa line"
        )
    key_type, body = match.group(1), match.group(2)
    try:
        base64.b64decode(body, validate=True)
        key = load_ssh_public_identity(f"{key_type} {body}".encode())
    except (ValueError, binascii.Error, UnsupportedAlgorithm):
        raise InvalidRequestError("public_key is not an openssh public key") from None
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(
        key.curve, ec.SECP256R1
    ):
        return key
    if isinstance(key, rsa.RSAPublicKey):
        if not MIN_RSA_BITS <= key.key_size <= MAX_RSA_BITS:
            raise InvalidRequestError(
                f"public_key: rsa keys need {MIN_RSA_BITS} to {MAX_RSA_BITS} bits"
            )
        return key
    raise InvalidRequestError("public_key is not an openssh public key")


def durable_copy(path: Path, content: bytes, mode: int) -> Path:
    """
    Write ``content`` to a new hidden file beside ``path``, synced to disk.

    Returns:
        The new file; the caller renames or links it into place, then unlinks it.
    """
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return temporary


def write_atomically(path: Path, content: bytes, mode: int) -> None:
    """Replace ``path`` with ``content`` (mode ``mode``) in one rename."""
    temporary = durable_copy(path, content, mode)
    try:
        temporary.replace(path)
    finally:
        temporary.unlink(missing_ok=True)
