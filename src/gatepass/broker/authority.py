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
from gatepass.broker.signal_board import SignalBoard
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
from gatepass.policy import (
    DELEGATE,
    Decision,
    DelegationRequest,
    Deny,
    Grant,
    IssuanceProfile,
    NeedsApproval,
    PolicyEngine,
    PolicyHolder,
    PolicyRequest,
    verdict_of,
)
from gatepass.policy.profiles import NO_PROFILE

__all__ = ["Authority", "require_target_in_task"]


def require_target_in_task(
    target: Target, task: Task, actions: tuple[str, ...]
) -> None:
    """
    Refuse a target the task did not name, or an action the target (or task) lacks.

    Raises:
        InvalidTargetError: the target is outside the task.
        InvalidScopeError: an action is not offered by the target, or is outside
            a delegated task's actions.
    """
    if target.name not in task.targets:
        raise InvalidTargetError("target is outside the task")
    if any(action not in target.actions for action in actions):
        raise InvalidScopeError("scope names an action the target does not offer")
    if task.actions is not None and any(a not in task.actions for a in actions):
        # A delegated task may be granted only the actions it was delegated.
        raise InvalidScopeError("scope names an action outside the task")


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
        board: the context signals in force; every request is decided with
            their facts (``principal.risk``, ``context.environment_frozen``...).
    """

    def __init__(
        self,
        policies: PolicyHolder,
        *,
        catalog: TargetCatalog,
        tokens: TokenSettings,
        metrics: Metrics,
        board: SignalBoard | None = None,
    ) -> None:
        """Keep the collaborators."""
        self._policies = policies
        self._catalog = catalog
        self._tokens = tokens
        self._metrics = metrics
        self._board = board or SignalBoard()

    def decide(self, requests: list[PolicyRequest]) -> list[Decision]:
        """Ask the live policy set; any evaluation error is already a deny."""
        return self._decide_with(self._policies.current, requests)

    def _decide_with(
        self, policy_set: PolicyEngine, requests: list[PolicyRequest]
    ) -> list[Decision]:
        requests = self._board.enrich(requests)
        decisions = policy_set.decide(requests)
        for request, decision in zip(requests, decisions, strict=True):
            outcome = "allow" if decision.allowed else "deny"
            self._metrics.decisions.labels(action=request.action, outcome=outcome).inc()
        return decisions

    def authorize(
        self, requests: list[PolicyRequest], attempt: Attempt
    ) -> Grant | NeedsApproval:
        """
        Decide, record the verdict on the attempt, and raise on a deny.

        The attempt's audit data gets the deciding policy ids, the digest of the
        policy set that decided (read once, so a reload in between cannot mix two
        sets), any evaluation errors, and the issuance profile when a permit set
        one (``@ttl``, ``@approval``...).

        Returns:
            ``Grant`` or ``NeedsApproval``; the caller must not issue on a
            ``NeedsApproval`` without a redeemed approval.

        Raises:
            AccessDeniedError: some decision denied (or failed, which is a deny).
        """
        policy_set = self._policies.current
        decisions = self._decide_with(policy_set, requests)
        verdict = verdict_of(decisions)
        policy_ids = sorted({pid for d in decisions for pid in d.policy_ids})
        errors = [error for d in decisions for error in d.errors]
        attempt.data["policy_ids"] = policy_ids
        attempt.data["policy_digest"] = policy_set.digest
        if errors:
            attempt.data["policy_errors"] = errors[:5]
        if isinstance(verdict, Deny):
            denied = [
                (request, decision)
                for request, decision in zip(requests, decisions, strict=True)
                if not decision.allowed
            ]
            raise AccessDeniedError(_denial(denied))
        if verdict.profile != NO_PROFILE:
            attempt.data["profile"] = verdict.profile.to_json()
        return verdict

    def decide_delegation(
        self, request: DelegationRequest, attempt: Attempt
    ) -> Decision:
        """
        Decide a ``Delegate`` request, record it on the attempt, refuse a deny.

        Raises:
            AccessDeniedError: denied (or an evaluation error), or a permit asks
                for approval (a delegation grant cannot wait for one; the child's
                own requests can).
        """
        policy_set = self._policies.current
        decision = policy_set.decide_delegation(request)
        outcome = "allow" if decision.allowed else "deny"
        self._metrics.decisions.labels(action=DELEGATE, outcome=outcome).inc()
        attempt.data["policy_ids"] = list(decision.policy_ids)
        attempt.data["policy_digest"] = policy_set.digest
        if decision.errors:
            attempt.data["policy_errors"] = list(decision.errors[:5])
        if not decision.allowed:
            raise AccessDeniedError(
                "policy evaluation failed; denied"
                if decision.errors
                else "policy denied the delegation"
            )
        if decision.profile.needs_approval:
            raise AccessDeniedError("a delegation cannot wait for approval")
        return decision

    def grant(
        self, requests: list[PolicyRequest], attempt: Attempt, *, why: str
    ) -> Grant:
        """
        Decide as :meth:`authorize`, for a path with no approval step.

        Raises:
            AccessDeniedError: denied, or the request would need approval (``why``
                says why this path cannot wait for one).
        """
        verdict = self.authorize(requests, attempt)
        if isinstance(verdict, NeedsApproval):
            raise AccessDeniedError(why)
        return verdict

    @property
    def policy_digest(self) -> str:
        """The digest of the live policy set."""
        return self._policies.current.digest

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

    def task_ttl(self, details: TaskDetails, profile: IssuanceProfile) -> dt.timedelta:
        """Return min(asked, broker's task cap, the policy's cap)."""
        caps = [
            details.max_ttl
            or dt.timedelta(seconds=self._tokens.task_default_ttl_seconds),
            dt.timedelta(seconds=self._tokens.task_max_ttl_seconds),
        ]
        if profile.ttl is not None:
            caps.append(profile.ttl)
        return min(caps)

    def access_ttl(
        self,
        profile: IssuanceProfile,
        target: Target,
        task: Task,
        now: dt.datetime,
        *,
        requested: dt.timedelta | None = None,
        window: dt.datetime | None = None,
    ) -> dt.timedelta:
        """
        Return the credential's lifetime in whole seconds: the minimum of every cap.

        Args:
            profile: the verdict's profile (its ``ttl`` is the policy's cap).
            target: the target (its ``max_ttl``).
            task: the task (its remaining life).
            now: the moment of issuance.
            requested: the TTL the agent asked for, if any.
            window: the end of an approval's redemption window, if issued under one.

        Raises:
            InvalidGrantError: the task has no life left.
        """
        tokens = self._tokens
        # Ground rule 10: the minimum of the policy's cap, the target's cap and the
        # task's remaining life (and what the agent asked for, and what remains of
        # an approval's window).
        caps = [
            profile.ttl
            if profile.ttl is not None
            else dt.timedelta(seconds=tokens.access_default_ttl_seconds),
            target.max_ttl,
            dt.timedelta(seconds=tokens.access_max_ttl_seconds),
            task.expires_at - now,
        ]
        if requested is not None:
            caps.append(requested)
        if window is not None:
            caps.append(window - now)
        ttl = dt.timedelta(seconds=int(min(caps).total_seconds()))
        if ttl <= dt.timedelta(0):
            raise InvalidGrantError("task is closed")
        return ttl
