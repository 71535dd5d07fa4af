"""
The secret-engine contract: how gatepass mints and removes credentials in a target.

An engine serves one *mount* (one configured target: one database, one Redis, one SSH
CA, with its own admin credential). The broker records a ``pending`` lease with the
credential's deterministic name *before* calling :meth:`SecretEngine.issue`, marks it
``active`` after, and calls :meth:`SecretEngine.revoke` when the task ends.
:meth:`SecretEngine.reap` removes whatever the target holds under gatepass's prefix
that no live lease accounts for (a crash between two steps, a broker down for days).

Engines know nothing of HTTP, policy or the store. Requests and results are frozen
dataclasses so that new fields never break an engine.

Every built-in engine has one constructor shape, ``XEngine(config: XConfig,
context: EngineContext)``, where ``XConfig`` is its frozen, validated, typed
configuration, and one factory, ``XEngine.from_target(target, settings,
context)``, which parses the raw ``[targets.engine]`` table with the helpers of
:mod:`gatepass.engines.settings`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from gatepass.ids import LeaseId
from gatepass.secret import Secret

__all__ = [
    "CREDENTIAL_PREFIX",
    "IssueRequest",
    "IssuedCredential",
    "SecretEngine",
    "credential_name",
]

# Every credential gatepass creates in a target starts with this prefix, so the
# reaper can tell its own from everything else and never touches the latter.
CREDENTIAL_PREFIX = "gp_"


def credential_name(lease_id: LeaseId) -> str:
    """
    Return the deterministic credential name of a lease (``gp_<26 base32 chars>``).

    It fits PostgreSQL's 63-byte identifiers and Redis user names, contains only
    ``[a-z0-9_]``, and is recorded on the lease before the credential exists.
    """
    return CREDENTIAL_PREFIX + lease_id.removeprefix("lse_")


@dataclass(frozen=True, slots=True, kw_only=True)
class IssueRequest:
    """
    What the broker asks an engine to mint.

    Attributes:
        lease_id: the lease already recorded as pending.
        name: the deterministic credential name (``credential_name(lease_id)``).
        actions: the granted actions; the engine maps each to its configured grants.
        principal: the agent id, for naming and audit only.
        expires_at: aware UTC; the credential must not work past it.
        public_key: the agent's own public key (OpenSSH format) for engines that
            certify a key instead of minting a secret (SSH); None otherwise.
    """

    lease_id: LeaseId
    name: str
    actions: tuple[str, ...]
    principal: str
    expires_at: dt.datetime
    public_key: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class IssuedCredential:
    """
    What an engine minted.

    Attributes:
        handle: engine-owned identifier stored on the lease for revoke and reap
            (for PostgreSQL and Redis the credential name; for SSH the key id).
        expires_at: when it stops working (never later than requested).
        secret: the secret part (a password), or None (an SSH certificate is not
            secret). Redacted everywhere; revealed only in the API answer.
        fields: non-secret connection parameters handed to the agent
            (host, port, database, username, certificate...).
    """

    handle: str
    expires_at: dt.datetime
    secret: Secret | None = None
    fields: Mapping[str, Any] = field(default_factory=dict)


class SecretEngine(Protocol):
    """Mints short-lived credentials for one kind of target system."""

    kind: ClassVar[str]

    async def check(self) -> None:
        """
        Verify configuration and connectivity with the admin credential.

        Raises:
            EngineError: the target cannot be reached or refuses the admin.
        """
        ...

    async def issue(self, request: IssueRequest) -> IssuedCredential:
        """
        Create the credential named ``request.name``.

        Must be safe to call again for the same name after a failure (it replaces
        a half-made credential of that name).

        Before anything reaches the target, the engine refuses a request the
        broker should never have built, with :class:`EngineError` in every
        engine: an ``expires_at`` that is naive, not in the future or (where the
        engine enforces the target's ``max_ttl``) too far away, and actions that
        are empty or unmapped (:mod:`gatepass.engines.requests`). The broker
        validated the agent's scope and computed the expiry itself, so such a
        request is a broker bug: a 4xx would tell the agent to fix a request it
        cannot change.

        Raises:
            EngineError: the target refused or failed, or the request is malformed.
            InvalidRequestError: what the *agent* supplied is unacceptable (an SSH
                public key).
        """
        ...

    async def renew(self, handle: str, expires_at: dt.datetime) -> dt.datetime:
        """
        Extend a live credential to ``expires_at``.

        Returns:
            The new expiry (never later than asked).

        Raises:
            EngineError: the credential is gone or the target refused.
            ConflictError: this kind cannot be extended (an SSH certificate: the
                agent asks for a new one instead).
        """
        ...

    async def revoke(self, handle: str) -> None:
        """
        Remove the credential and cut its live sessions. Idempotent.

        Raises:
            EngineError: the target could not be reached; the broker retries.
        """
        ...

    async def reap(self, live_handles: AbstractSet[str]) -> list[str]:
        """
        Remove every gatepass credential in the target whose handle is not live.

        Args:
            live_handles: handles of pending and active leases of this mount.

        Returns:
            The handles removed.
        """
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...
