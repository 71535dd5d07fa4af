"""
Steps 6 and 7 of the pipeline: who is calling, and is their token still live.

The DPoP-bound access token is verified against the route (signature from the
broker's JWKS, issuer, the route's target as the one audience, expiry) with its
proof for this exact method and URL, rebuilt from ``public_url`` and the raw path,
never from ``Host`` or ``X-Forwarded-*``. A token the broker revoked is refused:
pushed by the revocation stream, or asked of the introspection endpoint while the
stream is down (fail closed). With a shared replay ledger (``replay = "redis"``)
the proof, once it passed every check, is claimed there too, so that no other
proxy process accepts it again (:mod:`gatepass.proxy.replay`). Every failure is
answered by
:func:`~gatepass.proxy.refusals.access_refusal`: a ``401`` (``400`` for a repeated
``Authorization`` header) with a DPoP challenge.
"""

from __future__ import annotations

import asyncio

from gatepass.errors import (
    DPoPProofError,
    GatepassError,
    StoreError,
    TokenRevokedError,
)
from gatepass.proxy.asgi import Header
from gatepass.proxy.forwarding import Route
from gatepass.proxy.reasons import RefusalReason
from gatepass.proxy.refusals import RefusedError, access_refusal
from gatepass.proxy.replay import (
    ProofLedger,
    ReplayUnavailableError,
    claim_proofs,
    collecting_claims,
)
from gatepass.single_use import SingleUse
from gatepass.verify import (
    Introspector,
    RevocationFeed,
    VerifiedAccess,
    presented_credentials,
)

__all__ = ["verify_access"]


async def verify_access(
    route: Route,
    method: str,
    raw_path: bytes,
    headers: list[Header],
    *,
    feed: RevocationFeed | None,
    introspector: Introspector,
    ledger: ProofLedger | None = None,
) -> VerifiedAccess:
    """
    Verify the request's access token and proof, and that it was not revoked.

    Args:
        route: the route that matched.
        method: the request method.
        raw_path: the raw request path, without the query.
        headers: the request's headers.
        feed: the revocation stream follower (None in ``poll`` mode).
        introspector: the broker's introspection endpoint, asked while the
            stream is down.
        ledger: the replay ledger shared with other proxy processes, if any.

    Returns:
        The verified access.

    Raises:
        RefusedError: the token or proof is missing, repeated, invalid or revoked,
            or the shared replay ledger could not answer.
    """
    # RFC 9449 §4.3 item 9: the htu is this server's URL for the request, rebuilt
    # from the configured public URL; Host and X-Forwarded-* are the caller's.
    url = route.verifier.url_for(raw_path.decode("latin-1"))
    try:
        presented = presented_credentials(headers)
        with collecting_claims() as claims:
            if route.verifier.needs_io(presented.token):
                # Verification may fetch the JWKS or ask the broker: keep the
                # loop free.
                access = await asyncio.to_thread(
                    route.verifier.verify_presented, method, url, presented
                )
            else:
                # A token verified before: only the proof's signature and the
                # claims checks are left, cheaper than a hop to a thread and back.
                access = route.verifier.verify_presented(method, url, presented)
        if ledger is not None:
            await _claim_shared(ledger, claims.values)
    except GatepassError as error:
        raise access_refusal(error) from None
    try:
        await _check_revocation(access, presented.token, feed, introspector)
    except TokenRevokedError as error:
        raise access_refusal(error) from None
    except GatepassError as error:
        # The broker could not say whether the token was revoked: fail closed.
        raise access_refusal(error, RefusalReason.REVOCATION_UNAVAILABLE) from None
    return access


async def _check_revocation(
    access: VerifiedAccess,
    token: str,
    feed: RevocationFeed | None,
    introspector: Introspector,
) -> None:
    if feed is not None and feed.is_revoked(access.jti):
        raise TokenRevokedError("token is no longer active")
    if feed is not None and feed.healthy:
        return
    # No live push: ask the broker (cached for poll_interval_seconds), and fail
    # closed if it cannot answer.
    await asyncio.to_thread(introspector.check, token)


async def _claim_shared(ledger: ProofLedger, values: list[SingleUse]) -> None:
    try:
        replayed = await claim_proofs(ledger, values)
    except ReplayUnavailableError:
        # Whether another process accepted this proof is unknown: fail closed.
        raise RefusedError(
            RefusalReason.REPLAY_UNAVAILABLE,
            StoreError("the shared replay store could not be reached"),
        ) from None
    if replayed is not None:
        raise DPoPProofError("dpop proof replayed")
