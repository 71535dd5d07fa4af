"""
What an engine receives when the broker builds it from a target's configuration.

The installation id names one broker *deployment* (every replica sharing one
database): engines mark what they create in a target with a short marker derived
from it, so that the reaper of one deployment never removes what another deployment
created in the same PostgreSQL cluster or Redis server.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from gatepass.clock import Clock
from gatepass.errors import ConfigurationError
from gatepass.sealing import Sealer

__all__ = [
    "MARKER_LENGTH",
    "EngineContext",
    "installation_marker",
    "new_installation_id",
]

# 10 base32 characters: 50 bits, so two deployments sharing a server collide with
# probability ~2^-50 per pair, while a Redis user name stays 40 characters long.
MARKER_LENGTH: Final = 10
_INSTALLATION_ID: Final = re.compile(r"[A-Za-z0-9_-]{8,64}")


def new_installation_id() -> str:
    """
    Return a fresh installation id (``ins_`` + 26 base32 characters, 128 bits).

    The broker creates it once, at the first start of a deployment, and keeps it in
    its database, so it survives restarts and is shared by all replicas.
    """
    body = base64.b32encode(secrets.token_bytes(16)).decode().rstrip("=").lower()
    return f"ins_{body}"


def installation_marker(installation_id: str) -> str:
    """
    Return the marker engines write into a target for this installation.

    It is the first :data:`MARKER_LENGTH` base32 characters (lower case) of the
    SHA-256 of the id: fixed length and ``[a-z2-7]`` whatever the id looks like, so
    it fits PostgreSQL comments and Redis user names alike. It is not a secret; it
    only tells deployments apart.

    Args:
        installation_id: the deployment's id.

    Returns:
        The marker.
    """
    digest = hashlib.sha256(b"gatepass installation " + installation_id.encode())
    return base64.b32encode(digest.digest()).decode()[:MARKER_LENGTH].lower()


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineContext:
    """
    Shared facilities for engines.

    Attributes:
        state_dir: the broker's state directory (mode 0700), for files an engine
            must keep outside the database (an SSH CA key, sealed; a KRL).
        sealer: seals private material at rest with the broker's master key.
        clock: the time source; engines never read the wall clock themselves.
        installation_id: the deployment's id (stable across restarts, shared by
            replicas, different between deployments); see :func:`new_installation_id`.
    """

    state_dir: Path
    sealer: Sealer
    clock: Clock
    installation_id: str

    def __post_init__(self) -> None:
        """
        Refuse an installation id that cannot tell deployments apart.

        Raises:
            ConfigurationError: the id is empty, too short or has odd characters.
        """
        if _INSTALLATION_ID.fullmatch(self.installation_id) is None:
            msg = "installation id must be 8-64 characters of [A-Za-z0-9_-]"
            raise ConfigurationError(msg)

    @property
    def marker(self) -> str:
        """The short marker of this installation (:func:`installation_marker`)."""
        return installation_marker(self.installation_id)
