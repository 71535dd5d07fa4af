"""
The broker's use cases, composed from identity, policy, tokens, audit and store.

``build_runtime(settings)`` assembles a ready broker; its :class:`Broker` holds one
object per use case (``broker.tokens.exchange``, ``broker.closing.close_task``,
``broker.agents.add``...), each built over one frozen :class:`BrokerContext`. The
faces (``gatepass.api``, ``gatepass.cli``) import only this package.
"""

from __future__ import annotations

from gatepass.broker.audit_log import AuditFilter, ProxyCall
from gatepass.broker.bootstrap import build_runtime, write_secret_file
from gatepass.broker.callers import ADMIN_ONLY, Caller
from gatepass.broker.catalog import TargetCatalog
from gatepass.broker.context import BrokerContext
from gatepass.broker.facade import Broker, Runtime
from gatepass.broker.health import Readiness
from gatepass.broker.idempotency import idempotency_key_from_headers
from gatepass.broker.jobs import run_jobs
from gatepass.broker.live_keys import LiveKeys
from gatepass.broker.policy_admin import PolicyQuestion
from gatepass.broker.requests import (
    AccessTokenRequest,
    AgentRegistration,
    CredentialRequest,
    Introspection,
    OpenTaskRequest,
    RevocationRequest,
    TaskDetails,
    TokenResponse,
)
from gatepass.broker.task_access import PresentedTaskToken
from gatepass.broker.trail import Attempt

__all__ = [
    "ADMIN_ONLY",
    "AccessTokenRequest",
    "AgentRegistration",
    "Attempt",
    "AuditFilter",
    "Broker",
    "BrokerContext",
    "Caller",
    "CredentialRequest",
    "Introspection",
    "LiveKeys",
    "OpenTaskRequest",
    "PolicyQuestion",
    "PresentedTaskToken",
    "ProxyCall",
    "Readiness",
    "RevocationRequest",
    "Runtime",
    "TargetCatalog",
    "TaskDetails",
    "TokenResponse",
    "build_runtime",
    "idempotency_key_from_headers",
    "run_jobs",
    "write_secret_file",
]
