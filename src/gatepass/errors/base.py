"""
The base of the error tree.

Each class carries its ``code``, ``http_status`` and ``exit_code``.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = ["GatepassError"]


class GatepassError(Exception):
    """
    Base of every error gatepass raises on purpose.

    Args:
        detail: a human-readable, lower-case description that never carries a secret.
    """

    code: ClassVar[str] = "server_error"
    http_status: ClassVar[int] = 500
    exit_code: ClassVar[int] = 1

    def __init__(self, detail: str = "") -> None:
        """Keep the detail for rendering."""
        super().__init__(detail or self.code)
        self.detail = detail or self.code

    def fields(self) -> dict[str, object]:
        """Return members the error body carries beside ``error`` (none here)."""
        return {}
