"""A string that never shows itself in ``repr``, ``str``, logs or tracebacks."""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["Secret", "token_hash"]


class Secret:
    """
    Wrap a secret value so that printing or logging it shows ``Secret('**********')``.

    Call :meth:`reveal` only at the point where the value is handed over.

    Args:
        value: the secret string.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        """Hold the value."""
        self._value = value

    def reveal(self) -> str:
        """Return the secret value; call only at the hand-over point."""
        return self._value

    def __repr__(self) -> str:
        """Return a redacted representation."""
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        """Compare in constant time."""
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        """Hash by the digest of the value, so secrets can key dicts safely."""
        return hash(token_hash(self._value))

    def __reduce__(self) -> str:
        """Refuse to be pickled, so a secret never lands in a cache or a queue."""
        msg = "secrets cannot be pickled"
        raise TypeError(msg)


def token_hash(token: str) -> str:
    """
    Return the hex SHA-256 of a token: what gatepass stores and logs instead of it.

    Args:
        token: a token or secret string.

    Returns:
        64 lower-case hex characters.
    """
    return hashlib.sha256(token.encode()).hexdigest()
