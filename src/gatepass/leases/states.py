"""
A lease's states and the moves between them.

::

    pending ──activate──▶ active ──renew──▶ active
       │                    │
       │ end (task closed,  │ end (revoked, task closed, policy, agent disabled)
       │ stale issuance)    │ expire (past expires_at)
       ▼                    ▼
    revoking ─────confirm────▶ revoked        (engine credentials)
       ▲                                      access tokens skip ``revoking``:
       └──reopen (a credential made after     marking the lease *is* their
          its lease ended, on another         revocation (introspection reads
          replica)                            it); expiry makes them ``expired``

Ground rule 5 (never give up revoking): an engine credential is never reported
``revoked`` before its engine confirmed, so every ending of an engine lease goes
through ``revoking``, and ``revoking`` only leaves to ``revoked``.
"""

from __future__ import annotations

from gatepass.models import LeaseState

__all__ = [
    "ACCESS_TOKEN_KIND",
    "LIVE_STATES",
    "TRANSITIONS",
    "can_move",
    "ended_state",
    "expired_state",
    "is_live",
]

# Access tokens need no call to a target: marking the lease is the revocation.
ACCESS_TOKEN_KIND = "access_token"  # noqa: S105 - a lease kind

LIVE_STATES = frozenset({LeaseState.PENDING, LeaseState.ACTIVE})
"""States in which a credential may work (or is being made)."""

TRANSITIONS: dict[LeaseState, frozenset[LeaseState]] = {
    LeaseState.PENDING: frozenset(
        {LeaseState.ACTIVE, LeaseState.REVOKING, LeaseState.REVOKED}
    ),
    LeaseState.ACTIVE: frozenset(
        {
            LeaseState.ACTIVE,  # renewal moves expires_at
            LeaseState.REVOKING,
            LeaseState.REVOKED,
            LeaseState.EXPIRED,
        }
    ),
    LeaseState.REVOKING: frozenset({LeaseState.REVOKED, LeaseState.REVOKING}),
    # A credential created after its lease ended reopens the revocation.
    LeaseState.REVOKED: frozenset({LeaseState.REVOKING}),
    LeaseState.EXPIRED: frozenset(),
}
"""Every allowed move; anything else is a bug (or a forged database row)."""


def is_live(state: LeaseState) -> bool:
    """Tell whether a lease in ``state`` may still be used."""
    return state in LIVE_STATES


def ended_state(kind: str) -> LeaseState:
    """
    Return where a live lease of ``kind`` goes when it is revoked.

    Access tokens are ``revoked`` at once; engine credentials are ``revoking``
    until their engine confirms.
    """
    return LeaseState.REVOKED if kind == ACCESS_TOKEN_KIND else LeaseState.REVOKING


def expired_state(kind: str) -> LeaseState:
    """
    Return where a live lease of ``kind`` goes when its time is up.

    An access token stops working on its own (``expired``); an engine credential
    must still be removed from its target (``revoking``).
    """
    return LeaseState.EXPIRED if kind == ACCESS_TOKEN_KIND else LeaseState.REVOKING


def can_move(source: LeaseState, target: LeaseState, *, kind: str) -> bool:
    """
    Tell whether a lease of ``kind`` may move from ``source`` to ``target``.

    Engine leases never reach ``revoked`` except from ``revoking`` (their engine
    confirmed), and access tokens never pass through ``revoking``.
    """
    if target not in TRANSITIONS[source]:
        return False
    if kind == ACCESS_TOKEN_KIND:
        return LeaseState.REVOKING not in {source, target}
    return not (target is LeaseState.REVOKED and source is not LeaseState.REVOKING)
