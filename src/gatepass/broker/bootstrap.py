"""
Assemble a broker from its settings: store, keys, policies, verifiers, use cases.

Everything is built in dependency order and frozen into one
:class:`~gatepass.broker.context.BrokerContext`; nothing is wired after
construction. First-start work (keys, tokens, the demo agent) is in
``broker/first_start.py``.

On every start the audit log is anchored before anything is served: records are
MACed from the first one on, the database is compared with the anchor journal in
the state directory, and a broker whose database is behind it starts sealed
(``broker/audit_anchor.py``, ``broker/seal.py``).
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping

from gatepass.audit import JOURNAL_FILE, AnchorJournal, AuditSigner
from gatepass.broker.audit_anchor import AuditAnchoring
from gatepass.broker.audit_log import AuditLog
from gatepass.broker.authority import Authority
from gatepass.broker.catalog import TargetCatalog
from gatepass.broker.context import BrokerContext
from gatepass.broker.directory import Directory
from gatepass.broker.facade import Runtime, assemble
from gatepass.broker.first_start import (
    audit_key,
    first_start,
    installation_id,
    write_secret_file,
)
from gatepass.broker.live_keys import LiveKeys
from gatepass.broker.notifications import Notifier
from gatepass.broker.revocations import RevocationWorker
from gatepass.broker.seal import Seal
from gatepass.broker.signal_board import SignalBoard
from gatepass.broker.signals import Signals
from gatepass.broker.task_access import TaskAccess
from gatepass.broker.trail import AuditTrail
from gatepass.broker.transmitter_keys import transmitter_keys
from gatepass.clock import Clock, SystemClock
from gatepass.config import Settings
from gatepass.engines import (
    EngineContext,
    GuardedEngine,
    SecretEngine,
    build_engines,
)
from gatepass.identity import FederatedVerifier
from gatepass.observability import Metrics, get_logger, redact_values
from gatepass.policy import PolicyHolder
from gatepass.sealing import load_sealer
from gatepass.ssf.receive import SETVerifier
from gatepass.store import Database, clocks, context_signals
from gatepass.tokens import (
    DPoPVerifier,
    JWTIssuer,
    JWTVerifier,
    KeyRing,
    MemoryReplayCache,
    NonceService,
)

__all__ = ["build_runtime", "write_secret_file"]

_log = get_logger("gatepass.bootstrap")


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


def build_runtime(
    settings: Settings,
    *,
    clock: Clock | None = None,
    engines: Mapping[str, SecretEngine] | None = None,
) -> Runtime:
    """
    Build a ready broker.

    Args:
        settings: validated configuration.
        clock: the time source (tests pass a FrozenClock).
        engines: engines to serve some targets with instead of building them from
            their configuration, by target name (tests use an in-memory engine).

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
        sealed_audit = audit_key(conn, sealer)
    signer = AuditSigner.from_sealed(sealed_audit, sealer)
    mac = signer.mac()
    # Every record is MACed from the first one on (the key lives sealed in the
    # database, so it can only be installed once the database is open).
    database.anchor_with(mac=mac)
    with database.transaction() as conn:
        records, sealed_nonce, files = first_start(
            conn, settings=settings, sealer=sealer, now=clock.now()
        )
        installation = installation_id(conn)
    # Secret files are written only after the hashes committed, so a crash leaves
    # no token file without its record.
    for path, content in files:
        write_secret_file(path, content)
    metrics = Metrics()
    ring = KeyRing(records, sealer)
    issuer = JWTIssuer(ring, issuer=settings.server.issuer)
    live_keys = LiveKeys(ring, issuer=issuer)
    leeway = dt.timedelta(seconds=settings.tokens.clock_leeway_seconds)
    replay = MemoryReplayCache(clock)
    nonces = NonceService(
        sealer.unseal(sealed_nonce),
        clock=clock,
        lifetime=dt.timedelta(seconds=settings.dpop.nonce_lifetime_seconds),
    )
    dpop = DPoPVerifier(
        clock=clock,
        replay=replay,
        nonces=nonces,
        require_nonce=settings.dpop.require_nonce,
        max_age=dt.timedelta(seconds=settings.dpop.max_age_seconds),
    )
    verifier = JWTVerifier(
        live_keys, issuer=settings.server.issuer, clock=clock, leeway=leeway
    )
    catalog = TargetCatalog(settings.target_list())
    policies = PolicyHolder(settings.policy.directory, clock=clock)
    directory = Directory(database, clock=clock)
    timeout = dt.timedelta(seconds=settings.engines.call_timeout_seconds)
    given = dict(engines or {})
    guarded = build_engines(
        [
            (target.to_target(), target.engine)
            for target in settings.targets
            if target.name not in given
        ],
        context=EngineContext(
            state_dir=state, sealer=sealer, clock=clock, installation_id=installation
        ),
        metrics=metrics,
        timeout=timeout,
    )
    for name, engine in given.items():
        guarded[name] = GuardedEngine(
            engine, target=name, metrics=metrics, timeout=timeout
        )
    seal = Seal(metrics)
    federation = (
        FederatedVerifier.from_settings(settings.identity, clock=clock, leeway=leeway)
        if settings.identity.issuers
        else None
    )
    trail = AuditTrail(database, clock=clock, metrics=metrics)
    # Webhook secrets are read now, once: a missing or empty file stops the start.
    notifier = Notifier.from_settings(
        settings, database=database, trail=trail, clock=clock, metrics=metrics
    )
    # The context signals in force, read back from the store before serving.
    board = SignalBoard()
    with database.reading() as conn:
        board.load(
            (s.kind, s.scope, s.value, s.until)
            for s in context_signals.list_signals(conn, clock.now())
        )
    context = BrokerContext(
        settings=settings,
        database=database,
        clock=clock,
        catalog=catalog,
        policies=policies,
        keys=live_keys,
        issuer=issuer,
        verifier=verifier,
        dpop=dpop,
        replay=replay,
        metrics=metrics,
        engines=guarded,
        seal=seal,
        trail=trail,
        directory=directory,
        signals=Signals(),
        authority=Authority(
            policies,
            catalog=catalog,
            tokens=settings.tokens,
            metrics=metrics,
            board=board,
        ),
        task_access=TaskAccess(
            verifier=verifier,
            dpop=dpop,
            directory=directory,
            clock=clock,
            issuer_url=settings.server.issuer,
        ),
        federation=federation,
        signer=signer,
        sealer=sealer,
        notifier=notifier,
        signal_board=board,
    )
    revocations = RevocationWorker(
        context,
        stale_after=dt.timedelta(seconds=settings.engines.call_timeout_seconds + 5),
    )
    journal = AnchorJournal(
        state / JOURNAL_FILE, mac, clock=clock, on_failure=seal.journal_failed
    )
    database.anchor_with(mac=mac, on_commit=journal.record_commit)
    anchoring = AuditAnchoring(
        context, signer=signer, mac=mac, journal=journal, revocations=revocations
    )
    anchoring.start()
    # Push tokens are read now, once: a missing or empty file stops the start.
    set_verifier = SETVerifier(
        settings.signals,
        clock=clock,
        keys=functools.partial(transmitter_keys, clock=clock),
    )
    redact_values(set_verifier.secrets)
    broker = assemble(
        context,
        revocations=revocations,
        audit=AuditLog(context, anchoring),
        set_verifier=set_verifier,
    )
    return Runtime(
        settings=settings,
        broker=broker,
        context=context,
        database=database,
        anchoring=anchoring,
    )
