"""
The operator's use cases.

Register and disable agents, rotate keys, reload policy (re-evaluating live leases),
authenticate API tokens, and read the audit log. Checkpoints and reconcile live in
``broker/audit_anchor.py``; :meth:`Admin.checkpoint` forwards to it.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection

from gatepass.audit import AuditEntry, AuditSigner, Checkpoint
from gatepass.broker.audit_anchor import AuditAnchoring
from gatepass.broker.facts import policy_requests, task_facts_of
from gatepass.broker.service import OPEN_TASK_ACTION, Broker
from gatepass.errors import (
    AccessDeniedError,
    AuthenticationError,
    ConflictError,
    GatepassError,
    InvalidRequestError,
    NotFoundError,
)
from gatepass.ids import new_agent_id
from gatepass.models import Agent, AgentStatus, Lease, TaskState
from gatepass.secret import token_hash
from gatepass.store import ApiRole, api_tokens, audit_log, keys
from gatepass.store import agents as agent_rows
from gatepass.store import leases as lease_rows
from gatepass.store import tasks as task_rows
from gatepass.tokens import KeyRing, algorithm_for, load_public_jwk, rotate

__all__ = ["Admin", "Caller"]

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_LABEL_KEY = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")


class Caller:
    """
    An authenticated API caller.

    Args:
        token_id: the API token's id (never the token).
        role: what it may do.
    """

    def __init__(self, token_id: str, role: ApiRole) -> None:
        """Keep the identity."""
        self.token_id = token_id
        self.role = role

    @property
    def actor(self) -> str:
        """Return the audit actor name."""
        return f"admin:{self.token_id}"


class Admin:
    """
    Operator use cases over the same broker state.

    Args:
        broker: the agent-facing broker (shares store, clock, caches, policy).
        signer: signs audit checkpoints.
        ring_factory: builds a KeyRing from key records.
        sealer: seals new private keys.
        anchoring: checkpoints and reconciles the audit log.
    """

    def __init__(
        self,
        broker: Broker,
        *,
        signer: AuditSigner,
        ring_factory: Any,  # noqa: ANN401 - Callable[[list[KeyRecord]], KeyRing]
        sealer: Any,  # noqa: ANN401 - gatepass.sealing.Sealer
        anchoring: AuditAnchoring,
    ) -> None:
        """Keep the collaborators."""
        self.broker = broker
        self.signer = signer
        self.anchoring = anchoring
        self._ring_factory = ring_factory
        self._sealer = sealer

    @property
    def _clock(self) -> Any:  # noqa: ANN401
        return self.broker.clock

    def _entry(
        self,
        kind: str,
        outcome: str,
        actor: str,
        subject: str = "",
        data: Mapping[str, Any] | None = None,
    ) -> AuditEntry:
        return AuditEntry(
            at=self.broker.clock.now(),
            kind=kind,
            outcome=outcome,
            actor=actor,
            subject=subject,
            data=dict(data or {}),
        )

    # ---------------------------------------------------------- authentication

    async def authenticate(
        self,
        authorization: str | None,
        *,
        roles: frozenset[ApiRole] = frozenset({ApiRole.ADMIN}),
    ) -> Caller:
        """
        Check an ``Authorization: Bearer`` API token.

        Raises:
            AuthenticationError: no token, or an unknown one (audited).
            AccessDeniedError: the token's role does not allow the operation.
        """
        scheme, _, credential = (authorization or "").partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            raise AuthenticationError(
                "an api token is required (Authorization: Bearer)"
            )
        digest = token_hash(credential)
        found = await self.broker.database.read(
            lambda c: api_tokens.find_api_token(c, digest)
        )
        if found is None:
            await self.broker.audit(
                self._entry(
                    "admin.auth", "deny", "unknown", data={"token_hash": digest}
                )
            )
            raise AuthenticationError("unknown api token")
        caller = Caller(found[0], found[1])
        if caller.role not in roles:
            raise AccessDeniedError(f"a {caller.role.value} token may not do this")
        return caller

    # ------------------------------------------------------------------ agents

    async def add_agent(self, caller: Caller, payload: object) -> Agent:
        """
        Register an agent from ``{"name", "tenant", "public_key", "labels"}``.

        Raises:
            InvalidRequestError: a field is missing or malformed (audited).
            ConflictError: the name is taken (audited).
        """
        try:
            agent = self._parse_agent(payload)

            def insert(conn: Connection) -> None:
                agent_rows.insert_agent(conn, agent)
                audit_log.append_audit(
                    conn,
                    self._entry(
                        "agent.add",
                        "ok",
                        caller.actor,
                        agent.id,
                        {"name": agent.name, "tenant": agent.tenant},
                    ),
                )

            await self.broker.database.write(insert)
        except GatepassError as error:
            await self.broker.audit(
                self._entry(
                    "agent.add",
                    "deny",
                    caller.actor,
                    data={"error": error.code, "detail": error.detail},
                )
            )
            raise
        return agent

    def _parse_agent(self, payload: object) -> Agent:
        if not isinstance(payload, dict):
            raise InvalidRequestError("body must be a JSON object")
        unknown = sorted(set(payload) - {"name", "tenant", "public_key", "labels"})
        if unknown:
            raise InvalidRequestError(f"unknown field {unknown[0][:64]!r}")
        name, tenant = payload.get("name"), payload.get("tenant")
        if not isinstance(name, str) or not _NAME.match(name):
            raise InvalidRequestError("name must match [a-z0-9][a-z0-9._-]{0,63}")
        if not isinstance(tenant, str) or not _NAME.match(tenant):
            raise InvalidRequestError("tenant must match [a-z0-9][a-z0-9._-]{0,63}")
        labels = payload.get("labels", {})
        if not isinstance(labels, dict) or len(labels) > 32:
            raise InvalidRequestError("labels must be an object of at most 32 entries")
        for key, value in labels.items():
            if not _LABEL_KEY.match(key):
                raise InvalidRequestError(
                    "label keys must match [a-z][a-z0-9_.-]{0,63}"
                )
            if not isinstance(value, str) or len(value) > 256:
                raise InvalidRequestError("label values must be strings of ≤ 256 chars")
        public_key = payload.get("public_key")
        if not isinstance(public_key, (str, dict)):
            raise InvalidRequestError("public_key must be a JWK object or a PEM string")
        jwk = load_public_jwk(public_key)
        return Agent(
            id=new_agent_id(),
            name=name,
            tenant=tenant,
            labels=dict(labels),
            public_jwk=jwk,
            algorithm=algorithm_for(jwk),
            created_at=self.broker.clock.now(),
        )

    async def list_agents(
        self, *, tenant: str | None = None, status: str | None = None
    ) -> list[Agent]:
        """Return registered agents."""
        return await self.broker.database.read(
            lambda c: agent_rows.list_agents(c, tenant=tenant, status=status)
        )

    async def get_agent(self, agent_id: str) -> Agent:
        """
        Return one agent.

        Raises:
            NotFoundError: no such agent.
        """
        agent = await self.broker.database.read(
            lambda c: agent_rows.get_agent(c, agent_id)
        )
        if agent is None:
            raise NotFoundError("no such agent")
        return agent

    async def disable_agent(self, caller: Caller, agent_id: str) -> Agent:
        """
        Disable an agent and end everything it holds.

        It can no longer authenticate, and every open task it has is closed with its
        leases revoked, in one transaction.

        Raises:
            NotFoundError: no such agent.
            ConflictError: it is already disabled.
        """
        now = self.broker.clock.now()

        def disable(conn: Connection) -> tuple[Agent | None, bool, list[str]]:
            changed = agent_rows.set_agent_status(
                conn, agent_id, AgentStatus.DISABLED, now
            )
            closed: list[str] = []
            if changed:
                for task_id in task_rows.open_task_ids_of_agent(conn, agent_id):
                    task_rows.close_task(
                        conn, task_id, now=now, reason="agent disabled"
                    )
                    revoked = lease_rows.revoke_task_leases(conn, task_id, now)
                    closed.append(task_id)
                    audit_log.append_audit(
                        conn,
                        self._entry(
                            "task.close",
                            "ok",
                            caller.actor,
                            task_id,
                            {"reason": "agent disabled", "revoked_leases": revoked},
                        ),
                    )
                audit_log.append_audit(
                    conn,
                    self._entry(
                        "agent.disable", "ok", caller.actor, agent_id, {"tasks": closed}
                    ),
                )
            return agent_rows.get_agent(conn, agent_id), changed, closed

        agent, changed, closed = await self.broker.database.write(disable)
        self.broker.forget_agent(agent_id)
        for task_id in closed:
            self.broker.forget_task(task_id)
        if closed:
            self.broker.notify_revocations()
            await self.broker.run_revocations()
        if agent is None:
            raise NotFoundError("no such agent")
        if not changed:
            raise ConflictError("agent is already disabled")
        return agent

    # --------------------------------------------------------- policy reload

    async def reload_policy(self, actor: str = "system") -> dict[str, Any]:
        """
        Reload policies from disk and re-evaluate what is live.

        On success every live lease and open task is re-checked, and what the new
        policies no longer allow is revoked.

        Returns:
            The policy status plus ``revoked_leases`` and ``closed_tasks``.

        Raises:
            InvalidRequestError: the new set is broken (the old one stays live).
        """
        result = self.broker.policies.reload()
        status = self.policy_status()
        if result.error is not None:
            self.broker.metrics.policy_reloads.labels(outcome="error").inc()
            await self.broker.audit(
                self._entry(
                    "policy.reload", "error", actor, data={"error": result.error}
                )
            )
            raise InvalidRequestError(f"policy set refused: {result.error}")
        self.broker.metrics.policy_reloads.labels(outcome="ok").inc()
        await self.broker.audit(
            self._entry(
                "policy.reload",
                "ok",
                actor,
                data={"digest": result.digest, "changed": result.changed},
            )
        )
        revoked, closed = await self.reevaluate(actor) if result.changed else ([], [])
        status.update(revoked_leases=revoked, closed_tasks=closed)
        return status

    def policy_status(self) -> dict[str, Any]:
        """Return what policy set is live."""
        holder = self.broker.policies
        return {
            "loaded_at": holder.loaded_at.isoformat(),
            "policy_count": holder.current.policy_count,
            "digest": holder.current.digest,
            "last_error": holder.last_error,
        }

    async def reevaluate(self, actor: str) -> tuple[list[str], list[str]]:
        """
        Re-run the policy over live leases and open tasks after a context change.

        Returns:
            The revoked lease ids and the closed task ids.
        """
        broker = self.broker
        now = broker.clock.now()
        live: list[Lease] = await broker.database.read(lease_rows.live_leases)
        open_tasks = await broker.database.read(
            lambda c: task_rows.list_tasks(c, state=TaskState.OPEN.value, limit=10_000)
        )
        closed: list[str] = []
        for task in open_tasks:
            agent = await broker.agent(task.agent_id)
            targets = [broker.catalog.get(name) for name in task.targets]
            if agent is None or any(t is None for t in targets):
                continue
            checks = [(OPEN_TASK_ACTION, t) for t in targets if t is not None]
            requests = policy_requests(agent, task_facts_of(task, now), checks, now)
            if not all(d.allowed for d in broker.decide(requests)):
                try:
                    await broker.close_task(
                        task.id, actor=actor, reason="policy no longer allows the task"
                    )
                    closed.append(task.id)
                except (ConflictError, NotFoundError):
                    continue
        revoked: list[str] = []
        for lease in live:
            if lease.task_id in closed:
                continue
            lease_task = await broker.task(lease.task_id)
            agent = await broker.agent(lease.agent_id)
            target = broker.catalog.get(lease.target)
            if lease_task is None or agent is None or target is None:
                continue
            checks = [(action, target) for action in lease.actions]
            facts = task_facts_of(lease_task, now)
            decisions = broker.decide(policy_requests(agent, facts, checks, now))
            if not all(d.allowed for d in decisions):
                try:
                    await broker.revoke_lease(
                        lease.id,
                        actor=actor,
                        reason="policy no longer allows the lease",
                    )
                    revoked.append(lease.id)
                except (ConflictError, NotFoundError):
                    continue
        return revoked, closed

    # ---------------------------------------------------------------- keys

    async def rotate_keys(self, caller: Caller) -> list[dict[str, Any]]:
        """
        Rotate the signing keys.

        Next becomes current, current becomes retired (still published until the
        tokens it signed have expired), and a new next key is published.

        Returns:
            The key list after rotation.
        """
        broker = self.broker
        now = broker.clock.now()
        retire_after = dt.timedelta(
            seconds=broker.settings.tokens.key_retire_after_seconds
        )

        def rotate_in_store(conn: Connection) -> list[Any]:
            records = keys.load_key_records(conn)
            rotated = rotate(
                records,
                algorithm=broker.settings.tokens.algorithm,
                sealer=self._sealer,
                now=now,
                retire_after=retire_after,
            )
            keys.replace_key_records(conn, rotated)
            audit_log.append_audit(
                conn,
                self._entry(
                    "keys.rotate",
                    "ok",
                    caller.actor,
                    data={"kids": [r.kid for r in rotated]},
                ),
            )
            return rotated

        rotated = await broker.database.write(rotate_in_store)
        self.install_ring(self._ring_factory(rotated))
        return self.key_list()

    def install_ring(self, ring: KeyRing) -> None:
        """Make ``ring`` the live key ring for signing and verification."""
        self.broker.issuer.ring = ring
        self.broker.key_source.ring = ring

    async def refresh_keys(self) -> bool:
        """
        Load keys another replica may have rotated.

        Returns:
            True if the live ring changed.
        """
        records = await self.broker.database.read(keys.load_key_records)
        current = self.broker.issuer.ring
        if [r.kid for r in records] == [r.kid for r in current.records]:
            return False
        self.install_ring(self._ring_factory(records))
        return True

    def key_list(self) -> list[dict[str, Any]]:
        """Return the public description of every signing key."""
        return [
            {
                "kid": record.kid,
                "alg": record.algorithm,
                "state": record.state.value,
                "created_at": record.created_at.isoformat(),
                "activated_at": record.activated_at.isoformat()
                if record.activated_at
                else None,
                "retired_at": record.retired_at.isoformat()
                if record.retired_at
                else None,
            }
            for record in self.broker.issuer.ring.records
        ]

    # ---------------------------------------------------------------- audit

    async def checkpoint(self) -> Checkpoint | None:
        """
        Sign the chain head if it moved (see :meth:`AuditAnchoring.checkpoint`).

        Returns:
            The new checkpoint, or None if nothing changed.
        """
        return await self.anchoring.checkpoint()

    async def audit_events(self, *, after: int, limit: int) -> list[dict[str, Any]]:
        """Return audit records after ``after`` as JSON objects."""
        records = await self.broker.database.read(
            lambda c: list(audit_log.iter_audit(c, after=after, limit=limit))
        )
        return [record.to_json() for record in records]

    async def last_audit_events(self, count: int) -> list[dict[str, Any]]:
        """Return the newest ``count`` audit records as JSON objects, in order."""
        records = await self.broker.database.read(
            lambda c: audit_log.last_audit(c, count)
        )
        return [record.to_json() for record in records]

    async def audit_checkpoints(self) -> list[dict[str, Any]]:
        """Return every checkpoint as JSON objects."""
        found = await self.broker.database.read(audit_log.list_checkpoints)
        return [checkpoint.to_json() for checkpoint in found]
