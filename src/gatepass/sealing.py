"""
Encryption at rest for the broker's private keys: token signing keys, the audit key.

Private keys are sealed with Fernet (AES-128-CBC + HMAC-SHA256) under a master key
that lives outside the database: the ``GATEPASS_MASTER_KEY`` environment variable
(comma-separated for rotation, newest first) or a file of mode 0600. A stolen
database therefore yields only ciphertext (DESIGN ground rule 8).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from gatepass.errors import ConfigurationError

__all__ = ["MASTER_KEY_ENV", "Sealer", "load_sealer"]

MASTER_KEY_ENV = "GATEPASS_MASTER_KEY"


class Sealer:
    """
    Seal and unseal small secrets with the master key(s).

    Args:
        keys: url-safe base64 Fernet keys, newest first; the first seals, all unseal.
    """

    def __init__(self, keys: list[bytes]) -> None:
        """Build the MultiFernet."""
        if not keys:
            raise ConfigurationError("no master key configured")
        try:
            self._fernet = MultiFernet([Fernet(key) for key in keys])
        except ValueError as exc:
            raise ConfigurationError("master key is not a valid fernet key") from exc

    def seal(self, plaintext: bytes) -> bytes:
        """Return the ciphertext of ``plaintext`` under the newest master key."""
        return self._fernet.encrypt(plaintext)

    def unseal(self, ciphertext: bytes) -> bytes:
        """
        Return the plaintext of a sealed value.

        Raises:
            ConfigurationError: no configured master key opens it.
        """
        try:
            return self._fernet.decrypt(ciphertext)
        except InvalidToken as exc:
            raise ConfigurationError(
                "sealed key cannot be opened with the configured master key"
            ) from exc


def load_sealer(key_file: Path, *, create: bool = True) -> Sealer:
    """
    Load the master key from the environment, else from ``key_file``.

    On first start, when neither exists and ``create`` is true, a new key is written
    to ``key_file`` with mode 0600.

    Args:
        key_file: where the master key lives when the environment does not hold it.
        create: whether to generate the file when it is missing.

    Raises:
        ConfigurationError: the key is missing, malformed or readable by others.
    """
    env = os.environ.get(MASTER_KEY_ENV, "").strip()
    if env:
        parts = [part.strip() for part in env.split(",")]
        return Sealer([part.encode() for part in parts if part])
    if not key_file.exists():
        if not create:
            raise ConfigurationError(
                f"no master key: set {MASTER_KEY_ENV} or create {key_file}"
            )
        key_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(Fernet.generate_key())
    mode = key_file.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigurationError(
            f"master key file {key_file} is readable by others; chmod 600 it"
        )
    keys = [line.strip() for line in key_file.read_bytes().splitlines() if line.strip()]
    return Sealer(keys)
