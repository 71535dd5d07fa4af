"""
Engine-backed credentials: PostgreSQL roles, Redis users, SSH certificates.

``POST /v1/credentials`` runs the same checks as the token endpoint (task token as a
DPoP-bound access token, target in the task, action offered, policy, TTL), then
issues *intent first*:

1. the lease is committed ``pending`` with the credential's deterministic name,
   together with an audit record of the intent;
2. the engine creates the credential;
3. the lease turns ``active`` together with the issuance's audit record;
4. only then is the credential returned.

A crash between 2 and 3 leaves a credential no active lease accounts for: the
reaper removes it. A task closed between 1 and 3 ends the pending lease; step 3
then finds nothing to activate and the new credential is revoked at once.
"""

from __future__ import annotations

import datetime as dt
import hmac
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from gatepass import failpoints
from gatepass.broker.core import Attempt, replay_error
from gatepass.broker.facts import policy_requests, task_facts_of
from gatepass.broker.idempotency import key_hash, request_fingerprint
from gatepass.broker.requests import parse_scope
from gatepass.broker.service import Broker
from gatepass.clock import to_epoch
from gatepass.engines import IssuedCredential, IssueRequest, credential_name
from gatepass.errors import (
    ConflictError,
    GatepassError,
    InvalidRequestError,
    InvalidTargetError,
    NotFoundError,
    TokenError,
    TokenRevokedError,
)
from gatepass.ids import new_lease_id
from gatepass.models import Lease, LeaseState, Target, Task, TaskState
from gatepass.single_use import SingleUse
from gatepass.store import audit_log
from gatepass.store import idempotency as idempotency_rows
from gatepass.store import leases as lease_rows
from gatepass.store import replay as replay_rows
from gatepass.store.idempotency import IdempotencyRecord
from gatepass.tokens import DPoPProof

__all__ = ["CredentialService", "parse_credential_request"]

_MAX_PUBLIC_KEY = 16_384
_IN_PROGRESS = "a request with this idempotency key is still in progress"


@dataclass(frozen=True, slots=True)
class _Idempotency:
    """An idempotency key as stored (hashed) and the request it stands for."""

    key_hash: str
    fingerprint: str


def _end_failed_issuance(conn: Connection, lease_id: str, now: dt.datetime) -> None:
    lease_rows.revoke_lease(conn, lease_id, now)
    idempotency_rows.release_key(conn, lease_id)


def _reopen_revocation(conn: Connection, lease_id: str, now: dt.datetime) -> None:
    lease_rows.reopen_revocation(conn, lease_id, now)
    idempotency_rows.release_key(conn, lease_id)


def parse_credential_request(
    payload: object,
) -> tuple[str, tuple[str, ...], str | None]:
    """
    Validate ``{"target", "actions" | "scope", "public_key"?}``.

    Returns:
        The target reference, the actions and the public key (or None).

    Raises:
        InvalidRequestError: a field is missing or malformed.
    """
    if not isinstance(payload, dict):
        raise InvalidRequestError("body must be a JSON object")
    unknown = sorted(set(payload) - {"target", "actions", "scope", "public_key"})
    if unknown:
        raise InvalidRequestError(f"unknown field {unknown[0][:64]!r}")
    target = payload.get("target")
    if not isinstance(target, str) or not 0 < len(target) <= 512:
        raise InvalidRequestError("target must be a target name or URI")
    actions = payload.get("actions")
    scope = payload.get("scope")
    if actions is not None and scope is not None:
        raise InvalidRequestError("give actions or scope, not both")
    if actions is not None:
        if not isinstance(actions, list) or not all(
            isinstance(a, str) for a in actions
        ):
            raise InvalidRequestError("actions must be a list of strings")
        scope = " ".join(actions)
    if scope is not None and not isinstance(scope, str):
        raise InvalidRequestError("scope must be a string")
    public_key = payload.get("public_key")
    if public_key is not None and (
        not isinstance(public_key, str) or not 0 < len(public_key) <= _MAX_PUBLIC_KEY
    ):
        raise InvalidRequestError("public_key must be an OpenSSH public key line")
    return target, parse_scope(scope), public_key


class CredentialService:
    """
    Issue engine-backed credentials intent-first, and revoke them through engines.

    Args:
        broker: the broker whose tasks, policy, store and engines these are.
    """

    def __init__(self, broker: Broker) -> None:
        """Keep the broker."""
        self._broker = broker

    async def issue(
        self,
        *,
        authorization: str | None,
        dpop_proof: str | None,
        url: str,
        payload: object,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """
        Serve ``POST /v1/credentials``.

        Args:
            authorization: the ``Authorization`` header (``DPoP <task token>``).
            dpop_proof: the ``DPoP`` header.
            url: the endpoint's URL, for the proof's ``htu``.
            payload: the parsed JSON body.
            idempotency_key: the request's ``Idempotency-Key``, if it sent one.

        Returns:
            The credential: lease id, expiry and the engine's connection fields. A
            repeated request (same key, same parameters) gets the first request's
            lease with ``idempotent_replay: true`` and no secret.

        Raises:
            ConflictError: the key was used for another request of this task, or
                its first request is still in progress.
            GatepassError: refused or failed; audited, and no credential is left.
        """
        broker = self._broker
        attempt = Attempt(kind="credential.issue")
        try:
            broker.seal.require_unsealed()
            task, claims_agent, proof = await self._authenticate(
                authorization, dpop_proof, url, attempt
            )
            reference, actions, public_key = parse_credential_request(payload)
            target = broker.catalog.resolve(reference)
            attempt.data.update(target=target.name, actions=actions, kind=target.kind)
            self._check_target(target, task, actions)
            once = None
            if idempotency_key is not None:
                once = _Idempotency(
                    key_hash=key_hash(idempotency_key),
                    fingerprint=request_fingerprint(target.name, actions, public_key),
                )
                replayed = await self._replay(task, once, attempt)
                if replayed is not None:
                    return replayed
            return await self._issue(
                task,
                claims_agent,
                target,
                actions,
                public_key=public_key,
                proof=proof,
                once=once,
                attempt=attempt,
            )
        except GatepassError as error:
            await broker.audit_failure(attempt, error)
            raise

    async def renew(
        self,
        lease_id: str,
        *,
        authorization: str | None,
        dpop_proof: str | None,
        url: str,
    ) -> dict[str, Any]:
        """
        Serve ``POST /v1/credentials/{lease_id}/renew``: extend a live credential.

        Policy is asked again (the context may have changed since issuance) and the
        new expiry obeys the same caps as a new credential.

        Raises:
            GatepassError: refused or failed (audited); the lease keeps its expiry.
        """
        broker = self._broker
        attempt = Attempt(kind="credential.renew", subject=lease_id[:64])
        try:
            broker.seal.require_unsealed()
            task, agent_id, proof = await self._authenticate(
                authorization, dpop_proof, url, attempt
            )
            attempt.subject = lease_id[:64]
            lease = await broker.database.read(
                lambda c: lease_rows.get_lease(c, lease_id)
            )
            if lease is None or lease.task_id != task.id:
                raise NotFoundError("no such lease in this task")
            if lease.state is not LeaseState.ACTIVE:
                raise ConflictError(f"lease is {lease.state.value}")
            target = broker.catalog.resolve(lease.target)
            agent = await broker.active_agent(agent_id)
            now = broker.clock.now()
            checks = [(action, target) for action in lease.actions]
            facts = task_facts_of(task, now)
            decisions = broker.authorize(
                policy_requests(agent, facts, checks, now), attempt
            )
            wanted = now + broker.access_ttl(decisions, target, task, now)
            engine = broker.engines.get(target.name)
            if engine is None:
                raise InvalidTargetError("target has no engine configured")
            expires_at = min(await engine.renew(lease.handle, wanted), wanted)
        except GatepassError as error:
            await broker.audit_failure(attempt, error)
            raise
        attempt.data["expires_at"] = expires_at.isoformat()
        entry = broker.entry(attempt, "allow")

        def extend(conn: Connection) -> SingleUse | bool:
            replayed = replay_rows.claim_single_use(conn, [proof.single_use], now)
            if replayed is not None:
                return replayed
            if not lease_rows.extend_lease(conn, lease.id, expires_at):
                return False
            audit_log.append_audit(conn, entry)
            return True

        extended = await broker.database.write(extend)
        if isinstance(extended, SingleUse):
            refusal = replay_error(extended)
            await broker.audit_failure(attempt, refusal)
            raise refusal
        if not extended:
            raise ConflictError("lease ended during renewal")
        return {
            "lease_id": lease.id,
            "expires_at": expires_at.isoformat().replace("+00:00", "Z"),
            "expires_in": max(0, to_epoch(expires_at) - to_epoch(now)),
        }

    async def _authenticate(
        self,
        authorization: str | None,
        dpop_proof: str | None,
        url: str,
        attempt: Attempt,
    ) -> tuple[Task, str, DPoPProof]:
        broker = self._broker
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "dpop" or not token:
            # RFC 9449 §7.1: the task token is a DPoP-bound access token.
            raise TokenError("a task token is required (Authorization: DPoP)")
        claims, proof = await broker.verify_task_request(
            token, dpop_proof, url=url, attempt=attempt, subject_is_task=True
        )
        task = await broker.task(claims.task_id)
        if task is None or task.token_jti != claims.jti:
            raise TokenError("task token names an unknown task")
        if task.state is not TaskState.OPEN or task.expires_at <= broker.clock.now():
            raise TokenRevokedError("task is closed")
        return task, claims.agent_id, proof

    def _check_target(
        self, target: Target, task: Task, actions: tuple[str, ...]
    ) -> None:

        if target.kind == "http":
            raise InvalidTargetError(
                "http targets take access tokens from the token endpoint"
            )
        self._broker.require_target_in_task(target, task, actions)
        if target.name not in self._broker.engines:
            raise InvalidTargetError("target has no engine configured")

    async def _issue(
        self,
        task: Task,
        agent_id: str,
        target: Target,
        actions: tuple[str, ...],
        *,
        public_key: str | None,
        proof: DPoPProof,
        once: _Idempotency | None,
        attempt: Attempt,
    ) -> dict[str, Any]:
        broker = self._broker
        agent = await broker.active_agent(agent_id)
        now = broker.clock.now()
        checks = [(action, target) for action in actions]
        facts = task_facts_of(task, now)
        decisions = broker.authorize(
            policy_requests(agent, facts, checks, now), attempt
        )
        ttl = broker.access_ttl(decisions, target, task, now)
        lease_id = new_lease_id()
        name = credential_name(lease_id)
        lease = Lease(
            id=lease_id,
            task_id=task.id,
            agent_id=task.agent_id,
            target=target.name,
            kind=target.kind,
            actions=actions,
            handle=name,
            state=LeaseState.PENDING,
            issued_at=now,
            expires_at=now + ttl,
            policy_ids=tuple(attempt.data.get("policy_ids", ())),
        )
        attempt.data["lease_id"] = lease.id
        intent = broker.entry(
            Attempt(
                kind="credential.intent",
                actor=attempt.actor,
                subject=lease.id,
                data={"task_id": task.id, "target": target.name, "actions": actions},
            ),
            "allow",
        )

        def record_intent(conn: Connection) -> SingleUse | bool:
            replayed = replay_rows.claim_single_use(conn, [proof.single_use], now)
            if replayed is not None:
                return replayed
            if not lease_rows.insert_lease_if_task_open(conn, lease, now):
                return False
            if once is not None and not idempotency_rows.claim_key(
                conn,
                task_id=task.id,
                key_hash=once.key_hash,
                fingerprint=once.fingerprint,
                lease_id=lease.id,
                expires_at=task.expires_at,
            ):
                # A concurrent request with this key won: raising rolls back this
                # transaction, so no second lease (and no second role) exists.
                raise ConflictError(_IN_PROGRESS)
            audit_log.append_audit(conn, intent)
            return True

        recorded = await broker.database.write(record_intent)
        if isinstance(recorded, SingleUse):
            raise replay_error(recorded)
        if not recorded:
            broker.forget_task(task.id)
            raise TokenRevokedError("task is closed")
        engine = broker.engines[target.name]
        broker.issuing.add(lease.id)
        try:
            issued = await engine.issue(
                IssueRequest(
                    lease_id=lease.id,
                    name=name,
                    actions=actions,
                    principal=agent_id,
                    expires_at=lease.expires_at,
                    public_key=public_key,
                )
            )
        except GatepassError:
            broker.issuing.discard(lease.id)
            # Nothing usable was handed out; end the lease so the revocation worker
            # removes anything the engine may have half made, and free the key so
            # that a retry may try again.
            await broker.database.write(
                lambda conn: _end_failed_issuance(conn, lease.id, broker.clock.now())
            )
            await broker.run_revocations()
            raise
        failpoints.hit("credential.after_issue")
        try:
            return await self._activate(lease, issued, target, attempt)
        finally:
            broker.issuing.discard(lease.id)

    async def _activate(
        self,
        lease: Lease,
        issued: IssuedCredential,
        target: Target,
        attempt: Attempt,
    ) -> dict[str, Any]:
        broker = self._broker
        expires_at = min(issued.expires_at, lease.expires_at)
        attempt.data["expires_at"] = expires_at.isoformat()
        entry = broker.entry(attempt, "allow")

        answer = {
            "lease_id": lease.id,
            "target": target.name,
            "kind": target.kind,
            "actions": list(lease.actions),
            "expires_at": expires_at.isoformat().replace("+00:00", "Z"),
            # Only the non-secret fields: a retry must never get the secret again.
            "credential": dict(issued.fields),
        }

        def activate(conn: Connection) -> bool:
            if not lease_rows.activate_lease(
                conn, lease.id, handle=issued.handle, expires_at=expires_at
            ):
                return False
            idempotency_rows.record_response(conn, lease.id, answer)
            audit_log.append_audit(conn, entry)
            return True

        if not await broker.database.write(activate):
            # The task closed while the engine worked. The credential exists now,
            # so its lease must read revoking until the engine confirms removal.
            broker.issuing.discard(lease.id)
            await broker.database.write(
                lambda conn: _reopen_revocation(conn, lease.id, broker.clock.now())
            )
            await broker.run_revocations()
            raise TokenRevokedError("task was closed during issuance")
        broker.metrics.issuances.labels(kind=target.kind, target=target.name).inc()
        credential: dict[str, Any] = dict(issued.fields)
        if issued.secret is not None:
            # The hand-over point: the only place a secret is revealed.
            credential["password"] = issued.secret.reveal()
        now = broker.clock.now()
        return {
            **answer,
            "expires_in": max(0, to_epoch(expires_at) - to_epoch(now)),
            "credential": credential,
        }

    async def _replay(
        self, task: Task, once: _Idempotency, attempt: Attempt
    ) -> dict[str, Any] | None:
        """Answer a repeated request from its first lease; None if it is new."""
        broker = self._broker

        def find(conn: Connection) -> tuple[IdempotencyRecord | None, Lease | None]:
            record = idempotency_rows.find_key(conn, task.id, once.key_hash)
            lease = (
                None if record is None else lease_rows.get_lease(conn, record.lease_id)
            )
            return record, lease

        record, lease = await broker.database.read(find)
        if record is None:
            return None
        if not hmac.compare_digest(record.fingerprint, once.fingerprint):
            raise ConflictError("idempotency key was used for another request")
        if record.response is None or lease is None:
            raise ConflictError(_IN_PROGRESS)
        attempt.subject = lease.id
        attempt.data.update(lease_id=lease.id, idempotent_replay=True)
        await broker.audit(broker.entry(attempt, "allow"))
        now = broker.clock.now()
        return {
            **record.response,
            "state": lease.state.value,
            "expires_in": max(0, to_epoch(lease.expires_at) - to_epoch(now)),
            "idempotent_replay": True,
        }
