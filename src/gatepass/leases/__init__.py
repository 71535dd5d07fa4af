"""
The lease state machine: which states a lease moves through, and why.

The store encodes these rules in SQL (so that each transition is one atomic
statement); this package is where they are written down, once, for the store, the
broker and the tests to share.
"""

from __future__ import annotations

from gatepass.leases.states import (
    ACCESS_TOKEN_KIND,
    LIVE_STATES,
    TRANSITIONS,
    can_move,
    ended_state,
    expired_state,
    is_live,
)

__all__ = [
    "ACCESS_TOKEN_KIND",
    "LIVE_STATES",
    "TRANSITIONS",
    "can_move",
    "ended_state",
    "expired_state",
    "is_live",
]
