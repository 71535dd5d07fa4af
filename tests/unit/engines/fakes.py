"""
Where broker tests found the fake engine before it moved to :mod:`gatepass.testing`.

Kept only for ``tests/unit/broker/test_credentials.py`` (outside the engines room);
import :class:`gatepass.testing.MemoryEngine` instead. Remove this module once that
test imports it from there.
"""

from __future__ import annotations

from gatepass.testing import MemoryEngine

__all__ = ["MemoryEngine"]
