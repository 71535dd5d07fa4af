"""Stateless DPoP nonces (RFC 9449 §8): a timestamp with its HMAC."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import struct

from gatepass.clock import Clock
from gatepass.errors import ConfigurationError
from gatepass.tokens.jwk import b64url, b64url_decode

__all__ = ["NonceService"]

_MIN_SECRET_BYTES = 32
_CONTEXT = b"gatepass dpop nonce v1\x00"
_TIMESTAMP = struct.Struct(">q")
_MAC_BYTES = 32


class NonceService:
    """
    Issue and check server nonces without storing them.

    A nonce is ``b64url(timestamp || HMAC-SHA256(secret, context || timestamp))``;
    any replica holding the secret can check it, and it is valid for ``lifetime``.

    Args:
        secret: at least 32 random bytes, shared by the broker's replicas.
        clock: the time source.
        lifetime: how long a nonce is accepted.

    Raises:
        ConfigurationError: the secret is shorter than 32 bytes.
    """

    __slots__ = ("_clock", "_lifetime", "_secret")

    def __init__(
        self,
        secret: bytes,
        *,
        clock: Clock,
        lifetime: dt.timedelta = dt.timedelta(minutes=5),
    ) -> None:
        """Keep the secret and the lifetime."""
        if len(secret) < _MIN_SECRET_BYTES:
            raise ConfigurationError("dpop nonce secret must be at least 32 bytes")
        self._secret = secret
        self._clock = clock
        self._lifetime = lifetime.total_seconds()

    def _mac(self, stamp: bytes) -> bytes:
        return hmac.digest(self._secret, _CONTEXT + stamp, hashlib.sha256)

    def issue(self) -> str:
        """
        Return a fresh nonce.

        Returns:
            An opaque base64url string.
        """
        stamp = _TIMESTAMP.pack(int(self._clock.now().timestamp()))
        return b64url(stamp + self._mac(stamp))

    def is_valid(self, nonce: object) -> bool:
        """
        Tell whether a nonce was issued here, is not expired and not from the future.

        Args:
            nonce: the ``nonce`` claim of a DPoP proof.

        Returns:
            True when the MAC matches (constant-time) and the nonce is fresh.
        """
        if not isinstance(nonce, str) or len(nonce) > 64:
            return False
        try:
            raw = b64url_decode(nonce)
        except ValueError:
            return False
        if len(raw) != _TIMESTAMP.size + _MAC_BYTES:
            return False
        stamp, mac = raw[: _TIMESTAMP.size], raw[_TIMESTAMP.size :]
        if not hmac.compare_digest(mac, self._mac(stamp)):
            return False
        issued: int = _TIMESTAMP.unpack(stamp)[0]
        now = self._clock.now().timestamp()
        return issued <= now < issued + self._lifetime
