"""
Issue an engine-backed credential: a PostgreSQL role, a Redis user, an SSH certificate.

``POST /v1/credentials`` runs the same checks as the token endpoint (task token as a
DPoP-bound access token, target in the task, action offered, policy, TTL), then
issues *intent first*:

1. the lease is committed ``pending`` with the credential's deterministic name,
   together with an audit record of the intent (and the spent proof, and the
   idempotency key if one was sent);
2. the engine creates the credential;
3. the lease turns ``active`` together with the issuance's audit record;
4. only then is the credential returned.

A crash between 2 and 3 leaves a credential no active lease accounts for: the
reaper removes it. A task closed between 1 and 3 ends the pending lease; step 3
then finds nothing to activate and the new credential is revoked at once.
"""

from __future__ import annotations

from typing import Any

from gatepass import failpoints
from gatepass.audit import Outcome
from gatepass.broker.approval_gate import ApprovalGate, ApprovalRequest
from gatepass.broker.authority import require_target_in_task
from gatepass.broker.context import BrokerContext
from gatepass.broker.facts import task_requests
from gatepass.broker.idempotency import IN_PROGRESS, IdempotencyClaim, replayed_answer
from gatepass.broker.issuance import record_lease
from gatepass.broker.requests import CredentialRequest
from gatepass.broker.reuse import ReuseDetector
from gatepass.broker.revocations import RevocationWorker
from gatepass.broker.task_access import PresentedTaskToken, VerifiedTask
from gatepass.broker.trail import Attempt, AuditRecorder
from gatepass.clock import to_epoch
from gatepass.engines import IssuedCredential, IssueRequest, credential_name
from gatepass.errors import (
    ConflictError,
    GatepassError,
    InvalidTargetError,
    TokenRevokedError,
)
from gatepass.ids import new_lease_id
from gatepass.models import Lease, LeaseState, Target
from gatepass.policy import NeedsApproval
from gatepass.store import Connection
from gatepass.store import idempotency as idempotency_rows
from gatepass.store import leases as lease_rows

__all__ = ["IssueEngineCredential"]


class IssueEngineCredential:
    """
    Issue engine credentials intent-first.

    Args:
        context: the broker's collaborators.
        revocations: removes what a failed or raced issuance left in a target.
    """

    def __init__(
        self,
        context: BrokerContext,
        revocations: RevocationWorker,
        *,
        reuse: ReuseDetector | None = None,
    ) -> None:
        """Keep the collaborators."""
        self._context = context
        self._revocations = revocations
        self._reuse = reuse
        self._gate = ApprovalGate(context)

    async def __call__(
        self, request: CredentialRequest, presented: PresentedTaskToken
    ) -> dict[str, Any]:
        """
        Serve ``POST /v1/credentials``.

        Returns:
            The credential: lease id, expiry and the engine's connection fields. A
            repeated request (same idempotency key, same parameters) gets the
            first request's lease with ``idempotent_replay: true`` and no secret.

        Raises:
            ConflictError: the idempotency key was used for another request of
                this task, or its first request is still in progress.
            GatepassError: refused or failed; audited, and no credential is left.
        """
        context = self._context
        attempt = Attempt(kind="credential.issue")
        try:
            context.seal.require_unsealed()
            verified = await context.task_access.open_task(presented, attempt)
            target = context.catalog.resolve(request.target)
            attempt.data.update(
                target=target.name, actions=request.actions, kind=target.kind
            )
            self._check_target(target, verified, request.actions)
            claim = None
            if request.idempotency_key is not None:
                claim = IdempotencyClaim.of(
                    request.idempotency_key, request, target.name
                )
                replayed = await replayed_answer(
                    context.database, verified.task.id, claim, context.clock.now()
                )
                if replayed is not None:
                    lease, answer = replayed
                    attempt.subject = lease.id
                    attempt.data.update(lease_id=lease.id, idempotent_replay=True)
                    await context.trail.record(attempt, Outcome.ALLOW)
                    return answer
            return await self._issue(verified, target, request, claim, attempt)
        except GatepassError as error:
            if self._reuse is not None:
                await self._reuse.observe(attempt, error)
            await context.trail.refuse(attempt, error)
            raise

    def _check_target(
        self, target: Target, verified: VerifiedTask, actions: tuple[str, ...]
    ) -> None:
        if target.kind == "http":
            raise InvalidTargetError(
                "http targets take access tokens from the token endpoint"
            )
        require_target_in_task(target, verified.task, actions)
        if target.name not in self._context.engines:
            raise InvalidTargetError("target has no engine configured")

    async def _issue(
        self,
        verified: VerifiedTask,
        target: Target,
        request: CredentialRequest,
        claim: IdempotencyClaim | None,
        attempt: Attempt,
    ) -> dict[str, Any]:
        context = self._context
        task, proof = verified.task, verified.proof
        agent = await context.directory.active_agent(verified.claims.agent_id)
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
                    kind=target.kind,
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
        name = credential_name(lease_id)
        lease = Lease(
            id=lease_id,
            task_id=task.id,
            agent_id=task.agent_id,
            target=target.name,
            kind=target.kind,
            actions=request.actions,
            handle=name,
            state=LeaseState.PENDING,
            issued_at=now,
            expires_at=now + ttl,
            policy_ids=tuple(attempt.data.get("policy_ids", ())),
        )
        attempt.data["lease_id"] = lease.id
        intent = Attempt(
            kind="credential.intent",
            actor=attempt.actor,
            subject=lease.id,
            data={"task_id": task.id, "target": target.name, "actions": lease.actions},
        )

        redeem = (
            None
            if redemption is None
            else self._gate.consume(
                redemption, lease_id=lease_id, actor=task.agent_id, now=now
            )
        )

        def claim_key(conn: Connection, audit: AuditRecorder) -> None:
            if redeem is not None:
                # Spent for good, even if the engine then fails: a use is never
                # given back (store/approvals.py).
                redeem(conn, audit)
            if claim is not None and not idempotency_rows.claim_key(
                conn,
                task_id=task.id,
                key_hash=claim.key_hash,
                fingerprint=claim.fingerprint,
                lease_id=lease.id,
                expires_at=task.expires_at,
            ):
                # A concurrent request with this key won: raising rolls back this
                # transaction, so no second lease (and no second role) exists.
                raise ConflictError(IN_PROGRESS)

        await record_lease(
            context,
            lease,
            spent=proof.single_use,
            now=now,
            attempt=intent,
            closed=TokenRevokedError("task is closed"),
            also=claim_key,
        )
        issued = await self._create(lease, request, agent.id)
        failpoints.hit("credential.after_issue")
        try:
            return await self._activate(lease, issued, target, attempt)
        finally:
            context.signals.issuing.discard(lease.id)

    async def _create(
        self, lease: Lease, request: CredentialRequest, principal: str
    ) -> IssuedCredential:
        context = self._context
        engine = context.engines[lease.target]
        context.signals.issuing.add(lease.id)
        try:
            return await engine.issue(
                IssueRequest(
                    lease_id=lease.id,
                    name=lease.handle,
                    actions=lease.actions,
                    principal=principal,
                    expires_at=lease.expires_at,
                    public_key=request.public_key,
                )
            )
        except GatepassError:
            context.signals.issuing.discard(lease.id)
            # Nothing usable was handed out; end the lease so the revocation worker
            # removes anything the engine may have half made, and free the key so
            # that a retry may try again.
            now = context.clock.now()

            def end(conn: Connection, _audit: AuditRecorder) -> None:
                lease_rows.revoke_lease(conn, lease.id, now)
                idempotency_rows.release_key(conn, lease.id)

            await context.trail.write(end)
            await self._revocations.run()
            raise

    async def _activate(
        self,
        lease: Lease,
        issued: IssuedCredential,
        target: Target,
        attempt: Attempt,
    ) -> dict[str, Any]:
        context = self._context
        expires_at = min(issued.expires_at, lease.expires_at)
        attempt.data["expires_at"] = expires_at.isoformat()
        answer = {
            "lease_id": lease.id,
            "target": target.name,
            "kind": target.kind,
            "actions": list(lease.actions),
            "expires_at": expires_at.isoformat().replace("+00:00", "Z"),
            # Only the non-secret fields: a retry must never get the secret again.
            "credential": dict(issued.fields),
        }

        def activate(conn: Connection, audit: AuditRecorder) -> bool:
            if not lease_rows.activate_lease(
                conn, lease.id, handle=issued.handle, expires_at=expires_at
            ):
                return False
            idempotency_rows.record_response(conn, lease.id, answer)
            audit.record(conn, attempt, Outcome.ALLOW)
            return True

        if not await context.trail.write(activate):
            # The task closed while the engine worked. The credential exists now,
            # so its lease must read revoking until the engine confirms removal.
            context.signals.issuing.discard(lease.id)
            now = context.clock.now()

            def reopen(conn: Connection, _audit: AuditRecorder) -> None:
                lease_rows.reopen_revocation(conn, lease.id, now)
                idempotency_rows.release_key(conn, lease.id)

            await context.trail.write(reopen)
            await self._revocations.run()
            raise TokenRevokedError("task was closed during issuance")
        context.metrics.issuances.labels(kind=target.kind, target=target.name).inc()
        credential: dict[str, Any] = dict(issued.fields)
        if issued.secret is not None:
            # The hand-over point: the only place a secret is revealed.
            credential["password"] = issued.secret.reveal()
        now = context.clock.now()
        return {
            **answer,
            "expires_in": max(0, to_epoch(expires_at) - to_epoch(now)),
            "credential": credential,
        }
