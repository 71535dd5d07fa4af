"""Refusals for single-use values found already spent in the store."""

from __future__ import annotations

from gatepass.errors import DPoPProofError, GatepassError, InvalidGrantError
from gatepass.single_use import SingleUse

__all__ = ["replay_error"]


def replay_error(replayed: SingleUse) -> GatepassError:
    """
    Return the refusal for a value another request already spent.

    A DPoP proof is ``invalid_dpop_proof`` (RFC 9449 §11.1); an identity assertion
    or federated token is ``invalid_grant`` (RFC 7523 §3 item 7).
    """
    if replayed.namespace == "dpop":
        return DPoPProofError("dpop proof replayed")
    if replayed.namespace == "federated":
        return InvalidGrantError("identity token replayed")
    return InvalidGrantError("assertion replayed")
