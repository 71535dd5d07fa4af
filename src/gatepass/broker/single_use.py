"""Refusals for single-use values found already spent in the store."""

from __future__ import annotations

from gatepass.errors import DPoPReplayError, GatepassError, InvalidGrantError
from gatepass.single_use import SingleUse
from gatepass.tokens import X5T_CLAIM

__all__ = ["confirmation", "replay_error"]


def replay_error(replayed: SingleUse) -> GatepassError:
    """
    Return the refusal for a value another request already spent.

    A DPoP proof is ``invalid_dpop_proof`` (RFC 9449 §11.1); an identity assertion,
    a federated token or a delegation token is ``invalid_grant`` (RFC 7523 §3
    item 7).
    """
    if replayed.namespace == "dpop":
        # The value is "<jkt>:<jti>" (tokens/dpop.py).
        jkt = replayed.value.split(":", 1)[0]
        return DPoPReplayError("dpop proof replayed", jkt=jkt)
    if replayed.namespace == "federated":
        return InvalidGrantError("identity token replayed")
    if replayed.namespace == "delegation":
        return InvalidGrantError("delegation token already used")
    return InvalidGrantError("assertion replayed")


def confirmation(jkt: str, certificate: str | None) -> dict[str, str]:
    """
    Return a token's ``cnf`` claim.

    It names the DPoP key (RFC 9449 §6.1) and, when the task was opened over mutual
    TLS, the client certificate's thumbprint (RFC 8705 §3.1).
    """
    claim = {"jkt": jkt}
    if certificate is not None:
        claim[X5T_CLAIM] = certificate
    return claim
