"""
Security Event Tokens the broker transmits (RFC 8417, OpenID SSF 1.0, CAEP 1.0).

A SET is a JWT with header ``typ: secevent+jwt`` (RFC 8417 §2.3), signed with the
broker's signing key ring like every other token it issues, so a receiver checks
it against the same JWKS. Its claims are ``iss``, ``aud`` (the stream's
audiences), ``iat``, ``jti``, ``sub_id`` (an RFC 9493 subject identifier, SSF 1.0
§4.1) and ``events`` holding exactly one event. SETs carry no ``exp``: they
describe something that happened and are never an authorization (RFC 8417 §2.2).

The subjects gatepass names:

* ``session-revoked`` and ``token-claims-change`` name **one access token**:
  ``sub_id = {"format": "opaque", "id": <the token's jti>}``; ``txn`` (RFC 8417
  §2.2) holds the task the token belonged to, so a receiver can group them.
* ``verification`` and ``stream-updated`` name the stream:
  ``sub_id = {"format": "opaque", "id": <stream id>}`` (SSF 1.0 §8.1.4).
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from gatepass.tokens import JWTIssuer

__all__ = [
    "CAEP_SESSION_REVOKED",
    "CAEP_TOKEN_CLAIMS_CHANGE",
    "EVENTS_SUPPORTED",
    "SET_TYP",
    "SSF_STREAM_UPDATED",
    "SSF_VERIFICATION",
    "SecurityEvent",
    "session_revoked",
    "sign_event",
    "stream_updated",
    "token_claims_change",
    "verification",
]

SET_TYP: Final = "secevent+jwt"
CAEP_SESSION_REVOKED: Final = (
    "https://schemas.openid.net/secevent/caep/event-type/session-revoked"
)
CAEP_TOKEN_CLAIMS_CHANGE: Final = (
    "https://schemas.openid.net/secevent/caep/event-type/token-claims-change"  # noqa: S105 - an event URI
)
SSF_VERIFICATION: Final = (
    "https://schemas.openid.net/secevent/ssf/event-type/verification"
)
SSF_STREAM_UPDATED: Final = (
    "https://schemas.openid.net/secevent/ssf/event-type/stream-updated"
)
# What a receiver may request. Verification and stream-updated are delivered on
# every stream whatever it requested (SSF 1.0 §8.1.4, §8.1.5).
EVENTS_SUPPORTED: Final = (CAEP_SESSION_REVOKED, CAEP_TOKEN_CLAIMS_CHANGE)
_INITIATORS: Final = frozenset({"admin", "user", "policy", "system"})


@dataclass(frozen=True, slots=True, kw_only=True)
class SecurityEvent:
    """
    One SET's claims, before signing.

    Attributes:
        jti: the SET's own id (``set_`` + 128 random bits).
        event_type: the one event URI in ``events``.
        subject: the dedupe key of the thing it is about (a token's jti, a
            stream id), unique per stream and event type.
        claims: the claims to sign (``iss`` is added by the signer).
    """

    jti: str
    event_type: str
    subject: str
    claims: dict[str, Any]


def _new_jti() -> str:
    return f"set_{secrets.token_hex(16)}"


def _timestamp(moment: dt.datetime) -> int:
    return int(moment.timestamp())


def _event(
    *,
    event_type: str,
    subject_id: str,
    audiences: Sequence[str],
    now: dt.datetime,
    body: Mapping[str, Any],
    txn: str | None = None,
) -> SecurityEvent:
    if not audiences:
        msg = "a security event needs an audience"
        raise ValueError(msg)
    jti = _new_jti()
    claims: dict[str, Any] = {
        "jti": jti,
        "iat": _timestamp(now),
        # RFC 8417 §2.2: aud is a string or an array; one stream may serve several
        # resource servers, so it is always the array.
        "aud": list(audiences),
        "sub_id": {"format": "opaque", "id": subject_id},
        "events": {event_type: dict(body)},
    }
    if txn is not None:
        claims["txn"] = txn
    return SecurityEvent(
        jti=jti, event_type=event_type, subject=subject_id, claims=claims
    )


def _initiator(initiating_entity: str) -> str:
    # CAEP 1.0 §2: initiating_entity is one of admin, user, policy, system.
    if initiating_entity not in _INITIATORS:
        msg = f"initiating entity must be one of {sorted(_INITIATORS)}"
        raise ValueError(msg)
    return initiating_entity


def session_revoked(
    *,
    token_id: str,
    task_id: str,
    audiences: Sequence[str],
    revoked_at: dt.datetime,
    now: dt.datetime,
    initiating_entity: str = "system",
    reason: str | None = None,
) -> SecurityEvent:
    """
    Build a CAEP ``session-revoked`` event for one revoked access token.

    Args:
        token_id: the access token's ``jti``.
        task_id: its task (the SET's ``txn``).
        audiences: the stream's audiences (the SET's ``aud``).
        revoked_at: when the broker revoked it (``event_timestamp``).
        now: when the SET is made (``iat``).
        initiating_entity: ``admin``, ``user``, ``policy`` or ``system``.
        reason: a short admin-facing reason (``reason_admin.en``), never a secret.

    Returns:
        The event, unsigned.

    Raises:
        ValueError: no audience, or an unknown initiating entity.
    """
    body: dict[str, Any] = {
        "event_timestamp": _timestamp(revoked_at),
        "initiating_entity": _initiator(initiating_entity),
    }
    if reason:
        body["reason_admin"] = {"en": reason[:200]}
    return _event(
        event_type=CAEP_SESSION_REVOKED,
        subject_id=token_id,
        audiences=audiences,
        now=now,
        body=body,
        txn=task_id,
    )


def token_claims_change(
    *,
    token_id: str,
    task_id: str,
    audiences: Sequence[str],
    claims: Mapping[str, Any],
    changed_at: dt.datetime,
    now: dt.datetime,
    initiating_entity: str = "system",
) -> SecurityEvent:
    """
    Build a CAEP ``token-claims-change`` event: a live token's claims now differ.

    Args:
        token_id: the access token's ``jti``.
        task_id: its task (the SET's ``txn``).
        audiences: the stream's audiences.
        claims: the claims that changed, with their new values (``scope``...).
        changed_at: when they changed (``event_timestamp``).
        now: when the SET is made.
        initiating_entity: ``admin``, ``user``, ``policy`` or ``system``.

    Returns:
        The event, unsigned.

    Raises:
        ValueError: no audience, no claim, or an unknown initiating entity.
    """
    if not claims:
        msg = "a claims change needs at least one claim"
        raise ValueError(msg)
    body = {
        "event_timestamp": _timestamp(changed_at),
        "initiating_entity": _initiator(initiating_entity),
        "claims": dict(claims),
    }
    return _event(
        event_type=CAEP_TOKEN_CLAIMS_CHANGE,
        subject_id=token_id,
        audiences=audiences,
        now=now,
        body=body,
        txn=task_id,
    )


def verification(
    *, stream_id: str, audiences: Sequence[str], state: str | None, now: dt.datetime
) -> SecurityEvent:
    """
    Build an SSF verification event (SSF 1.0 §8.1.4.1), echoing ``state``.

    Returns:
        The event, unsigned; its subject is unique per request, so every
        verification asked for is delivered.
    """
    body = {} if state is None else {"state": state}
    event = _event(
        event_type=SSF_VERIFICATION,
        subject_id=stream_id,
        audiences=audiences,
        now=now,
        body=body,
    )
    return SecurityEvent(
        jti=event.jti,
        event_type=event.event_type,
        subject=f"{stream_id}:{event.jti}",
        claims=event.claims,
    )


def stream_updated(
    *,
    stream_id: str,
    audiences: Sequence[str],
    status: str,
    reason: str | None,
    now: dt.datetime,
) -> SecurityEvent:
    """
    Build an SSF stream-updated event (SSF 1.0 §8.1.5): the transmitter changed it.

    Returns:
        The event, unsigned.
    """
    body: dict[str, Any] = {"status": status}
    if reason:
        body["reason"] = reason
    event = _event(
        event_type=SSF_STREAM_UPDATED,
        subject_id=stream_id,
        audiences=audiences,
        now=now,
        body=body,
    )
    return SecurityEvent(
        jti=event.jti,
        event_type=event.event_type,
        subject=f"{stream_id}:{event.jti}",
        claims=event.claims,
    )


def sign_event(issuer: JWTIssuer, event: SecurityEvent) -> str:
    """
    Sign a SET with the broker's current signing key.

    Args:
        issuer: the broker's token issuer (its ``iss`` and key ring).
        event: the event.

    Returns:
        The compact JWS, header ``{alg, kid, typ: secevent+jwt}``.
    """
    return issuer.sign(event.claims, typ=SET_TYP)
