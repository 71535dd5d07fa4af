"""
Assemble a broker from its settings, doing first-start work once.

On first start the broker creates its schema, a master key (file of mode 0600 unless
``GATEPASS_MASTER_KEY`` is set), the signing keys (current and next), the audit key,
a bootstrap admin token and, for the quickstart, a demo agent whose private key is
written to the state directory. Secrets go only to files of mode 0600; the database
holds their hashes or sealed forms.

On every start the audit log is anchored before anything is served: records are
MACed from the first one on, the database is compared with the anchor journal in
the state directory, and a broker whose database is behind it starts sealed
(``broker/audit_anchor.py``, ``broker/seal.py``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection

from gatepass.audit import JOURNAL_FILE, AnchorJournal, AuditEntry, AuditSigner
from gatepass.broker.admin import Admin
from gatepass.broker.audit_anchor import AuditAnchoring
from gatepass.broker.catalog import TargetCatalog
from gatepass.broker.credentials import CredentialService
from gatepass.broker.revocations import RevocationWorker
from gatepass.broker.seal import Seal
from gatepass.broker.service import Broker, LiveKeys
from gatepass.broker.status import TokenStatus
from gatepass.clock import Clock, SystemClock
from gatepass.config import Settings
from gatepass.engines import EngineContext, new_installation_id
from gatepass.engines.registry import build_engines
from gatepass.ids import new_agent_id
from gatepass.models import Agent
from gatepass.observability import Metrics, get_logger
from gatepass.policy import PolicyHolder
from gatepass.sealing import Sealer, load_sealer
from gatepass.secret import token_hash
from gatepass.store import ApiRole, Database, api_tokens, audit_log, clocks, keys
from gatepass.store import agents as agent_rows
from gatepass.tokens import (
    DPoPKey,
    DPoPVerifier,
    JWTIssuer,
    JWTVerifier,
    KeyRecord,
    KeyRing,
    MemoryReplayCache,
    NonceService,
    private_jwk,
    rotate,
)

__all__ = ["Runtime", "build_runtime", "write_secret_file"]

_log = get_logger("gatepass.bootstrap")
_AUDIT_KEY = "audit_key"
_NONCE_SECRET = "dpop_nonce_secret"  # noqa: S105 - a setting name
_INSTALLATION_ID = "installation_id"


@dataclass(slots=True)
class Runtime:
    """Everything a running broker is made of."""

    settings: Settings
    database: Database
    broker: Broker
    admin: Admin
    status: TokenStatus
    credentials: CredentialService
    revocations: RevocationWorker
    metrics: Metrics
    seal: Seal
    anchoring: AuditAnchoring


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


def _audit_key(conn: Connection, sealer: Sealer) -> bytes:
    """Return the sealed audit key, creating it on a new database."""
    audit_log.ensure_audit_head(conn)
    sealed_audit = keys.read_setting(conn, _AUDIT_KEY)
    if sealed_audit is None:
        _, sealed_audit = AuditSigner.generate(sealer)
        keys.write_setting(conn, _AUDIT_KEY, sealed_audit)
    return sealed_audit


def _first_start(
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


def _installation_id(conn: Connection) -> str:
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
            at=now, kind=kind, outcome="ok", actor="system", subject=subject, data=data
        ),
    )


def _anchored_clock(database: Database, settings: Settings) -> SystemClock:
    """
    Return the broker's clock, anchored to the database's time.

    On PostgreSQL the database server's clock is the one clock every replica shares;
    on any backend the clock never starts before the newest time already recorded,
    so a restart with the wall clock set back cannot make leases younger. From then
    on the clock advances with the boot-time clock, immune to wall-clock steps.
    """
    with database.reading() as conn:
        anchor = clocks.database_time(conn)
        floor = clocks.newest_recorded_time(conn)
    clock = SystemClock(anchor=anchor, floor=floor)
    offset = clock.wall_offset()
    if abs(offset) > settings.tokens.clock_leeway_seconds:
        _log.warning(
            "wall clock disagrees with the database's time; using the database's",
            offset_seconds=round(offset, 1),
        )
    return clock


def build_runtime(settings: Settings, *, clock: Clock | None = None) -> Runtime:
    """
    Build a ready broker: store, keys, policies, verifiers, use cases.

    Args:
        settings: validated configuration.
        clock: the time source (tests pass a FrozenClock).

    Raises:
        ConfigurationError: policies, keys or the master key are unusable.
        StoreError: the database cannot be reached.
    """
    state = settings.server.state_dir
    state.mkdir(parents=True, exist_ok=True, mode=0o700)
    sealer = load_sealer(state / "master.key")
    database = Database(settings.store_url, pool_size=settings.store.pool_size)
    database.create_schema()
    clock = clock or _anchored_clock(database, settings)
    with database.transaction() as conn:
        sealed_audit = _audit_key(conn, sealer)
    signer = AuditSigner.from_sealed(sealed_audit, sealer)
    mac = signer.mac()
    # Every record is MACed from the first one on (the key lives sealed in the
    # database, so it can only be installed once the database is open).
    database.anchor_with(mac=mac)
    with database.transaction() as conn:
        records, sealed_nonce, files = _first_start(
            conn, settings=settings, sealer=sealer, now=clock.now()
        )
        installation_id = _installation_id(conn)
    # Secret files are written only after the hashes committed, so a crash leaves
    # no token file without its record.
    for path, content in files:
        write_secret_file(path, content)
    policies = PolicyHolder(settings.policy.directory, clock=clock)
    ring = KeyRing(records, sealer)
    live_keys = LiveKeys(ring)
    metrics = Metrics()
    leeway = dt.timedelta(seconds=settings.tokens.clock_leeway_seconds)
    replay = MemoryReplayCache(clock)
    nonces = NonceService(
        sealer.unseal(sealed_nonce),
        clock=clock,
        lifetime=dt.timedelta(seconds=settings.dpop.nonce_lifetime_seconds),
    )
    broker = Broker(
        settings=settings,
        database=database,
        clock=clock,
        catalog=TargetCatalog(settings.target_list()),
        policies=policies,
        issuer=JWTIssuer(ring, issuer=settings.server.issuer),
        key_source=live_keys,
        verifier=JWTVerifier(
            live_keys, issuer=settings.server.issuer, clock=clock, leeway=leeway
        ),
        dpop=DPoPVerifier(
            clock=clock,
            replay=replay,
            nonces=nonces,
            require_nonce=settings.dpop.require_nonce,
            max_age=dt.timedelta(seconds=settings.dpop.max_age_seconds),
        ),
        replay=replay,
        metrics=metrics,
    )
    broker.engines = build_engines(
        [(target.to_target(), target.engine) for target in settings.targets],
        context=EngineContext(
            state_dir=state,
            sealer=sealer,
            clock=clock,
            installation_id=installation_id,
        ),
        metrics=metrics,
        timeout=dt.timedelta(seconds=settings.engines.call_timeout_seconds),
    )
    revocations = RevocationWorker(
        broker,
        stale_after=dt.timedelta(seconds=settings.engines.call_timeout_seconds + 5),
    )
    broker.revocation_runner = revocations.run
    journal = AnchorJournal(
        state / JOURNAL_FILE, mac, clock=clock, on_failure=broker.seal.journal_failed
    )
    database.anchor_with(mac=mac, on_commit=journal.record_commit)
    anchoring = AuditAnchoring(
        broker, signer=signer, mac=mac, journal=journal, revocations=revocations
    )
    admin = Admin(
        broker,
        signer=signer,
        ring_factory=lambda found: KeyRing(found, sealer),
        sealer=sealer,
        anchoring=anchoring,
    )
    anchoring.start()
    return Runtime(
        settings=settings,
        database=database,
        broker=broker,
        admin=admin,
        status=TokenStatus(broker),
        credentials=CredentialService(broker),
        revocations=revocations,
        metrics=metrics,
        seal=broker.seal,
        anchoring=anchoring,
    )
