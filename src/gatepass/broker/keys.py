"""
The broker's signing keys: list, rotate, and pick up another replica's rotation.

A rotation promotes *next* to *current*, *current* to *retired* (still published in
the JWKS until every token it signed has expired) and publishes a new *next* key,
so verifiers always know a key before it signs anything.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from gatepass.audit import Outcome
from gatepass.broker.callers import Caller
from gatepass.broker.context import BrokerContext
from gatepass.broker.trail import Attempt, AuditRecorder
from gatepass.store import Connection, keys
from gatepass.tokens import KeyRecord, KeyRing, rotate

__all__ = ["SigningKeys"]


class SigningKeys:
    """
    The signing key ring's use cases.

    Args:
        context: the broker's collaborators.
    """

    def __init__(self, context: BrokerContext) -> None:
        """Keep the context."""
        self._context = context

    def jwks(self) -> dict[str, Any]:
        """Return the public signing keys (the next key included), as a JWK set."""
        return self._context.keys.ring.jwks()

    def describe(self) -> list[dict[str, Any]]:
        """Return the public description of every signing key."""
        return [
            {
                "kid": record.kid,
                "alg": record.algorithm,
                "state": record.state.value,
                "created_at": record.created_at.isoformat(),
                "activated_at": record.activated_at.isoformat()
                if record.activated_at
                else None,
                "retired_at": record.retired_at.isoformat()
                if record.retired_at
                else None,
            }
            for record in self._context.keys.ring.records
        ]

    async def rotate(self, caller: Caller) -> list[dict[str, Any]]:
        """
        Rotate the signing keys.

        Returns:
            The key list after rotation.
        """
        context = self._context
        settings = context.settings.tokens
        now = context.clock.now()
        retire_after = dt.timedelta(seconds=settings.key_retire_after_seconds)

        def rotate_in_store(conn: Connection, audit: AuditRecorder) -> list[KeyRecord]:
            rotated = rotate(
                keys.load_key_records(conn),
                algorithm=settings.algorithm,
                sealer=context.sealer,
                now=now,
                retire_after=retire_after,
            )
            keys.replace_key_records(conn, rotated)
            attempt = Attempt(
                kind="keys.rotate",
                actor=caller.actor,
                data={"kids": [r.kid for r in rotated]},
            )
            audit.record(conn, attempt, Outcome.OK)
            return rotated

        rotated = await context.trail.write(rotate_in_store)
        context.keys.install(KeyRing(rotated, context.sealer))
        return self.describe()

    async def refresh(self) -> bool:
        """
        Load keys another replica may have rotated.

        Returns:
            True if the live ring changed.
        """
        context = self._context
        records = await context.database.read(keys.load_key_records)
        current = context.keys.ring
        if [r.kid for r in records] == [r.kid for r in current.records]:
            return False
        context.keys.install(KeyRing(records, context.sealer))
        return True
