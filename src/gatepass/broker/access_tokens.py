"""
Issue an access token: a task token and a target become a token for that target.

RFC 8693 token exchange with the task token as the subject: the target must be one
the task named, each action one the target offers; policy decides each action; the
token's audience is exactly that target (RFC 8707), its lifetime the minimum of
every cap, its key the task's (``cnf.jkt``, RFC 9449). The lease row, the spent
proof and the audit record commit in one transaction, which also re-checks under a
share lock that the task is still open, before the token leaves (intent first).
"""

from __future__ import annotations

from gatepass.broker.approval_gate import ApprovalGate, ApprovalRequest
from gatepass.broker.authority import require_target_in_task
from gatepass.broker.context import BrokerContext
from gatepass.broker.facts import task_requests
from gatepass.broker.issuance import record_lease
from gatepass.broker.requests import AccessTokenRequest, TokenResponse
from gatepass.broker.single_use import confirmation
from gatepass.broker.trail import Attempt
from gatepass.clock import to_epoch
from gatepass.errors import (
    InvalidClientError,
    InvalidGrantError,
    TokenError,
)
from gatepass.ids import new_lease_id, new_token_id
from gatepass.leases import ACCESS_TOKEN_KIND
from gatepass.models import Lease, LeaseState
from gatepass.policy import NeedsApproval
from gatepass.tokens import (
    ACCESS_TOKEN_TYP,
    ACCESS_TOKEN_TYPE,
    actor_chain,
    check_certificate_binding,
)

__all__ = ["IssueAccessToken"]


class IssueAccessToken:
    """
    The access-token exchange.

    Args:
        context: the broker's collaborators.
    """

    def __init__(self, context: BrokerContext) -> None:
        """Keep the context."""
        self._context = context
        self._gate = ApprovalGate(context)

    async def __call__(
        self,
        request: AccessTokenRequest,
        dpop_proof: str | None,
        attempt: Attempt,
        *,
        certificate: str | None = None,
    ) -> TokenResponse:
        """
        Issue an access token for one target of the task.

        Args:
            request: the parsed access-token exchange.
            dpop_proof: the request's one ``DPoP`` header, or None.
            attempt: the request's audit attempt.
            certificate: the thumbprint of the connection's client certificate,
                if any; a task opened over mutual TLS needs the same one.

        Raises:
            GatepassError: the request is refused; the caller audits it.
        """
        context = self._context
        context.seal.require_unsealed()
        attempt.data.update(resource=request.resource[:200], actions=request.actions)
        task = await context.task_access.subject_task(request.subject_token, attempt)
        proof = context.dpop.verify(
            dpop_proof,
            method="POST",
            url=context.token_endpoint,
            expected_jkt=task.jkt,
        )
        try:
            check_certificate_binding(task.x5t, certificate)
        except TokenError as error:
            raise InvalidGrantError(f"task token rejected: {error.detail}") from None
        if request.client_id is not None and request.client_id != task.agent_id:
            raise InvalidClientError("client_id does not match the subject")
        target = context.catalog.resolve(request.resource)
        attempt.data["target"] = target.name
        require_target_in_task(target, task, request.actions)
        agent = await context.directory.active_agent(task.agent_id)
        now = context.clock.now()
        checks = [(action, target) for action in request.actions]
        verdict = context.authority.authorize(
            task_requests(agent, task, checks, now), attempt
        )
        redemption = None
        if isinstance(verdict, NeedsApproval):
            redemption = await self._gate.redeemable(
                ApprovalRequest(
                    verdict=verdict,
                    agent=agent,
                    task=task,
                    target=target,
                    kind=ACCESS_TOKEN_KIND,
                    actions=request.actions,
                    requested_ttl=request.requested_ttl,
                    approval_id=request.approval_id,
                    justification=request.justification,
                ),
                attempt,
            )
            now = context.clock.now()
        ttl = context.authority.access_ttl(
            verdict.profile,
            target,
            task,
            now,
            requested=request.requested_ttl,
            window=None if redemption is None else redemption.window,
        )
        lease_id = new_lease_id()
        lease = Lease(
            id=lease_id,
            task_id=task.id,
            agent_id=task.agent_id,
            target=target.name,
            kind=ACCESS_TOKEN_KIND,
            actions=request.actions,
            handle=new_token_id(),
            state=LeaseState.ACTIVE,
            issued_at=now,
            expires_at=now + ttl,
            policy_ids=tuple(attempt.data.get("policy_ids", ())),
        )
        scope = " ".join(request.actions)
        claims = {
            "sub": task.agent_id,
            "aud": target.uri,
            "client_id": task.agent_id,
            "iat": to_epoch(now),
            "exp": to_epoch(lease.expires_at),
            "jti": lease.handle,
            "scope": scope,
            "txn": task.id,
            "tenant": task.tenant,
            "env": task.environment,
            "cnf": confirmation(task.jkt, task.x5t),
        }
        if task.actors:
            # A delegated task's tokens show the verified chain (RFC 8693 §4.1).
            claims["act"] = actor_chain(task.actors)
        token = context.issuer.sign(claims, typ=ACCESS_TOKEN_TYP)
        attempt.data["lease_id"] = lease.id
        attempt.data["expires_at"] = lease.expires_at.isoformat()

        # Intent first: the lease and its audit record commit before the token
        # leaves.
        await record_lease(
            context,
            lease,
            spent=proof.single_use,
            now=now,
            attempt=attempt,
            closed=InvalidGrantError("task is closed"),
            also=None
            if redemption is None
            else self._gate.consume(
                redemption, lease_id=lease_id, actor=task.agent_id, now=now
            ),
        )
        context.metrics.issuances.labels(kind=lease.kind, target=target.name).inc()
        return TokenResponse(
            body={
                "access_token": token,
                "issued_token_type": ACCESS_TOKEN_TYPE,
                "token_type": "DPoP",
                "expires_in": int(ttl.total_seconds()),
                "scope": scope,
                "lease_id": lease.id,
            }
        )
