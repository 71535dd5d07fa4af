"""
Credential reuse and theft detection: ``credential.reuse`` events and their responses.

The refusals themselves do not change: where the broker already refuses a request
that looks like a stolen or cached credential, it also reports it here.

=================  ==================================================================
kind               seen when
=================  ==================================================================
closed_task_use    a task token comes back after its task closed or expired (token
                   endpoint, ``/v1`` routes); a resource server introspects an access
                   token whose lease was revoked; the proxy refuses a revoked token
foreign_key        a task token used as a DPoP-bound access token with a proof from
                   another key (``/v1`` routes, RFC 9449 §7.1)
two_keys           a task token exchanged at the token endpoint with a proof from a
                   key other than the task's
replayed_proof     a DPoP proof presented a second time (in memory or in the store)
wrong_audience     an access token of this broker (``aud`` = a target) presented to
                   the broker as a task token
=================  ==================================================================

Each event is recorded (``gp_reuse_events``) with its ``credential.reuse`` audit
record in one transaction: the evidence is ids, key thumbprints and token hashes,
never a token. Then every ``[[reuse.rules]]`` rule whose kinds include it counts
the agent's events in its window; at ``threshold`` the strongest response of the
rules that fired is carried out at once: ``alert`` (the record and an error log
line), ``revoke_task`` (close the task the event is about) or ``quarantine``
(``broker/quarantine.py``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from gatepass.audit import Outcome
from gatepass.broker.audit_log import ProxyCall
from gatepass.broker.closing import Closing
from gatepass.broker.context import BrokerContext
from gatepass.broker.quarantine import QUARANTINE_ACTOR, Quarantine
from gatepass.broker.trail import Attempt, AuditRecorder, Suspicion
from gatepass.config import ReuseRuleSettings
from gatepass.errors import (
    ConflictError,
    DPoPKeyMismatchError,
    DPoPReplayError,
    GatepassError,
    NotFoundError,
)
from gatepass.ids import is_id
from gatepass.observability import get_logger
from gatepass.store import Connection
from gatepass.store import context_signals as reuse_rows

__all__ = ["ReuseDetector", "ReuseVerdict", "classify"]

_log = get_logger("gatepass.reuse")
_STRENGTH = {"alert": 1, "revoke_task": 2, "quarantine": 3}
_KEEP = dt.timedelta(days=1)


def classify(attempt: Attempt, error: GatepassError) -> Suspicion | None:
    """
    Say whether a refusal looks like credential reuse, and why.

    Args:
        attempt: the refused request (its suspicion, if a check set one).
        error: the refusal.

    Returns:
        The suspicion, or None for an ordinary refusal.
    """
    if attempt.suspicion is not None:
        return attempt.suspicion
    if isinstance(error, DPoPReplayError):
        return Suspicion("replayed_proof", {"presented_jkt": error.jkt})
    if isinstance(error, DPoPKeyMismatchError):
        # At the token endpoint the bound token is the task token: the task is
        # being driven from a second key.
        return Suspicion("two_keys", {"presented_jkt": error.jkt})
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class ReuseVerdict:
    """
    What one reuse event led to.

    Attributes:
        kind: the reuse kind.
        response: ``none``, ``alert``, ``revoke_task`` or ``quarantine``.
        rule: the position of the deciding rule in ``[[reuse.rules]]``, if any.
    """

    kind: str
    response: str
    rule: int | None


class ReuseDetector:
    """
    Record reuse events and carry out the rules' responses.

    Args:
        context: the broker's collaborators.
        closing: closes tasks (``revoke_task``).
        quarantine: disables agents (``quarantine``).
    """

    def __init__(
        self, context: BrokerContext, *, closing: Closing, quarantine: Quarantine
    ) -> None:
        """Keep the collaborators."""
        self._context = context
        self._closing = closing
        self._quarantine = quarantine
        self._pruned_at: dt.datetime | None = None

    async def observe(self, attempt: Attempt, error: GatepassError) -> None:
        """
        Report a refusal if it looks like reuse; never raises for the caller.

        Called just before the caller audits and raises the refusal as it is, so
        the refusal's record stays the last of the request; a failure to record
        the reuse event is logged, not raised.
        """
        suspicion = classify(attempt, error)
        if suspicion is None:
            return
        agent_id = attempt.actor if is_id(attempt.actor, "agt") else ""
        task_id = attempt.subject if is_id(attempt.subject, "tsk") else ""
        try:
            await self.report(
                suspicion,
                agent_id=agent_id,
                task_id=task_id,
                seen_at=attempt.kind,
                refusal=error.code,
            )
        except GatepassError as failure:
            _log.error(
                "credential reuse not recorded",
                kind=suspicion.kind,
                error=failure.code,
                detail=failure.detail,
            )

    async def observe_proxy_calls(self, calls: list[ProxyCall]) -> int:
        """
        Report the proxy's refusals of revoked tokens as ``closed_task_use``.

        Returns:
            How many were reported.
        """
        reported = 0
        for call in calls:
            if call.details.get("error") != "token_revoked":
                continue
            evidence = {"jti": str(call.details.get("jti", ""))[:80]}
            await self.report(
                Suspicion("closed_task_use", evidence),
                agent_id=call.agent_id if is_id(call.agent_id, "agt") else "",
                task_id=call.task_id if is_id(call.task_id, "tsk") else "",
                seen_at="proxy.call",
                refusal="token_revoked",
            )
            reported += 1
        return reported

    async def report(
        self,
        suspicion: Suspicion,
        *,
        agent_id: str,
        task_id: str,
        seen_at: str,
        refusal: str,
    ) -> ReuseVerdict:
        """
        Record one reuse event and carry out the response its rules decide.

        Args:
            suspicion: the kind and evidence.
            agent_id: the agent the credential belongs to ("" if unknown).
            task_id: its task ("" if unknown).
            seen_at: where it was seen (the refused request's kind).
            refusal: the refusal's error code.

        Returns:
            What it led to.

        Raises:
            StoreError: the event could not be recorded.
        """
        context = self._context
        now = context.clock.now()
        rules = context.settings.reuse.rules
        attempt = Attempt(
            kind="credential.reuse",
            actor=agent_id or "unknown",
            subject=task_id,
            data={
                "reuse": suspicion.kind,
                "evidence": suspicion.evidence,
                "seen_at": seen_at,
                "refusal": refusal,
            },
        )

        def change(conn: Connection, audit: AuditRecorder) -> ReuseVerdict:
            verdict = ReuseVerdict(kind=suspicion.kind, response="none", rule=None)
            if agent_id:
                reuse_rows.record_reuse(
                    conn,
                    agent_id=agent_id,
                    task_id=task_id,
                    kind=suspicion.kind,
                    at=now,
                )
                verdict = self._decide(conn, rules, suspicion.kind, agent_id, now)
            attempt.data["response"] = verdict.response
            if verdict.rule is not None:
                attempt.data["rule"] = verdict.rule
            audit.record(conn, attempt, Outcome.DENY)
            return verdict

        verdict = await context.trail.write(change)
        if verdict.response != "none":
            _log.error(
                "credential reuse detected",
                kind=suspicion.kind,
                agent=agent_id,
                task=task_id,
                response=verdict.response,
            )
        await self._respond(verdict, rules, agent_id=agent_id, task_id=task_id)
        await self._prune(now)
        return verdict

    @staticmethod
    def _decide(
        conn: Connection,
        rules: list[ReuseRuleSettings],
        kind: str,
        agent_id: str,
        now: dt.datetime,
    ) -> ReuseVerdict:
        best: ReuseVerdict | None = None
        for index, rule in enumerate(rules):
            if rule.kinds and kind not in rule.kinds:
                continue
            since = now - dt.timedelta(seconds=rule.window_seconds)
            count = reuse_rows.count_reuse(
                conn, agent_id=agent_id, kinds=list(rule.kinds), since=since
            )
            if count < rule.threshold:
                continue
            if best is None or _STRENGTH[rule.response] > _STRENGTH[best.response]:
                best = ReuseVerdict(kind=kind, response=rule.response, rule=index)
        return best or ReuseVerdict(kind=kind, response="none", rule=None)

    async def _respond(
        self,
        verdict: ReuseVerdict,
        rules: list[ReuseRuleSettings],
        *,
        agent_id: str,
        task_id: str,
    ) -> dict[str, Any] | None:
        if verdict.response == "revoke_task" and task_id:
            try:
                await self._closing.close_task(
                    task_id,
                    actor=QUARANTINE_ACTOR,
                    reason=f"credential reuse: {verdict.kind}",
                )
            except (ConflictError, NotFoundError):
                return None
            return {"closed_task": task_id}
        if verdict.response == "quarantine" and agent_id and verdict.rule is not None:
            return await self._quarantine.quarantine(
                agent_id,
                kind=verdict.kind,
                notify_groups=list(rules[verdict.rule].notify_groups),
            )
        return None

    async def _prune(self, now: dt.datetime) -> None:
        if self._pruned_at is not None and now - self._pruned_at < dt.timedelta(
            hours=1
        ):
            return
        self._pruned_at = now
        longest = max(
            (rule.window_seconds for rule in self._context.settings.reuse.rules),
            default=0,
        )
        before = now - max(_KEEP, dt.timedelta(seconds=longest))
        await self._context.database.write(
            lambda conn: reuse_rows.prune_reuse(conn, before=before)
        )
