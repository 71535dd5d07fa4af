"""
The broker as its faces see it: every use case, grouped by what it acts on.

``gatepass.api`` and ``gatepass.cli`` import only this (through
``gatepass.broker``); each field is one use-case module's object, built once by
``broker/bootstrap.py`` over one frozen :class:`BrokerContext`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from gatepass.broker.agents import Agents
from gatepass.broker.approval_votes import ApprovalVotes
from gatepass.broker.audit_anchor import AuditAnchoring
from gatepass.broker.audit_log import AuditLog
from gatepass.broker.callers import Callers
from gatepass.broker.catalog import TargetCatalog
from gatepass.broker.closing import Closing
from gatepass.broker.console_access import ConsoleAccess
from gatepass.broker.console_views import ConsoleViews
from gatepass.broker.context import BrokerContext
from gatepass.broker.context_signals import ContextSignals
from gatepass.broker.engine_credentials import IssueEngineCredential
from gatepass.broker.evidence import EvidenceExport
from gatepass.broker.frameworks import FrameworkReport
from gatepass.broker.health import Health
from gatepass.broker.keys import SigningKeys
from gatepass.broker.notifications import Notifier
from gatepass.broker.operators import Operators
from gatepass.broker.policy_admin import PolicyAdmin
from gatepass.broker.quarantine import Quarantine
from gatepass.broker.reads import Reads
from gatepass.broker.renewal import RenewCredential
from gatepass.broker.reuse import ReuseDetector
from gatepass.broker.revocation_feed import RevocationFeed
from gatepass.broker.revocations import RevocationWorker
from gatepass.broker.service_tokens import ServiceTokens
from gatepass.broker.ssf_delivery import SSFDelivery
from gatepass.broker.ssf_streams import SSFStreams
from gatepass.broker.sweep import Sweeper
from gatepass.broker.token_endpoint import TokenEndpoint
from gatepass.broker.token_status import TokenStatus
from gatepass.broker.transmitter_keys import transmitter_keys
from gatepass.config import Settings
from gatepass.observability import Metrics
from gatepass.ssf.receive import SETVerifier
from gatepass.store import Database

__all__ = ["Broker", "Runtime", "assemble"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Broker:
    """
    Every use case of the broker.

    Attributes:
        settings: the validated configuration (limits the faces enforce).
        catalog: the configured targets.
        tokens: the token endpoint (open a task, issue an access token).
        token_status: RFC 7662 introspection and RFC 7009 revocation.
        issue_credential: engine credentials (``POST /v1/credentials``).
        renew_credential: extending a live engine credential.
        closing: closing tasks and revoking leases.
        agents: the agent registry.
        approvals: approvers' side of step-up approvals (list, show, vote).
        reads: operators' reads of tasks and leases.
        policy: the live policy set.
        keys: the signing keys.
        audit: the audit log.
        callers: API-token authentication and permissions.
        operators: the named humans who administer, approve and audit.
        api_tokens: service tokens and revoking any API token.
        feed: revoked access tokens, for streams.
        health: readiness and metrics.
        sweeper: the expiry sweep.
        revocations: drives revocations through engines; reaps orphans.
        notifier: approval notifications (outbox and webhook delivery).
        evidence: evidence bundles of tasks (issue 14).
        frameworks: the framework report (issue 14).
        ssf_streams: the SSF transmitter's discovery, receivers and streams.
        ssf_delivery: SETs made from revocations, pushed and polled.
        console: console sign-in (login links, sessions).
        console_views: the console's tenant-scoped reads and actions.
        context_signals: context signals (own and SSF) and their re-evaluation.
        reuse: credential-reuse events and their responses.
    """

    settings: Settings
    catalog: TargetCatalog
    tokens: TokenEndpoint
    token_status: TokenStatus
    issue_credential: IssueEngineCredential
    renew_credential: RenewCredential
    closing: Closing
    agents: Agents
    approvals: ApprovalVotes
    reads: Reads
    policy: PolicyAdmin
    keys: SigningKeys
    audit: AuditLog
    callers: Callers
    operators: Operators
    api_tokens: ServiceTokens
    feed: RevocationFeed
    health: Health
    sweeper: Sweeper
    revocations: RevocationWorker
    notifier: Notifier
    evidence: EvidenceExport
    frameworks: FrameworkReport
    ssf_streams: SSFStreams
    ssf_delivery: SSFDelivery
    console: ConsoleAccess
    console_views: ConsoleViews
    context_signals: ContextSignals
    reuse: ReuseDetector


@dataclass(frozen=True, slots=True, kw_only=True)
class Runtime:
    """
    A running broker: its use cases and what holds them together.

    Faces use :attr:`broker`; :attr:`database` and :attr:`context` are for the
    process that owns them (``gatepass serve`` shuts the database down) and for
    tests that look at stored state.

    Attributes:
        settings: the validated configuration.
        broker: every use case.
        context: the collaborators the use cases share.
        database: the store.
        anchoring: the audit log's anchoring (start-up checks, journal).
    """

    settings: Settings
    broker: Broker
    context: BrokerContext
    database: Database
    anchoring: AuditAnchoring

    @property
    def metrics(self) -> Metrics:
        """The broker's metrics."""
        return self.context.metrics


def assemble(
    context: BrokerContext,
    *,
    revocations: RevocationWorker,
    audit: AuditLog,
    set_verifier: SETVerifier | None = None,
) -> Broker:
    """Build every use case over one context."""
    closing = Closing(context, revocations)
    ssf_streams = SSFStreams(context)
    agents = Agents(context, revocations)
    approvals = ApprovalVotes(context)
    policy = PolicyAdmin(context, closing)
    reuse = ReuseDetector(
        context, closing=closing, quarantine=Quarantine(context, agents)
    )
    return Broker(
        settings=context.settings,
        catalog=context.catalog,
        tokens=TokenEndpoint(context, reuse=reuse),
        token_status=TokenStatus(context, closing, reuse=reuse),
        issue_credential=IssueEngineCredential(context, revocations, reuse=reuse),
        renew_credential=RenewCredential(context),
        closing=closing,
        agents=agents,
        approvals=approvals,
        reads=Reads(context),
        policy=policy,
        keys=SigningKeys(context),
        audit=audit,
        callers=Callers(context),
        operators=Operators(context),
        api_tokens=ServiceTokens(context),
        feed=RevocationFeed(context),
        health=Health(context),
        sweeper=Sweeper(context, revocations),
        revocations=revocations,
        notifier=context.notifier,
        evidence=EvidenceExport(context, audit),
        frameworks=FrameworkReport(context),
        ssf_streams=ssf_streams,
        ssf_delivery=SSFDelivery(context, ssf_streams),
        console=ConsoleAccess(context),
        console_views=ConsoleViews(
            context,
            audit=audit,
            approvals=approvals,
            closing=closing,
            agents=agents,
        ),
        context_signals=ContextSignals(
            context,
            closing=closing,
            policy=policy,
            revocations=revocations,
            verifier=set_verifier
            or SETVerifier(
                context.settings.signals,
                clock=context.clock,
                keys=functools.partial(transmitter_keys, clock=context.clock),
            ),
        ),
        reuse=reuse,
    )
