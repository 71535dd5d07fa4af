"""
What a test of gatepass, or of an engine written for it, needs: fakes and contracts.

- :class:`FrozenClock`: time that moves only when told (``advance``).
- :class:`MemoryEngine`: an in-memory secret engine with failure switches, for
  broker tests.
- :class:`SecretEngineContract`: the behaviours every engine must show, as a base
  class an engine's test subclasses (with :class:`EngineProbe`,
  :class:`LiveSession`, :class:`RequestFactory`, :func:`eventually` and
  :func:`fresh_clock`).
- :func:`make_target` and :func:`make_engine_context`: what the broker would pass
  an engine.

This package imports pytest (the contract is a pytest base class): install
``gatepass[dev]``, or pytest next to ``gatepass[server]``. Nothing in gatepass
itself imports it; import-linter checks that.
"""

from __future__ import annotations

import pytest

# The contract's asserts live outside any test module: have pytest rewrite them
# so that a failing engine shows the compared values, as in a test of its own.
pytest.register_assert_rewrite("gatepass.testing.contract")

from gatepass.clock import FrozenClock  # noqa: E402 - after the rewrite hook
from gatepass.testing.contract import (  # noqa: E402
    EngineProbe,
    LiveSession,
    RequestFactory,
    SecretEngineContract,
    eventually,
    fresh_clock,
)
from gatepass.testing.factories import (  # noqa: E402
    make_engine_context,
    make_target,
)
from gatepass.testing.memory import MemoryEngine  # noqa: E402

__all__ = [
    "EngineProbe",
    "FrozenClock",
    "LiveSession",
    "MemoryEngine",
    "RequestFactory",
    "SecretEngineContract",
    "eventually",
    "fresh_clock",
    "make_engine_context",
    "make_target",
]
