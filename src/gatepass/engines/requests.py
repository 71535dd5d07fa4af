"""
The checks every engine makes of an :class:`~gatepass.engines.base.IssueRequest`.

The broker builds an ``IssueRequest`` only after it has validated what the agent
asked for: the scope names actions the target offers (``InvalidScopeError``
otherwise) and the expiry is the minimum of the policy's, the target's and the
task's limits, computed from the broker's clock. A request that fails these checks
is therefore a broker bug, not the agent's mistake, and every engine refuses it the
same way: with :class:`~gatepass.errors.EngineError` (502), never with a 4xx that
would tell the agent to change a request it cannot change. The engine checks
anyway, before anything reaches the target, because it is the last place that
can keep a credential from outliving its lease.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Container, Sequence

from gatepass.errors import EngineError

__all__ = ["check_actions", "check_expiry"]


def check_expiry(
    expires_at: dt.datetime,
    *,
    now: dt.datetime,
    max_ttl: dt.timedelta | None = None,
) -> None:
    """
    Refuse an expiry no credential may carry.

    Args:
        expires_at: the requested end of the credential.
        now: the engine's current time (from its clock).
        max_ttl: the target's longest credential, for engines that enforce it
            themselves (Redis users and SSH certificates); None skips that test.

    Raises:
        EngineError: ``expires_at`` is naive, not in the future, or further than
            ``max_ttl`` from now.
    """
    if expires_at.utcoffset() is None:
        raise EngineError("expires_at must be timezone-aware")
    if expires_at <= now:
        raise EngineError("expires_at is not in the future")
    if max_ttl is not None and expires_at - now > max_ttl:
        raise EngineError("expires_at exceeds the target's max ttl")


def check_actions(actions: Sequence[str], granted: Container[str]) -> None:
    """
    Refuse a request for no action, or for an action the mount has no entry for.

    Args:
        actions: the requested actions.
        granted: the actions the mount's configuration maps (its grants or
            principals); configuration parsing made these the target's actions.

    Raises:
        EngineError: no action, or one the mount does not map.
    """
    if not actions:
        raise EngineError("no action requested")
    for action in actions:
        if action not in granted:
            raise EngineError(f"action {action[:64]!r} has no grants on this target")
