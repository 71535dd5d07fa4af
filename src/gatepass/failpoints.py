"""
Failpoints: let a test kill the broker at an exact point, as ``kill -9`` would.

Set ``GATEPASS_FAILPOINT=<name>`` in the environment of a broker process and the
process sends itself SIGKILL when it reaches :func:`hit` with that name. Used only by
crash-recovery tests (a role created in PostgreSQL, its lease still pending); with
the variable unset, :func:`hit` is a dictionary lookup.
"""

from __future__ import annotations

import os
import signal

__all__ = ["FAILPOINT_ENV", "hit"]

FAILPOINT_ENV = "GATEPASS_FAILPOINT"
_ARMED = os.environ.get(FAILPOINT_ENV, "")


def hit(name: str) -> None:
    """
    Kill this process with SIGKILL if the failpoint ``name`` is armed.

    Args:
        name: the failpoint's name, e.g. ``credential.after_issue``.
    """
    if _ARMED and name == _ARMED:
        os.kill(os.getpid(), signal.SIGKILL)
