"""
May this agent do this, for how long: the policy's answer and the lifetimes.

Every issuance asks :meth:`Authority.authorize` (deny by default, any evaluation
error a deny, the deciding ids and the policy digest recorded on the attempt) and
takes its lifetime from :meth:`Authority.access_ttl` or :meth:`Authority.task_ttl`
(ground rule 10: the minimum of every cap).
"""

from __future__ import annotations

import datetime as dt

from gatepass.broker.catalog import TargetCatalog
from gatepass.broker.requests import TaskDetails
from gatepass.broker.trail import Attempt
from gatepass.config import TokenSettings
from gatepass.errors import (
    AccessDeniedError,
    InvalidGrantError,
    InvalidScopeError,
    InvalidTargetError,
)
from gatepass.models import Target, Task
from gatepass.observability import Metrics
from gatepass.policy import Decision, PolicyEngine, PolicyHolder, PolicyRequest

__all__ = ["Authority", "require_target_in_task"]


def require_target_in_task(
    target: Target, task: Task, actions: tuple[str, ...]
) -> None:
    """
    Refuse a target the task did not name, or an action the target lacks.

    Raises:
        InvalidTargetError: the target is outside the task.
        InvalidScopeError: an action is not offered by the target.
    """
    if target.name not in task.targets:
        raise InvalidTargetError("target is outside the task")
    if any(action not in target.actions for action in actions):
        raise InvalidScopeError("scope names an action the target does not offer")


def _denial(denied: list[tuple[PolicyRequest, Decision]]) -> str:
    """
    Word a denial: the action and the target, never the deciding policy ids.

    The caller may be the agent itself, so which policies decided stays in the
    audit record (and in ``gatepass policy explain``, for operators).
    """
    request, decision = denied[0]
    what = f"{request.action} on target {request.target.name}"
    more = f" (and {len(denied) - 1} more)" if len(denied) > 1 else ""
    if decision.errors:
        return f"policy evaluation failed for {what}{more}; denied"
    return f"policy denied {what}{more}"


class Authority:
    """
    Policy decisions and lifetimes.

    Args:
        policies: the live policy set.
        catalog: the configured targets.
        tokens: the broker's token lifetimes.
        metrics: where decisions are counted.
    """

    def __init__(
        self,
        policies: PolicyHolder,
        *,
        catalog: TargetCatalog,
        tokens: TokenSettings,
        metrics: Metrics,
    ) -> None:
        """Keep the collaborators."""
        self._policies = policies
        self._catalog = catalog
        self._tokens = tokens
        self._metrics = metrics

    def decide(self, requests: list[PolicyRequest]) -> list[Decision]:
        """Ask the live policy set; any evaluation error is already a deny."""
        return self._decide_with(self._policies.current, requests)

    def _decide_with(
        self, policy_set: PolicyEngine, requests: list[PolicyRequest]
    ) -> list[Decision]:
        decisions = policy_set.decide(requests)
        for request, decision in zip(requests, decisions, strict=True):
            outcome = "allow" if decision.allowed else "deny"
            self._metrics.decisions.labels(action=request.action, outcome=outcome).inc()
        return decisions

    def authorize(
        self, requests: list[PolicyRequest], attempt: Attempt
    ) -> list[Decision]:
        """
        Decide, record the decision on the attempt, and raise unless all allow.

        The attempt's audit data gets the deciding policy ids, the digest of the
        policy set that decided (read once, so a reload in between cannot mix two
        sets) and any evaluation errors.

        Raises:
            AccessDeniedError: some decision denied (or failed, which is a deny).
        """
        policy_set = self._policies.current
        decisions = self._decide_with(policy_set, requests)
        policy_ids = sorted({pid for d in decisions for pid in d.policy_ids})
        errors = [error for d in decisions for error in d.errors]
        attempt.data["policy_ids"] = policy_ids
        attempt.data["policy_digest"] = policy_set.digest
        if errors:
            attempt.data["policy_errors"] = errors[:5]
        denied = [
            (request, decision)
            for request, decision in zip(requests, decisions, strict=True)
            if not decision.allowed
        ]
        if denied:
            raise AccessDeniedError(_denial(denied))
        return decisions

    def task_targets(self, details: TaskDetails) -> list[Target]:
        """
        Resolve the targets a task names, all in the task's environment.

        Raises:
            InvalidTargetError: a target is unknown or in another environment.
        """
        targets: list[Target] = []
        for reference in details.targets:
            target = self._catalog.resolve(reference)
            # Separate credentials per environment: a task lives in one.
            if target.environment != details.environment:
                raise InvalidTargetError(
                    f"target {target.name} is in environment {target.environment}, "
                    f"not {details.environment}"
                )
            if target not in targets:
                targets.append(target)
        return targets

    def task_ttl(self, details: TaskDetails, decisions: list[Decision]) -> dt.timedelta:
        """Return min(asked, broker's task cap, every policy cap)."""
        caps = [
            details.max_ttl
            or dt.timedelta(seconds=self._tokens.task_default_ttl_seconds),
            dt.timedelta(seconds=self._tokens.task_max_ttl_seconds),
        ]
        caps.extend(d.ttl_cap for d in decisions if d.ttl_cap is not None)
        return min(caps)

    def access_ttl(
        self, decisions: list[Decision], target: Target, task: Task, now: dt.datetime
    ) -> dt.timedelta:
        """
        Return min(policy cap, target cap, broker cap, task remaining), in seconds.

        Raises:
            InvalidGrantError: the task has no life left.
        """
        tokens = self._tokens
        policy_caps = [d.ttl_cap for d in decisions if d.ttl_cap is not None]
        # Ground rule 10: the minimum of the policy's cap, the target's cap and the
        # task's remaining life.
        ttl = min(
            min(policy_caps)
            if policy_caps
            else dt.timedelta(seconds=tokens.access_default_ttl_seconds),
            target.max_ttl,
            dt.timedelta(seconds=tokens.access_max_ttl_seconds),
            task.expires_at - now,
        )
        ttl = dt.timedelta(seconds=int(ttl.total_seconds()))
        if ttl <= dt.timedelta(0):
            raise InvalidGrantError("task is closed")
        return ttl
