"""
The broker's use cases, composed from identity, policy, tokens, audit and store.

``build_runtime(settings)`` assembles a ready broker; ``Broker`` serves agents and
``Admin`` serves operators.
"""

from __future__ import annotations

from gatepass.broker.admin import Admin, Caller
from gatepass.broker.bootstrap import Runtime, build_runtime, write_secret_file
from gatepass.broker.catalog import TargetCatalog
from gatepass.broker.idempotency import idempotency_key_from_headers
from gatepass.broker.jobs import run_jobs
from gatepass.broker.service import (
    ACCESS_TOKEN_TYP,
    OPEN_TASK_ACTION,
    TASK_TOKEN_TYP,
    Broker,
    Introspection,
    LiveKeys,
    TokenResponse,
)
from gatepass.broker.status import TokenStatus

__all__ = [
    "ACCESS_TOKEN_TYP",
    "OPEN_TASK_ACTION",
    "TASK_TOKEN_TYP",
    "Admin",
    "Broker",
    "Caller",
    "Introspection",
    "LiveKeys",
    "Runtime",
    "TargetCatalog",
    "TokenResponse",
    "TokenStatus",
    "build_runtime",
    "idempotency_key_from_headers",
    "run_jobs",
    "write_secret_file",
]
