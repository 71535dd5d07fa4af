"""
The broker's agent-facing use cases.

Open a task, issue an access token, close a task, revoke and introspect tokens.

Every use case ends in exactly one write transaction that records the outcome
together with its audit record; a failure is audited in a transaction of its own
and then raised to the face that called (API, CLI), which renders it.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Connection

from gatepass.audit import AuditEntry
from gatepass.broker.core import (
    ACCESS_TOKEN_TYP,
    OPEN_TASK_ACTION,
    TASK_TOKEN_TYP,
    Attempt,
    BrokerCore,
    Introspection,
    LiveKeys,
    OneAgent,
    TokenResponse,
    replay_error,
    unverified_issuer,
)
from gatepass.broker.facts import policy_requests, task_facts, task_facts_of
from gatepass.broker.requests import (
    ACCESS_TOKEN_TYPE,
    TXN_TOKEN_TYPE,
    AccessTokenRequest,
    OpenTaskRequest,
    TaskDetails,
    parse_form,
    parse_token_exchange,
)
from gatepass.clock import SystemClock, to_epoch
from gatepass.errors import (
    ConflictError,
    GatepassError,
    InvalidClientError,
    InvalidGrantError,
    InvalidTargetError,
    NotFoundError,
    TokenError,
)
from gatepass.identity import AgentAssertionVerifier, WorkloadIdentity
from gatepass.ids import (
    LeaseId,
    TaskId,
    is_id,
    new_lease_id,
    new_task_id,
    new_token_id,
)
from gatepass.leases import ACCESS_TOKEN_KIND
from gatepass.models import (
    Lease,
    LeaseState,
    Target,
    Task,
    TaskState,
)
from gatepass.policy import (
    Decision,
)
from gatepass.single_use import SingleUse
from gatepass.store import audit_log
from gatepass.store import idempotency as idempotency_rows
from gatepass.store import leases as lease_rows
from gatepass.store import replay as replay_rows
from gatepass.store import tasks as task_rows

__all__ = [
    "ACCESS_TOKEN_TYP",
    "OPEN_TASK_ACTION",
    "TASK_TOKEN_TYP",
    "Attempt",
    "Broker",
    "Introspection",
    "LiveKeys",
    "TokenResponse",
]


class Broker(BrokerCore):
    """The agent-facing use cases: the token exchange, closing and revoking."""

    async def token(self, body: bytes, *, dpop_proof: str | None) -> TokenResponse:
        """
        Serve one token-endpoint request.

        Args:
            body: the raw form body.
            dpop_proof: the single ``DPoP`` header, or None when absent.

        Returns:
            The token response.

        Raises:
            GatepassError: the request is refused; it has been audited.
        """
        attempt = Attempt(kind="token.request")
        try:
            request = parse_token_exchange(parse_form(body))
            if isinstance(request, OpenTaskRequest):
                attempt.kind = "task.open"
                response = await self._open_task(request, dpop_proof, attempt)
            else:
                attempt.kind = "credential.issue"
                response = await self._access_token(request, dpop_proof, attempt)
        except GatepassError as error:
            self.metrics.token_requests.labels(
                kind=attempt.kind, outcome=error.code
            ).inc()
            await self.audit_failure(attempt, error)
            raise
        self.metrics.token_requests.labels(kind=attempt.kind, outcome="ok").inc()
        return response

    async def _open_task(
        self, request: OpenTaskRequest, dpop_proof: str | None, attempt: Attempt
    ) -> TokenResponse:
        self.seal.require_unsealed()
        details = request.details
        attempt.data.update(
            purpose=details.purpose,
            environment=details.environment,
            targets=list(details.targets)[:32],
        )
        proof = self.dpop.verify(dpop_proof, method="POST", url=self.token_endpoint)
        identity = await self._verify_identity(request.subject_token, attempt)
        agent = identity.agent
        if request.client_id is not None and request.client_id != agent.id:
            raise InvalidClientError("client_id does not match the subject")
        targets = self._task_targets(details)
        now = self.clock.now()
        tenant = details.tenant or agent.tenant
        facts = task_facts(
            purpose=details.purpose,
            intent=details.intent,
            environment=details.environment,
            tenant=tenant,
            age=dt.timedelta(0),
        )
        checks = [(OPEN_TASK_ACTION, target) for target in targets]
        decisions = self.authorize(policy_requests(agent, facts, checks, now), attempt)
        ttl = self._task_ttl(details, decisions)
        task = Task(
            id=new_task_id(),
            agent_id=agent.id,
            tenant=tenant,
            environment=details.environment,
            purpose=details.purpose,
            intent=details.intent,
            targets=tuple(target.name for target in targets),
            jkt=proof.jkt,
            token_jti=new_token_id(),
            created_at=now,
            expires_at=now + ttl,
        )
        attempt.subject = task.id
        token = self.issuer.sign(
            {
                "sub": agent.id,
                "aud": self._issuer_url,
                "client_id": agent.id,
                "iat": to_epoch(now),
                "exp": to_epoch(task.expires_at),
                "jti": task.token_jti,
                "txn": task.id,
                "tenant": task.tenant,
                "env": task.environment,
                "purpose": task.purpose,
                "cnf": {"jkt": proof.jkt},
            },
            typ=TASK_TOKEN_TYP,
        )
        attempt.data["expires_at"] = task.expires_at.isoformat()
        entry = self.entry(attempt, "allow")

        def record(conn: Connection) -> SingleUse | None:
            # The proof and the assertion are spent exactly when the task commits,
            # so neither can be accepted again, even after a restart.
            spent = [proof.single_use, identity.single_use]
            replayed = replay_rows.claim_single_use(conn, spent, now)
            if replayed is None:
                task_rows.insert_task(conn, task)
                audit_log.append_audit(conn, entry)
            return replayed

        replayed = await self.database.write(record)
        if replayed is not None:
            raise replay_error(replayed)
        self.metrics.audit_events.labels(kind=entry.kind).inc()
        self._tasks.put(task.id, task, task.expires_at)
        return TokenResponse(
            body={
                "access_token": token,
                "issued_token_type": TXN_TOKEN_TYPE,
                "token_type": "DPoP",
                "expires_in": int(ttl.total_seconds()),
                "task_id": task.id,
                "authorization_details": details.to_json(task.id),
            }
        )

    async def _verify_identity(
        self, assertion: str, attempt: Attempt
    ) -> WorkloadIdentity:
        issuer = unverified_issuer(assertion)
        agent = await self.agent(issuer) if issuer and is_id(issuer, "agt") else None
        # The agent was fetched without blocking the event loop; the verifier sees a
        # directory of that one agent.
        verifier = AgentAssertionVerifier(
            directory=OneAgent(agent),
            audiences=frozenset({self._issuer_url, self.token_endpoint}),
            clock=self.clock,
            replay=self.replay,
            max_lifetime=self._assertion_lifetime,
            leeway=self._leeway,
        )
        identity = verifier.verify(assertion)
        attempt.actor = identity.agent.id
        return identity

    def _task_targets(self, details: TaskDetails) -> list[Target]:
        targets: list[Target] = []
        for reference in details.targets:
            target = self.catalog.resolve(reference)
            # Separate credentials per environment: a task lives in one.
            if target.environment != details.environment:
                raise InvalidTargetError(
                    f"target {target.name} is in environment {target.environment}, "
                    f"not {details.environment}"
                )
            if target not in targets:
                targets.append(target)
        return targets

    def _task_ttl(
        self, details: TaskDetails, decisions: list[Decision]
    ) -> dt.timedelta:
        tokens = self.settings.tokens
        caps = [
            details.max_ttl or dt.timedelta(seconds=tokens.task_default_ttl_seconds),
            dt.timedelta(seconds=tokens.task_max_ttl_seconds),
        ]
        caps.extend(d.ttl_cap for d in decisions if d.ttl_cap is not None)
        return min(caps)

    async def _open_task_for(self, token: str, attempt: Attempt) -> Task:
        try:
            claims = await self.verify_task_token(token)
        except TokenError as error:
            raise InvalidGrantError(f"task token rejected: {error.detail}") from error
        attempt.actor = claims.agent_id
        attempt.subject = claims.task_id
        task = await self.task(claims.task_id)
        if task is None or task.token_jti != claims.jti:
            raise InvalidGrantError("task token names an unknown task")
        if task.state is not TaskState.OPEN or task.expires_at <= self.clock.now():
            raise InvalidGrantError("task is closed")
        return task

    async def _access_token(
        self, request: AccessTokenRequest, dpop_proof: str | None, attempt: Attempt
    ) -> TokenResponse:
        self.seal.require_unsealed()
        attempt.data.update(resource=request.resource[:200], actions=request.actions)
        task = await self._open_task_for(request.subject_token, attempt)
        proof = self.dpop.verify(
            dpop_proof,
            method="POST",
            url=self.token_endpoint,
            expected_jkt=task.jkt,
        )
        if request.client_id is not None and request.client_id != task.agent_id:
            raise InvalidClientError("client_id does not match the subject")
        target = self.catalog.resolve(request.resource)
        attempt.data["target"] = target.name
        self.require_target_in_task(target, task, request.actions)
        agent = await self.active_agent(task.agent_id)
        now = self.clock.now()
        checks = [(action, target) for action in request.actions]
        decisions = self.authorize(
            policy_requests(agent, task_facts_of(task, now), checks, now), attempt
        )
        ttl = self.access_ttl(decisions, target, task, now)
        lease = Lease(
            id=new_lease_id(),
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
        token = self.issuer.sign(
            {
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
                "cnf": {"jkt": task.jkt},
            },
            typ=ACCESS_TOKEN_TYP,
        )
        attempt.data["lease_id"] = lease.id
        attempt.data["expires_at"] = lease.expires_at.isoformat()
        entry = self.entry(attempt, "allow")

        def record(conn: Connection) -> SingleUse | bool:
            replayed = replay_rows.claim_single_use(conn, [proof.single_use], now)
            if replayed is not None:
                return replayed
            # Intent first: the lease and its audit record commit before the token
            # leaves; the share lock makes a concurrent close wait or win.
            if not lease_rows.insert_lease_if_task_open(conn, lease, now):
                return False
            audit_log.append_audit(conn, entry)
            return True

        recorded = await self.database.write(record)
        if isinstance(recorded, SingleUse):
            raise replay_error(recorded)
        if not recorded:
            self.forget_task(task.id)
            raise InvalidGrantError("task is closed")
        self.metrics.audit_events.labels(kind=entry.kind).inc()
        self.metrics.issuances.labels(kind=lease.kind, target=target.name).inc()
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

    def access_ttl(
        self, decisions: list[Decision], target: Target, task: Task, now: dt.datetime
    ) -> dt.timedelta:
        """
        Return min(policy cap, target cap, broker cap, task remaining), in seconds.

        Raises:
            InvalidGrantError: the task has no life left.
        """
        tokens = self.settings.tokens
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

    # ------------------------------------------------------------ close/revoke

    async def close_task(
        self,
        task_id: str,
        *,
        actor: str,
        reason: str,
        state: TaskState = TaskState.CLOSED,
    ) -> Task:
        """
        Close a task and revoke every lease it holds, in one transaction.

        Raises:
            NotFoundError: no such task.
            ConflictError: the task had already ended.
        """
        now = self.clock.now()
        attempt = Attempt(kind="task.close", actor=actor, subject=task_id)
        attempt.data["reason"] = reason[:200]

        def close(conn: Connection) -> tuple[Task | None, bool, list[LeaseId]]:
            changed = task_rows.close_task(
                conn, task_id, now=now, reason=reason, state=state
            )
            revoked = (
                lease_rows.revoke_task_leases(conn, task_id, now) if changed else []
            )
            if changed:
                attempt.data["revoked_leases"] = list(revoked)
                audit_log.append_audit(conn, self.entry(attempt, "ok"))
            return task_rows.get_task(conn, task_id), changed, revoked

        task, changed, revoked = await self.database.write(close)
        self.forget_task(task_id)
        if task is None:
            error: GatepassError = NotFoundError("no such task")
            await self.audit_failure(attempt, error)
            raise error
        if not changed:
            raise ConflictError(f"task is already {task.state.value}")
        self.metrics.revocations.labels(reason="task_closed").inc(len(revoked))
        self.notify_revocations()
        if revoked:
            # Engine credentials are removed now, so live sessions are cut at close.
            await self.run_revocations()
        return task

    async def close_task_as_agent(
        self,
        task_id: str,
        *,
        access_token: str,
        dpop_proof: str | None,
        url: str,
    ) -> Task:
        """
        Close a task on behalf of the agent holding its task token.

        Args:
            task_id: the task named in the path.
            access_token: the task token from ``Authorization: DPoP``.
            dpop_proof: the ``DPoP`` header.
            url: the request URL, for the proof's ``htu``.

        Raises:
            TokenError: the task token is invalid or names another task.
            DPoPProofError: the proof is missing or not by the task's key.
        """
        attempt = Attempt(kind="task.close", subject=task_id)
        try:
            claims, _ = await self.verify_task_request(
                access_token, dpop_proof, url=url, attempt=attempt
            )
            if claims.task_id != task_id:
                raise TokenError("token is for another task")
        except GatepassError as error:
            await self.audit_failure(attempt, error)
            raise
        return await self.close_task(
            task_id, actor=attempt.actor, reason="closed by agent"
        )

    async def revoke_lease(self, lease_id: str, *, actor: str, reason: str) -> Lease:
        """
        Revoke one lease.

        Raises:
            NotFoundError: no such lease.
            ConflictError: it is no longer live.
        """
        now = self.clock.now()
        attempt = Attempt(kind="lease.revoke", actor=actor, subject=lease_id)
        attempt.data["reason"] = reason[:200]

        def revoke(conn: Connection) -> tuple[Lease | None, bool]:
            changed = lease_rows.revoke_lease(conn, lease_id, now)
            if changed:
                audit_log.append_audit(conn, self.entry(attempt, "ok"))
            return lease_rows.get_lease(conn, lease_id), changed

        lease, changed = await self.database.write(revoke)
        if lease is None:
            error: GatepassError = NotFoundError("no such lease")
            await self.audit_failure(attempt, error)
            raise error
        if not changed:
            raise ConflictError(f"lease is already {lease.state.value}")
        self.metrics.revocations.labels(
            reason=reason.split(" ", maxsplit=1)[0][:32]
        ).inc()
        return lease

    # ------------------------------------------------------------ sweeping

    async def sweep(self) -> tuple[list[TaskId], int]:
        """
        Expire overdue tasks (revoking their leases) and overdue leases.

        Returns:
            The expired task ids and how many leases expired on their own.
        """
        now = self.clock.now()

        def sweep(conn: Connection) -> tuple[list[TaskId], int]:
            expired = task_rows.expire_tasks(conn, now)
            for task_id in expired:
                revoked = lease_rows.revoke_task_leases(conn, task_id, now)
                audit_log.append_audit(
                    conn,
                    AuditEntry(
                        at=now,
                        kind="task.expire",
                        outcome="ok",
                        actor="system",
                        subject=task_id,
                        data={"revoked_leases": list(revoked)},
                    ),
                )
            count = lease_rows.expire_leases(conn, now)
            replay_rows.forget_expired_values(conn, now)
            idempotency_rows.forget_expired_keys(conn, now)
            self.metrics.live_leases.set(lease_rows.count_live_leases(conn))
            return expired, count

        if isinstance(self.clock, SystemClock):
            self.metrics.clock_offset.set(round(self.clock.wall_offset(), 3))
        expired, lease_count = await self.database.write(sweep)
        for task_id in expired:
            self.forget_task(task_id)
        if expired or lease_count:
            self.notify_revocations()
            await self.run_revocations()
        return expired, lease_count
