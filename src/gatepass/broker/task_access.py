"""
A task token presented back to the broker: verified once, bound to its key.

A task token comes back in two shapes: as the ``subject_token`` of an access-token
exchange (refusals are ``invalid_grant``, RFC 8693 §2.2.2), or as a DPoP-bound
access token in ``Authorization: DPoP`` for the broker's own REST endpoints
(credentials, renewal, close; refusals are ``invalid_token``, RFC 9449 §7.1). Both
verify the signature once per token and then serve it from a cache keyed by the
token's SHA-256 until it expires; whether its task is still open is asked every
time, and again in the transaction that writes anything.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from gatepass.broker.caches import ExpiringCache
from gatepass.broker.directory import Directory
from gatepass.broker.trail import Attempt, Suspicion
from gatepass.clock import Clock
from gatepass.errors import (
    DPoPKeyMismatchError,
    InvalidGrantError,
    TokenError,
    TokenRevokedError,
)
from gatepass.models import Task, TaskState
from gatepass.secret import token_hash
from gatepass.tokens import (
    ACCESS_TOKEN_TYP,
    TASK_TOKEN_TYP,
    DPoPProof,
    DPoPVerifier,
    JWTVerifier,
    TaskTokenClaims,
    check_certificate_binding,
    unverified_claims,
)
from gatepass.verify import dpop_access_token

__all__ = ["PresentedTaskToken", "TaskAccess", "VerifiedTask"]


@dataclass(frozen=True, slots=True, kw_only=True)
class PresentedTaskToken:
    """
    A request authenticated by a task token as a DPoP-bound access token.

    Attributes:
        authorization: the ``Authorization`` header (``DPoP <task token>``).
        dpop_proof: the one ``DPoP`` header, or None.
        url: the endpoint's URL, for the proof's ``htu`` (built from the issuer,
            never from ``Host``).
        certificate: the thumbprint of the connection's client certificate, when
            the broker terminates mutual TLS; a certificate-bound task token
            needs the same one (RFC 8705 §3).
    """

    authorization: str | None
    dpop_proof: str | None
    url: str
    certificate: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifiedTask:
    """
    An open task whose token and proof verified.

    Attributes:
        task: the task, open and unexpired when checked.
        claims: the task token's claims.
        proof: the verified DPoP proof (its single-use id is spent with the
            request's effect).
    """

    task: Task
    claims: TaskTokenClaims
    proof: DPoPProof


class TaskAccess:
    """
    Verify task tokens and their proofs.

    Args:
        verifier: verifies the broker's own tokens.
        dpop: verifies DPoP proofs.
        directory: finds the token's task.
        clock: the time source.
        issuer_url: the broker's issuer URL (the task token's audience).
    """

    def __init__(
        self,
        *,
        verifier: JWTVerifier,
        dpop: DPoPVerifier,
        directory: Directory,
        clock: Clock,
        issuer_url: str,
    ) -> None:
        """Start with an empty cache."""
        self._verifier = verifier
        self._dpop = dpop
        self._directory = directory
        self._clock = clock
        self._issuer_url = issuer_url
        self._verified: ExpiringCache[str, TaskTokenClaims] = ExpiringCache(100_000)

    @property
    def dpop(self) -> DPoPVerifier:
        """The DPoP verifier, for proofs of requests without a task token."""
        return self._dpop

    def claims(self, token: str) -> TaskTokenClaims:
        """
        Verify a task token, from a cache keyed by its hash until it expires.

        Raises:
            TokenError: the token is not a valid task token of this broker.
        """
        now = self._clock.now()
        key = hashlib.sha256(token.encode()).hexdigest()
        claims = self._verified.get(key, now)
        if claims is None:
            claims = TaskTokenClaims.from_claims(
                self._verifier.verify(
                    token, typ=TASK_TOKEN_TYP, audience=self._issuer_url
                )
            )
            self._verified.put(key, claims, claims.expires_at)
        return claims

    def _wrong_audience(self, token: str, attempt: Attempt) -> None:
        """Note an access token of this broker presented where a task token goes."""
        peeked = unverified_claims(token)
        if peeked is None or (peeked[0] or "").lower() != ACCESS_TOKEN_TYP:
            return
        audience = peeked[1].get("aud")
        if not isinstance(audience, str):
            return
        try:
            claims = self._verifier.verify(
                token, typ=ACCESS_TOKEN_TYP, audience=audience
            )
        except TokenError:
            return
        # Only a genuine token of ours is evidence: a forgery says nothing of
        # who holds our credentials.
        attempt.actor = str(claims.get("sub", attempt.actor))[:80]
        attempt.subject = str(claims.get("txn", ""))[:80]
        attempt.suspicion = Suspicion(
            "wrong_audience",
            {
                "token_hash": token_hash(token),
                "jti": str(claims.get("jti", ""))[:80],
                "audience": audience[:200],
                "presented_to": self._issuer_url,
            },
        )

    def _closed(self, token: str, task: Task, attempt: Attempt) -> None:
        attempt.suspicion = Suspicion(
            "closed_task_use",
            {
                "token_hash": token_hash(token),
                "task_state": task.state.value,
                "task_jkt": task.jkt,
            },
        )

    def forget_all(self) -> None:
        """Drop every cached verification (a test's way to force a re-verify)."""
        self._verified.clear()

    async def subject_task(self, token: str, attempt: Attempt) -> Task:
        """
        Return the open task of a task token sent as an exchange's subject token.

        Raises:
            InvalidGrantError: the token is invalid, its task unknown or ended.
        """
        try:
            claims = self.claims(token)
        except TokenError as error:
            self._wrong_audience(token, attempt)
            raise InvalidGrantError(f"task token rejected: {error.detail}") from error
        attempt.actor = claims.agent_id
        attempt.subject = claims.task_id
        task = await self._directory.task(claims.task_id)
        if task is None or task.token_jti != claims.jti:
            raise InvalidGrantError("task token names an unknown task")
        if task.state is not TaskState.OPEN or task.expires_at <= self._clock.now():
            self._closed(token, task, attempt)
            raise InvalidGrantError("task is closed")
        return task

    def verify_bound(
        self, presented: PresentedTaskToken, attempt: Attempt
    ) -> tuple[TaskTokenClaims, DPoPProof]:
        """
        Verify a task token used as a DPoP-bound access token (RFC 9449 §7).

        The proof must be for ``POST url``, carry ``ath`` for the token and be
        signed by the task's key. The attempt's actor is set as soon as it is
        known, so a refusal is audited against the agent.

        Raises:
            TokenError: the header is missing or malformed, the token invalid, or
                it is certificate-bound and the connection's certificate differs.
            DPoPProofError: the proof is missing, replayed or not by the task's key.
        """
        token = dpop_access_token(presented.authorization)
        try:
            claims = self.claims(token)
        except TokenError:
            self._wrong_audience(token, attempt)
            raise
        attempt.actor = claims.agent_id
        attempt.subject = claims.task_id
        try:
            proof = self._dpop.verify(
                presented.dpop_proof,
                method="POST",
                url=presented.url,
                access_token=token,
                expected_jkt=claims.jkt,
            )
        except DPoPKeyMismatchError as error:
            # RFC 9449 §7.1: a DPoP-bound token presented with another key's proof.
            attempt.suspicion = Suspicion(
                "foreign_key",
                {
                    "token_hash": token_hash(token),
                    "bound_jkt": claims.jkt,
                    "presented_jkt": error.jkt,
                },
            )
            raise
        check_certificate_binding(claims.x5t, presented.certificate)
        return claims, proof

    async def open_task(
        self, presented: PresentedTaskToken, attempt: Attempt
    ) -> VerifiedTask:
        """
        Verify a DPoP-bound task token and return its open task.

        Raises:
            TokenError: as :meth:`verify_bound`, or the task is unknown.
            TokenRevokedError: the task is closed or expired.
            DPoPProofError: as :meth:`verify_bound`.
        """
        claims, proof = self.verify_bound(presented, attempt)
        attempt.subject = claims.task_id
        task = await self._directory.task(claims.task_id)
        if task is None or task.token_jti != claims.jti:
            raise TokenError("task token names an unknown task")
        if task.state is not TaskState.OPEN or task.expires_at <= self._clock.now():
            self._closed(dpop_access_token(presented.authorization), task, attempt)
            raise TokenRevokedError("task is closed")
        return VerifiedTask(task=task, claims=claims, proof=proof)
