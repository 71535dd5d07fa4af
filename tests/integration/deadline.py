"""Waiting for state with a deadline instead of sleeping."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


def poll(check: Callable[[], object], *, within: float, step: float = 0.05) -> bool:
    """
    Call ``check`` until it returns something true or ``within`` seconds pass.

    Returns:
        Whether ``check`` became true before the deadline (it is tried once more at
        the deadline).
    """
    deadline = time.monotonic() + within
    pause = threading.Event()
    while time.monotonic() < deadline:
        if check():
            return True
        # One bounded step of the poll; nobody sets the event.
        pause.wait(step)
    return bool(check())
