"""Engine-backed credentials as the agent receives them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gatepass.ids import LeaseId
from gatepass.secret import Secret

__all__ = ["Credential"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Credential:
    """
    A PostgreSQL role, Redis user or SSH certificate minted for one task.

    Attributes:
        lease_id: the broker's lease.
        target: the target name.
        kind: ``postgres``, ``redis`` or ``ssh``.
        actions: what it grants.
        expires_at: when it stops working (aware UTC).
        fields: non-secret connection parameters (host, port, username...).
        password: the secret part, if the kind has one; redacted in repr.
    """

    lease_id: LeaseId
    target: str
    kind: str
    actions: tuple[str, ...]
    expires_at: dt.datetime
    fields: Mapping[str, Any] = field(default_factory=dict)
    password: Secret | None = None

    @classmethod
    def from_answer(cls, body: Mapping[str, Any]) -> Credential:
        """
        Read the broker's ``POST /v1/credentials`` answer.

        Args:
            body: the answer's JSON object.
        """
        fields = dict(body.get("credential", {}))
        password = fields.pop("password", None)
        return cls(
            lease_id=LeaseId(str(body["lease_id"])),
            target=str(body["target"]),
            kind=str(body["kind"]),
            actions=tuple(body.get("actions", ())),
            expires_at=dt.datetime.fromisoformat(str(body["expires_at"])),
            fields=fields,
            password=Secret(password) if isinstance(password, str) else None,
        )

    def connection_kwargs(self) -> dict[str, Any]:
        """
        Return keyword arguments for a client library.

        For PostgreSQL they suit ``psycopg.connect(**kwargs)`` (host, port, dbname,
        user, password); for Redis ``redis.Redis(**kwargs)`` (host, port, username,
        password). The password is revealed here, at the hand-over point.
        """
        kwargs: dict[str, Any] = {}
        fields = dict(self.fields)
        if self.kind == "postgres":
            kwargs = {
                "host": fields.get("host"),
                "port": fields.get("port"),
                "dbname": fields.get("database"),
                "user": fields.get("username"),
            }
        elif self.kind == "redis":
            kwargs = {
                "host": fields.get("host"),
                "port": fields.get("port"),
                "username": fields.get("username"),
            }
        else:
            kwargs = fields
        if self.password is not None:
            kwargs["password"] = self.password.reveal()
        return kwargs

    @property
    def certificate(self) -> str | None:
        """Return the OpenSSH certificate of an ``ssh`` credential."""
        value = self.fields.get("certificate")
        return value if isinstance(value, str) else None
