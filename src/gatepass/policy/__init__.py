"""
May they? Cedar policy-as-code for gatepass.

The broker asks a :class:`PolicyEngine` one question per (agent, action, target,
task, time) and gets one :class:`Decision` each; :func:`verdict_of` folds a
request's decisions into the ``Grant | NeedsApproval | Deny`` it acts on, with
the strictest issuance profile of the allowing permits (``@ttl``, ``@approval``).
:class:`CedarPolicySet` answers from a directory of ``*.cedar`` files and a
``schema.cedarschema``;
:class:`PolicyHolder` keeps the live set and hot-reloads it; :func:`run_cases` runs
TOML policy tests against a set. Deny by default, and any evaluation error is a
deny.
"""

from __future__ import annotations

from gatepass.policy.cases import CaseReport, CaseResult, run_cases
from gatepass.policy.cedar import CedarPolicySet
from gatepass.policy.facts import (
    DELEGATE,
    OPEN_TASK,
    AgentFacts,
    Decision,
    DelegationFacts,
    DelegationRequest,
    PolicyEngine,
    PolicyRequest,
    TargetFacts,
    TaskFacts,
)
from gatepass.policy.holder import PolicyHolder, ReloadResult
from gatepass.policy.profiles import IssuanceProfile
from gatepass.policy.sources import SCHEMA_FILE, PolicyInfo
from gatepass.policy.verdicts import Deny, Grant, NeedsApproval, Verdict, verdict_of

__all__ = [
    "DELEGATE",
    "OPEN_TASK",
    "SCHEMA_FILE",
    "AgentFacts",
    "CaseReport",
    "CaseResult",
    "CedarPolicySet",
    "Decision",
    "DelegationFacts",
    "DelegationRequest",
    "Deny",
    "Grant",
    "IssuanceProfile",
    "NeedsApproval",
    "PolicyEngine",
    "PolicyHolder",
    "PolicyInfo",
    "PolicyRequest",
    "ReloadResult",
    "TargetFacts",
    "TaskFacts",
    "Verdict",
    "run_cases",
    "verdict_of",
]
