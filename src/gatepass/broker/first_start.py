"""
First start: create what a new database and state directory lack, once.

A new deployment gets its schema, the signing keys (current and next), the audit
key, the DPoP nonce secret, an installation id (engines mark what they create in
shared targets with it), the bootstrap API tokens and, for the quickstart, a demo
agent whose private key is written to the state directory. Secrets go only to files
of mode 0600, written after the transaction holding their hashes committed; the
database holds hashes or sealed forms.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import secrets
from pathlib import Path

from gatepass.audit import AuditEntry, AuditSigner, Outcome
from gatepass.config import Settings
from gatepass.engines import new_installation_id
from gatepass.ids import new_agent_id
from gatepass.models import Agent
from gatepass.sealing import Sealer
from gatepass.secret import token_hash
from gatepass.store import ApiRole, Connection, api_tokens, audit_log, keys
from gatepass.store import agents as agent_rows
from gatepass.tokens import DPoPKey, KeyRecord, private_jwk, rotate

__all__ = [
    "audit_key",
    "first_start",
    "installation_id",
    "write_secret_file",
]

_AUDIT_KEY = "audit_key"
_NONCE_SECRET = "dpop_nonce_secret"  # noqa: S105 - a setting name
_INSTALLATION_ID = "installation_id"


def write_secret_file(path: Path, content: str) -> None:
    """
    Write ``content`` to ``path`` readable by the owner only (mode 0600).

    Args:
        path: the file; its directory is created with mode 0700.
        content: the secret text.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(content)


def audit_key(conn: Connection, sealer: Sealer) -> bytes:
    """Return the sealed audit key, creating it on a new database."""
    audit_log.ensure_audit_head(conn)
    sealed_audit = keys.read_setting(conn, _AUDIT_KEY)
    if sealed_audit is None:
        _, sealed_audit = AuditSigner.generate(sealer)
        keys.write_setting(conn, _AUDIT_KEY, sealed_audit)
    return sealed_audit


def first_start(
    conn: Connection,
    *,
    settings: Settings,
    sealer: Sealer,
    now: dt.datetime,
) -> tuple[list[KeyRecord], bytes, list[tuple[Path, str]]]:
    """Create what a new database lacks; return keys, sealed secret, files to write."""
    files: list[tuple[Path, str]] = []
    records = keys.load_key_records(conn)
    if not records:
        records = rotate(
            [],
            algorithm=settings.tokens.algorithm,
            sealer=sealer,
            now=now,
            retire_after=dt.timedelta(seconds=settings.tokens.key_retire_after_seconds),
        )
        keys.replace_key_records(conn, records)
        _system_audit(conn, now, "keys.create", {"kids": [r.kid for r in records]})
    sealed_nonce = keys.read_setting(conn, _NONCE_SECRET)
    if sealed_nonce is None:
        sealed_nonce = sealer.seal(secrets.token_bytes(32))
        keys.write_setting(conn, _NONCE_SECRET, sealed_nonce)
    state = settings.server.state_dir
    for role, file_name in (
        (ApiRole.ADMIN, "admin.token"),
        (ApiRole.INTROSPECT, "introspect.token"),
        (ApiRole.PROXY, "proxy.token"),
    ):
        if api_tokens.count_api_tokens(conn, role) == 0:
            token = f"gp_{role.value}_{secrets.token_urlsafe(32)}"
            token_id = f"tok_{secrets.token_hex(8)}"
            api_tokens.insert_api_token(
                conn,
                token_id=token_id,
                token_hash=token_hash(token),
                role=role,
                description=f"bootstrap {role.value} token",
                now=now,
            )
            files.append((state / file_name, token + "\n"))
            _system_audit(conn, now, "api_token.create", {"id": token_id, "role": role})
    demo = settings.demo
    if demo.enabled and agent_rows.get_agent_by_name(conn, demo.agent_name) is None:
        key = DPoPKey.generate("ES256")
        agent = Agent(
            id=new_agent_id(),
            name=demo.agent_name,
            tenant=demo.tenant,
            labels=dict(demo.labels),
            public_jwk=key.public_jwk,
            algorithm=key.algorithm,
            created_at=now,
        )
        agent_rows.insert_agent(conn, agent)
        _system_audit(conn, now, "agent.add", {"name": agent.name}, subject=agent.id)
        identity = {
            "agent_id": agent.id,
            "broker": settings.server.issuer,
            "private_jwk": private_jwk(key.private_key),
        }
        files.append((state / "demo-agent.json", json.dumps(identity, indent=2) + "\n"))
    return records, sealed_nonce, files


def installation_id(conn: Connection) -> str:
    """
    Return this deployment's id, created once at the first start.

    Engines mark what they create in shared targets with it, so that the reaper of
    one deployment never removes another's credentials. It lives in the database,
    so every replica and every restart of the deployment sees the same id.
    """
    stored = keys.read_setting(conn, _INSTALLATION_ID)
    if stored is None:
        stored = new_installation_id().encode()
        keys.write_setting(conn, _INSTALLATION_ID, stored)
    return stored.decode()


def _system_audit(
    conn: Connection,
    now: dt.datetime,
    kind: str,
    data: dict[str, object],
    *,
    subject: str = "",
) -> None:
    audit_log.append_audit(
        conn,
        AuditEntry(
            at=now,
            kind=kind,
            outcome=Outcome.OK,
            actor="system",
            subject=subject,
            data=data,
        ),
    )
