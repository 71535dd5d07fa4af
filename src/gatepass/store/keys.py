"""Persistence of the token signing keys (sealed) and other sealed settings."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, delete, select

from gatepass.store.tables import settings_kv, signing_keys
from gatepass.tokens import KeyRecord, KeyState

__all__ = ["load_key_records", "read_setting", "replace_key_records", "write_setting"]


def load_key_records(conn: Connection) -> list[KeyRecord]:
    """Return every signing key record, oldest first."""
    rows = conn.execute(select(signing_keys).order_by(signing_keys.c.created_at))
    return [
        KeyRecord(
            kid=row.kid,
            algorithm=row.algorithm,
            state=KeyState(row.state),
            sealed_private=bytes(row.sealed_private),
            public_jwk=dict(row.public_jwk),
            created_at=row.created_at,
            activated_at=row.activated_at,
            retired_at=row.retired_at,
        )
        for row in rows
    ]


def replace_key_records(conn: Connection, records: Sequence[KeyRecord]) -> None:
    """Replace the key set with ``records`` (the result of a rotation)."""
    conn.execute(delete(signing_keys))
    for record in records:
        conn.execute(
            signing_keys.insert().values(
                kid=record.kid,
                algorithm=record.algorithm,
                state=record.state.value,
                sealed_private=record.sealed_private,
                public_jwk=record.public_jwk,
                created_at=record.created_at,
                activated_at=record.activated_at,
                retired_at=record.retired_at,
            )
        )


def read_setting(conn: Connection, name: str) -> bytes | None:
    """Return a stored setting's bytes, or None."""
    value = conn.execute(
        select(settings_kv.c.value).where(settings_kv.c.name == name)
    ).scalar_one_or_none()
    return None if value is None else bytes(value)


def write_setting(conn: Connection, name: str, value: bytes) -> None:
    """Store a setting, replacing any previous value."""
    conn.execute(delete(settings_kv).where(settings_kv.c.name == name))
    conn.execute(settings_kv.insert().values(name=name, value=value))
