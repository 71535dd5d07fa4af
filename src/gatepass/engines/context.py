"""What an engine receives when the broker builds it from a target's configuration."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gatepass.clock import Clock
from gatepass.sealing import Sealer

__all__ = ["EngineContext"]


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineContext:
    """
    Shared facilities for engines.

    Attributes:
        state_dir: the broker's state directory (mode 0700), for files an engine
            must keep outside the database (an SSH CA key, sealed; a KRL).
        sealer: seals private material at rest with the broker's master key.
        clock: the time source; engines never read the wall clock themselves.
    """

    state_dir: Path
    sealer: Sealer
    clock: Clock
