"""The signing key ring in force, swapped whole at a rotation."""

from __future__ import annotations

from gatepass.tokens import JWTIssuer, KeyRing

__all__ = ["LiveKeys"]


class LiveKeys:
    """
    The key ring in force; a ``KeySource`` for the broker's verifier.

    A rotation (here or at another replica) installs a new ring with
    :meth:`install`, which the issuer and the verifier both read from then on.

    Args:
        ring: the initial ring.
        issuer: the issuer that signs with the ring's current key.
    """

    def __init__(self, ring: KeyRing, *, issuer: JWTIssuer) -> None:
        """Hold the ring."""
        self.ring = ring
        self._issuer = issuer

    def key_for(self, kid: str) -> tuple[object, str]:
        """Return the public key and pinned algorithm for ``kid``."""
        return self.ring.key_for(kid)

    def install(self, ring: KeyRing) -> None:
        """Make ``ring`` the live ring for signing and verification."""
        self.ring = ring
        self._issuer.ring = ring
