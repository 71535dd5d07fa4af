"""
Delegate part of a task: the parent asks for a delegation token for one child agent.

RFC 8693 token exchange with the parent's task token as ``subject_token`` (DPoP
proof by the task's key), ``requested_token_type`` the gatepass delegation type,
``audience`` the child agent's id and an ``agent_task`` naming the narrower
sub-task. The sub-task can only shrink: its targets are the parent's, its actions
ones the parent could be granted, its life within the parent's; the tenant and the
environment never change; a chain is at most ``[delegation] max_depth`` deep and
holds no agent twice. Policy decides ``Delegate`` (principal the parent, resource
the child). The answer is a short-lived, single-use token naming the child in
``may_act`` (RFC 8693 §4.4); the child accepts it in ``broker/delegation_accept.py``.
"""

from __future__ import annotations

import datetime as dt

from gatepass.audit import Outcome
from gatepass.broker.context import BrokerContext
from gatepass.broker.facts import (
    agent_facts,
    delegation_facts,
    task_facts_of,
    task_requests,
)
from gatepass.broker.requests import DelegationGrantRequest, TokenResponse
from gatepass.broker.single_use import replay_error
from gatepass.broker.trail import Attempt, AuditRecorder
from gatepass.clock import to_epoch
from gatepass.errors import (
    AccessDeniedError,
    InvalidClientError,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    InvalidTargetError,
    TokenError,
)
from gatepass.ids import new_token_id
from gatepass.models import Agent, Target, Task
from gatepass.policy import DelegationFacts, DelegationRequest
from gatepass.single_use import SingleUse
from gatepass.store import Connection
from gatepass.store import replay as replay_rows
from gatepass.tokens import (
    DELEGATION_TOKEN_TYP,
    DELEGATION_TOKEN_TYPE,
    check_certificate_binding,
)

__all__ = ["GrantDelegation", "chain_of"]


def chain_of(task: Task) -> tuple[str, ...]:
    """Return the agents of a task's chain, its own agent first, the root's last."""
    return task.actors or (task.agent_id,)


class GrantDelegation:
    """
    The delegation-grant exchange.

    Args:
        context: the broker's collaborators.
    """

    def __init__(self, context: BrokerContext) -> None:
        """Keep the context."""
        self._context = context

    async def __call__(
        self,
        request: DelegationGrantRequest,
        dpop_proof: str | None,
        attempt: Attempt,
        *,
        certificate: str | None = None,
    ) -> TokenResponse:
        """
        Grant a delegation token for the child agent, or refuse.

        Raises:
            GatepassError: refused (``invalid_target``, ``invalid_scope``,
                ``invalid_request``, ``access_denied``...); the caller audits it.
        """
        context = self._context
        context.seal.require_unsealed()
        details = request.details
        attempt.data.update(
            child=request.child,
            targets=list(details.targets)[:32],
            actions=list(details.actions or ()),
        )
        parent = await context.task_access.subject_task(request.subject_token, attempt)
        proof = context.dpop.verify(
            dpop_proof,
            method="POST",
            url=context.token_endpoint,
            expected_jkt=parent.jkt,
        )
        try:
            check_certificate_binding(parent.x5t, certificate)
        except TokenError as error:
            raise InvalidGrantError(f"task token rejected: {error.detail}") from None
        if request.client_id is not None and request.client_id != parent.agent_id:
            raise InvalidClientError("client_id does not match the subject")
        delegator = await context.directory.active_agent(parent.agent_id)
        child = await self._child(request.child, parent)
        targets = self._targets(details.targets, parent)
        actions = tuple(details.actions or ())
        now = context.clock.now()
        self._check_shape(parent, details.environment, details.tenant)
        self._check_actions(
            delegator, parent, targets, actions, now=now, attempt=attempt
        )
        delegation = self._position(parent)
        ttl = self._ttl(parent, details.max_ttl, now)
        decision = context.authority.decide_delegation(
            DelegationRequest(
                parent=agent_facts(delegator, parent.agent_labels),
                child=agent_facts(child),
                task=task_facts_of(parent, now),
                targets=tuple(target.name for target in targets),
                actions=actions,
                purpose=details.purpose,
                ttl_seconds=int(ttl.total_seconds()),
                delegation=delegation,
                now=now,
            ),
            attempt,
        )
        if decision.profile.ttl is not None:
            ttl = min(ttl, decision.profile.ttl)
        grant_ttl = min(
            ttl, dt.timedelta(seconds=context.settings.delegation.grant_ttl_seconds)
        )
        jti = new_token_id()
        sub_task = {
            "type": "agent_task",
            "intent": details.intent,
            "purpose": details.purpose,
            "environment": parent.environment,
            "tenant": parent.tenant,
            "targets": [target.name for target in targets],
            "actions": list(actions),
            "max_ttl_seconds": int(ttl.total_seconds()),
        }
        token = context.issuer.sign(
            {
                "sub": parent.agent_id,
                "client_id": parent.agent_id,
                "aud": context.issuer_url,
                "iat": to_epoch(now),
                "exp": to_epoch(now + grant_ttl),
                "jti": jti,
                "txn": parent.id,
                "may_act": {"sub": child.id},
                "authorization_details": [sub_task],
            },
            typ=DELEGATION_TOKEN_TYP,
        )
        attempt.subject = parent.id
        attempt.data.update(
            child=child.id,
            grant_id=jti,
            depth=delegation.depth,
            ttl_seconds=int(ttl.total_seconds()),
            expires_at=(now + grant_ttl).isoformat(),
        )

        def record(conn: Connection, audit: AuditRecorder) -> SingleUse | None:
            replayed = replay_rows.claim_single_use(conn, [proof.single_use], now)
            if replayed is None:
                audit.record(conn, attempt, Outcome.ALLOW)
            return replayed

        replayed = await context.trail.write(record)
        if replayed is not None:
            raise replay_error(replayed)
        return TokenResponse(
            body={
                "access_token": token,
                "issued_token_type": DELEGATION_TOKEN_TYPE,
                "token_type": "N_A",
                "expires_in": int(grant_ttl.total_seconds()),
                "authorization_details": [sub_task],
            }
        )

    async def _child(self, child_id: str, parent: Task) -> Agent:
        if child_id in chain_of(parent):
            # No agent twice in one chain: no loops, no laundering a task through
            # oneself to reset its life.
            raise InvalidTargetError("the child agent is already in this chain")
        try:
            return await self._context.directory.active_agent(child_id)
        except AccessDeniedError:
            raise InvalidTargetError("no such active agent to delegate to") from None

    def _targets(self, references: tuple[str, ...], parent: Task) -> list[Target]:
        targets: list[Target] = []
        for reference in references:
            target = self._context.catalog.resolve(reference)
            if target.name not in parent.targets:
                raise InvalidTargetError(
                    f"target {target.name} is outside the delegating task"
                )
            if target not in targets:
                targets.append(target)
        return targets

    def _check_shape(self, parent: Task, environment: str, tenant: str | None) -> None:
        if environment != parent.environment:
            raise InvalidRequestError(
                "a delegated sub-task stays in its parent's environment"
            )
        if tenant is not None and tenant != parent.tenant:
            raise InvalidRequestError("the tenant never changes down a chain")
        limit = self._context.settings.delegation.max_depth
        if parent.depth + 1 > limit:
            raise InvalidRequestError(
                f"the delegation chain would be deeper than {limit}"
            )

    def _check_actions(
        self,
        delegator: Agent,
        parent: Task,
        targets: list[Target],
        actions: tuple[str, ...],
        *,
        now: dt.datetime,
        attempt: Attempt,
    ) -> None:
        """Each action must be one the parent could be granted on a target."""
        if parent.actions is not None and any(
            action not in parent.actions for action in actions
        ):
            raise InvalidScopeError("an action is outside the delegating task")
        checks = [
            (action, target)
            for action in actions
            for target in targets
            if action in target.actions
        ]
        offered = {action for action, _ in checks}
        missing = [action for action in actions if action not in offered]
        if missing:
            raise InvalidScopeError(f"no target of the sub-task offers {missing[0]!r}")
        decisions = self._context.authority.decide(
            task_requests(delegator, parent, checks, now)
        )
        for (action, target), decision in zip(checks, decisions, strict=True):
            if not decision.allowed:
                attempt.data["denied_for_parent"] = f"{action} on {target.name}"
                raise InvalidScopeError(
                    f"the delegating task could not be granted {action} on "
                    f"{target.name}"
                )

    def _position(self, parent: Task) -> DelegationFacts:
        """Where the child will sit: one deeper than the parent."""
        above = delegation_facts(parent)
        chain = chain_of(parent)
        return DelegationFacts(
            depth=parent.depth + 1,
            parent_agent=parent.agent_id,
            root_agent=chain[-1],
            root_purpose=parent.purpose if above is None else above.root_purpose,
            root_tenant=parent.tenant,
        )

    def _ttl(
        self, parent: Task, asked: dt.timedelta | None, now: dt.datetime
    ) -> dt.timedelta:
        left = dt.timedelta(seconds=int((parent.expires_at - now).total_seconds()))
        if left <= dt.timedelta(0):
            raise InvalidRequestError("the delegating task has no life left")
        if asked is not None and asked > left:
            # Asking for more life than the parent has is a widening, refused
            # like a widened target or action rather than silently shortened.
            raise InvalidRequestError(
                f"the sub-task would outlive the delegating task "
                f"({int(left.total_seconds())} s left)"
            )
        return left if asked is None else asked
