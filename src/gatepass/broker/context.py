"""
Everything the broker's use cases work with, assembled once by bootstrap.

A :class:`BrokerContext` is frozen: no collaborator is filled in after
construction, and every one is typed. Use cases take it (and, where they drive
revocations, the :class:`~gatepass.broker.revocations.RevocationWorker`) in their
constructors and keep no other shared state.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gatepass.audit import AuditSigner
from gatepass.broker.authority import Authority
from gatepass.broker.catalog import TargetCatalog
from gatepass.broker.directory import Directory
from gatepass.broker.live_keys import LiveKeys
from gatepass.broker.notifications import Notifier
from gatepass.broker.seal import Seal
from gatepass.broker.signal_board import SignalBoard
from gatepass.broker.signals import Signals
from gatepass.broker.task_access import TaskAccess
from gatepass.broker.trail import AuditTrail
from gatepass.clock import Clock
from gatepass.config import Settings
from gatepass.engines import GuardedEngine
from gatepass.identity import FederatedVerifier
from gatepass.observability import Metrics
from gatepass.policy import PolicyHolder
from gatepass.sealing import Sealer
from gatepass.store import Database
from gatepass.tokens import DPoPVerifier, JWTIssuer, JWTVerifier, ReplayCache

__all__ = ["BrokerContext"]


@dataclass(frozen=True, slots=True, kw_only=True)
class BrokerContext:
    """
    The broker's collaborators.

    Attributes:
        settings: the validated configuration.
        database: the store.
        clock: the time source (step-proof in production, frozen in tests).
        catalog: the configured targets.
        policies: the live policy set (hot-reloaded).
        keys: the signing key ring in force.
        issuer: signs task and access tokens.
        verifier: verifies the broker's own tokens.
        dpop: verifies DPoP proofs.
        replay: single-use values seen by this process.
        metrics: the broker's Prometheus registry.
        engines: the guarded engine of every engine-backed target, by name.
        seal: whether the broker may issue (audit anchoring).
        trail: the one way audit records are written.
        directory: cached agent and task lookups.
        signals: in-process signals (revocations happened, issuances in flight).
        authority: policy decisions and lifetimes.
        task_access: verifies task tokens presented back (cached by hash).
        federation: verifies federated workload tokens; None when no issuer is
            configured.
        signer: the audit key, which signs checkpoints.
        sealer: seals private keys at rest with the master key.
        notifier: queues approval notifications in the outbox (inside the
            approval's transaction) and delivers them to approver webhooks.
        signal_board: the context signals in force (agents' risk, frozen
            environments, tenants' incidents), which every decision reads.
    """

    settings: Settings
    database: Database
    clock: Clock
    catalog: TargetCatalog
    policies: PolicyHolder
    keys: LiveKeys
    issuer: JWTIssuer
    verifier: JWTVerifier
    dpop: DPoPVerifier
    replay: ReplayCache
    metrics: Metrics
    engines: Mapping[str, GuardedEngine]
    seal: Seal
    trail: AuditTrail
    directory: Directory
    signals: Signals
    authority: Authority
    task_access: TaskAccess
    federation: FederatedVerifier | None
    signer: AuditSigner
    sealer: Sealer
    notifier: Notifier
    signal_board: SignalBoard

    @property
    def issuer_url(self) -> str:
        """The broker's issuer URL (the ``iss`` of its tokens)."""
        return self.settings.server.issuer

    @property
    def token_endpoint(self) -> str:
        """The token endpoint's URL (the ``htu`` of token-request proofs)."""
        return self.settings.token_endpoint
