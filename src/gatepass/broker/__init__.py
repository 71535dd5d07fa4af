"""
The broker's use cases, composed from identity, policy, tokens, audit and store.

``build_runtime(settings)`` assembles a ready broker; its :class:`Broker` holds one
object per use case (``broker.tokens.exchange``, ``broker.closing.close_task``,
``broker.agents.add``...), each built over one frozen :class:`BrokerContext`. The
faces (``gatepass.api``, ``gatepass.cli``) import only this package.
"""

from __future__ import annotations

from gatepass.broker.approval_votes import Viewer
from gatepass.broker.audit_log import AuditFilter, ProxyCall
from gatepass.broker.bootstrap import build_runtime, write_secret_file
from gatepass.broker.callers import Caller, Permission, permissions_of
from gatepass.broker.catalog import TargetCatalog
from gatepass.broker.console_access import ConsoleLink, ConsoleSession
from gatepass.broker.console_views import (
    ChartSeries,
    LeaseFilter,
    Overview,
    TaskFilter,
    TaskPage,
)
from gatepass.broker.context import BrokerContext
from gatepass.broker.context_signals import SignalRequest
from gatepass.broker.facade import Broker, Runtime
from gatepass.broker.health import Readiness
from gatepass.broker.idempotency import idempotency_key_from_headers
from gatepass.broker.jobs import run_jobs
from gatepass.broker.live_keys import LiveKeys
from gatepass.broker.operators import check_registration
from gatepass.broker.policy_admin import PolicyQuestion
from gatepass.broker.reads import TreeNode
from gatepass.broker.requests import (
    AcceptDelegationRequest,
    AccessTokenRequest,
    AgentRegistration,
    CredentialRequest,
    DelegationGrantRequest,
    Introspection,
    OpenTaskRequest,
    OperatorRegistration,
    RevocationRequest,
    ServiceTokenRequest,
    TaskDetails,
    TokenResponse,
)
from gatepass.broker.service_tokens import IssuedToken
from gatepass.broker.ssf_delivery import parse_poll_request
from gatepass.broker.task_access import PresentedTaskToken
from gatepass.broker.trail import Attempt

__all__ = [
    "AcceptDelegationRequest",
    "AccessTokenRequest",
    "AgentRegistration",
    "Attempt",
    "AuditFilter",
    "Broker",
    "BrokerContext",
    "Caller",
    "ChartSeries",
    "ConsoleLink",
    "ConsoleSession",
    "CredentialRequest",
    "DelegationGrantRequest",
    "Introspection",
    "IssuedToken",
    "LeaseFilter",
    "LiveKeys",
    "OpenTaskRequest",
    "OperatorRegistration",
    "Overview",
    "Permission",
    "PolicyQuestion",
    "PresentedTaskToken",
    "ProxyCall",
    "Readiness",
    "RevocationRequest",
    "Runtime",
    "ServiceTokenRequest",
    "SignalRequest",
    "TargetCatalog",
    "TaskDetails",
    "TaskFilter",
    "TaskPage",
    "TokenResponse",
    "TreeNode",
    "Viewer",
    "build_runtime",
    "check_registration",
    "idempotency_key_from_headers",
    "parse_poll_request",
    "permissions_of",
    "run_jobs",
    "write_secret_file",
]
