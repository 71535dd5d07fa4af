"""
The canonical request an approval is bound to, and its SHA-256.

An approval approves one exact credential request: who asks (agent, task), for
what (target, kind, actions), for how long (the TTL asked for), under which policy
(the digest of the set that asked for approval). The hash covers all of them in a
canonical JSON form (sorted keys, no whitespace, actions sorted and unique), so any
change, a widened scope, a longer TTL or a reloaded policy set, needs a new approval.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

__all__ = ["CanonicalRequest", "request_hash"]

_VERSION = "gatepass.approval.v1"


@dataclass(frozen=True, slots=True, kw_only=True)
class CanonicalRequest:
    """
    The parameters of one credential request, as the broker resolved them.

    Attributes:
        agent_id: the requesting agent.
        task_id: its task.
        target: the target's configured name (never the URI as sent).
        kind: ``access_token`` or the engine kind.
        actions: the actions asked for.
        requested_ttl_seconds: the TTL the agent asked for; None: the default.
        policy_digest: the digest of the policy set that asked for approval.
    """

    agent_id: str
    task_id: str
    target: str
    kind: str
    actions: tuple[str, ...]
    requested_ttl_seconds: int | None
    policy_digest: str

    def to_json(self) -> dict[str, Any]:
        """Return the canonical form (what the hash covers, and approvers see)."""
        return {
            "v": _VERSION,
            "agent_id": self.agent_id,
            "task_id": self.task_id,
            "target": self.target,
            "kind": self.kind,
            "actions": sorted(set(self.actions)),
            "requested_ttl_seconds": self.requested_ttl_seconds,
            "policy_digest": self.policy_digest,
        }


def request_hash(request: CanonicalRequest) -> str:
    """
    Return the hex SHA-256 of the canonical request.

    The encoding is JSON with sorted keys, no whitespace and ASCII only, so one
    request has exactly one encoding and no two different requests share one.
    """
    encoded = json.dumps(
        request.to_json(), sort_keys=True, separators=(",", ":"), ensure_ascii=True
    )
    return hashlib.sha256(encoded.encode("ascii")).hexdigest()
