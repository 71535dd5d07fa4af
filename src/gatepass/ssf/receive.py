"""
Verify a Security Event Token pushed to the receiver (RFC 8417 over RFC 8935).

Every check is the receiver's own, in this order, each refusal with its RFC 8935
§2.4 code:

1. a compact JWS with ``typ: secevent+jwt`` (RFC 8417 §2.3) and a ``kid``
   (``invalid_request``);
2. its ``iss`` is a configured transmitter, compared exactly (``invalid_issuer``);
3. the push's ``Authorization: Bearer`` is that transmitter's token, when it has
   one (``authentication_failed``; another transmitter's token is
   ``access_denied``), compared in constant time;
4. ``alg`` is one of the transmitter's pinned algorithms and the one pinned to
   the key of that ``kid``, and the signature verifies (``invalid_key``; RFC 8725
   §3.1: the algorithm is never taken from the token);
5. ``aud`` names this receiver (``invalid_audience``);
6. ``iat`` is not in the future nor older than ``max_age_seconds``, ``exp`` (if
   any) has not passed, ``jti`` is present (``invalid_request``);
7. exactly one event (SSF 1.0 §4.1: a SET carries one event), a JSON object, of
   a known type or one a rule names, with an RFC 9493 subject in ``sub_id`` or
   in the event's ``subject`` (``invalid_request``).

Keys come only from configuration: the caller hands each transmitter's
:class:`TransmitterKeys` in (the broker builds them from ``jwks_file`` or
``jwks_uri``, fetched through the identity fetcher and cached); no URL a SET names
is ever fetched. Whether the ``jti`` was seen before is for the caller (the
broker's single-use store).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

from gatepass.clock import Clock, to_epoch
from gatepass.errors import (
    ConfigurationError,
    GatepassError,
    SecurityEventError,
)
from gatepass.secret import Secret
from gatepass.ssf.events import SubjectIdentifier, is_known, parse_subject
from gatepass.ssf.rules import SignalSettings, TransmitterSettings
from gatepass.tokens import (
    CompactJWS,
    algorithm_matches,
    canonical_algorithm,
    is_numeric_date,
    parse_compact,
    verify_signature,
)

__all__ = [
    "SET_MEDIA_TYPE",
    "SET_TYP",
    "PinnedKey",
    "SETVerifier",
    "TransmitterKeys",
    "VerifiedSET",
    "jti_hash",
]

SET_TYP: Final = "secevent+jwt"
"""RFC 8417 §2.3: the ``typ`` header of a SET."""
SET_MEDIA_TYPE: Final = "application/secevent+jwt"
"""RFC 8935 §2: the content type of a pushed SET."""
_MAX_JTI = 256
# A transmitter's clock may run a little ahead of ours.
_FUTURE_LEEWAY: Final = dt.timedelta(seconds=30)


def jti_hash(issuer: str, jti: str) -> str:
    """Return the audit name of a SET: the SHA-256 of its issuer and ``jti``."""
    return hashlib.sha256(f"{issuer}\0{jti}".encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifiedSET:
    """
    A SET whose every check passed (but the ``jti``'s single use).

    Attributes:
        issuer: the transmitter.
        jti: the SET's id.
        issued_at: its ``iat``.
        event_type: the one event's type URI.
        event: the event's payload (untrusted content, verified origin).
        subject: the event's subject.
        expires_at: until when its ``jti`` must be remembered.
    """

    issuer: str
    jti: str
    issued_at: dt.datetime
    event_type: str
    event: Mapping[str, Any]
    subject: SubjectIdentifier
    expires_at: dt.datetime


class PinnedKey(Protocol):
    """A transmitter's public key and the one algorithm pinned to it."""

    @property
    def key(self) -> object:
        """The cryptography public key."""
        ...

    @property
    def algorithm(self) -> str:
        """The JWS algorithm pinned to the key."""
        ...


class TransmitterKeys(Protocol):
    """One transmitter's keys, cached (``identity.IssuerKeys`` is one)."""

    async def key_for(self, kid: str) -> PinnedKey:
        """
        Return the key with this kid.

        Raises:
            GatepassError: the kid is unknown or the keys are unavailable.
        """
        ...

    async def refresh_if_due(self) -> None:
        """Reload the keys if their refresh time has come; never raises."""
        ...


def _refuse(err: str, description: str) -> SecurityEventError:
    return SecurityEventError(err, description)


class _Transmitter:
    """One configured transmitter: its settings, keys and push token."""

    def __init__(self, settings: TransmitterSettings, keys: TransmitterKeys) -> None:
        self.settings = settings
        self.algorithms = frozenset(
            canonical_algorithm(name) or "" for name in settings.algorithms
        )
        self.keys = keys
        self.push_token = _read_token(settings)


def _read_token(settings: TransmitterSettings) -> Secret | None:
    path = settings.push_token_file
    if path is None:
        return None
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError:
        raise ConfigurationError(
            f"signals.transmitters[{settings.issuer}].push_token_file cannot be read"
        ) from None
    if not text:
        raise ConfigurationError(
            f"signals.transmitters[{settings.issuer}].push_token_file is empty"
        )
    return Secret(text)


class SETVerifier:
    """
    Verify pushed SETs against the configured transmitters.

    Args:
        settings: ``[signals]``.
        clock: the time source.
        keys: builds each transmitter's keys from its settings.

    Raises:
        ConfigurationError: a push token file is unreadable or empty.
    """

    def __init__(
        self,
        settings: SignalSettings,
        *,
        clock: Clock,
        keys: Callable[[TransmitterSettings], TransmitterKeys],
    ) -> None:
        """Read every push token now; keys are loaded on first use."""
        self._settings = settings
        self._clock = clock
        self._transmitters = {
            t.issuer: _Transmitter(t, keys(t)) for t in settings.transmitters
        }

    @property
    def secrets(self) -> list[str]:
        """The push tokens, for the log scrubber."""
        return [
            t.push_token.reveal()
            for t in self._transmitters.values()
            if t.push_token is not None
        ]

    async def refresh_keys(self) -> None:
        """Reload the transmitters' keys that are due (the job loop's tick)."""
        for transmitter in self._transmitters.values():
            await transmitter.keys.refresh_if_due()

    async def verify(self, token: str, *, authorization: str | None) -> VerifiedSET:
        """
        Verify one pushed SET.

        Args:
            token: the request body, as text.
            authorization: the request's ``Authorization`` header, if any.

        Returns:
            The verified SET.

        Raises:
            SecurityEventError: a check failed; ``err`` is its RFC 8935 code.
        """
        try:
            jws = parse_compact(token.strip())
            claims = jws.claims()
        except ValueError:
            raise _refuse("invalid_request", "body is not a compact jws") from None
        header = jws.header
        typ = header.get("typ")
        if (
            not isinstance(typ, str)
            or typ.lower().removeprefix("application/") != SET_TYP
        ):
            raise _refuse("invalid_request", "typ must be secevent+jwt")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise _refuse("invalid_request", "kid is required")
        issuer = claims.get("iss")
        if not isinstance(issuer, str):
            raise _refuse("invalid_request", "iss is required")
        transmitter = self._transmitters.get(issuer)
        if transmitter is None:
            raise _refuse("invalid_issuer", "issuer is not a configured transmitter")
        self._authenticate(transmitter, authorization)
        await self._check_signature(transmitter, jws, kid)
        self._check_audience(transmitter, claims)
        issued_at, jti = self._check_times(transmitter, claims)
        event_type, event = self._one_event(claims)
        subject = self._subject(claims, event)
        return VerifiedSET(
            issuer=issuer,
            jti=jti,
            issued_at=issued_at,
            event_type=event_type,
            event=event,
            subject=subject,
            expires_at=issued_at
            + dt.timedelta(seconds=transmitter.settings.max_age_seconds)
            + _FUTURE_LEEWAY,
        )

    def _authenticate(
        self, transmitter: _Transmitter, authorization: str | None
    ) -> None:
        expected = transmitter.push_token
        if expected is None:
            return
        scheme, _, credential = (authorization or "").partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            raise _refuse("authentication_failed", "push authorization is required")
        if hmac.compare_digest(credential.encode(), expected.reveal().encode()):
            return
        for other in self._transmitters.values():
            token = other.push_token
            if (
                other is not transmitter
                and token is not None
                and hmac.compare_digest(credential.encode(), token.reveal().encode())
            ):
                raise _refuse(
                    "access_denied", "push authorization is another transmitter's"
                )
        raise _refuse("authentication_failed", "push authorization is not valid")

    async def _check_signature(
        self, transmitter: _Transmitter, jws: CompactJWS, kid: str
    ) -> None:
        algorithm = jws.header.get("alg")
        if canonical_algorithm(algorithm) not in transmitter.algorithms:
            raise _refuse("invalid_key", "alg is not one the transmitter may use")
        try:
            key = await transmitter.keys.key_for(kid)
        except GatepassError:
            raise _refuse(
                "invalid_key", "kid is not in the transmitter's keys"
            ) from None
        if not algorithm_matches(algorithm, key.algorithm):
            raise _refuse("invalid_key", "alg is not the one pinned to the key")
        if not verify_signature(jws, key.key, key.algorithm):
            raise _refuse("invalid_key", "signature does not verify")

    @staticmethod
    def _check_audience(transmitter: _Transmitter, claims: Mapping[str, Any]) -> None:
        audience = claims.get("aud")
        wanted = transmitter.settings.audience
        if isinstance(audience, str):
            ok = audience == wanted
        elif isinstance(audience, list):
            ok = wanted in audience and all(isinstance(a, str) for a in audience)
        else:
            ok = False
        if not ok:
            raise _refuse("invalid_audience", "aud does not name this receiver")

    def _check_times(
        self, transmitter: _Transmitter, claims: Mapping[str, Any]
    ) -> tuple[dt.datetime, str]:
        now = self._clock.now()
        iat = claims.get("iat")
        if not is_numeric_date(iat) or not isinstance(iat, int | float):
            raise _refuse("invalid_request", "iat is required")
        try:
            issued_at = dt.datetime.fromtimestamp(float(iat), tz=dt.UTC)
        except (OverflowError, OSError, ValueError):
            raise _refuse("invalid_request", "iat is out of range") from None
        if issued_at > now + _FUTURE_LEEWAY:
            raise _refuse("invalid_request", "iat is in the future")
        max_age = dt.timedelta(seconds=transmitter.settings.max_age_seconds)
        if issued_at < now - max_age:
            raise _refuse("invalid_request", "set is too old")
        exp = claims.get("exp")
        if exp is not None and (
            not is_numeric_date(exp)
            or not isinstance(exp, int | float)
            or exp <= to_epoch(now)
        ):
            raise _refuse("invalid_request", "set has expired")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not 0 < len(jti) <= _MAX_JTI:
            raise _refuse("invalid_request", "jti is required")
        return issued_at, jti

    def _one_event(self, claims: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]]:
        events = claims.get("events")
        if not isinstance(events, dict) or not events:
            raise _refuse("invalid_request", "events is required")
        if len(events) != 1:
            raise _refuse("invalid_request", "a set must carry exactly one event")
        ((event_type, event),) = events.items()
        if not isinstance(event, dict):
            raise _refuse("invalid_request", "event payload must be an object")
        if not is_known(event_type) and not self._settings.handles(event_type):
            raise _refuse("invalid_request", "unknown event type")
        return event_type, event

    @staticmethod
    def _subject(
        claims: Mapping[str, Any], event: Mapping[str, Any]
    ) -> SubjectIdentifier:
        raw = claims.get("sub_id", event.get("subject"))
        if raw is None:
            raise _refuse("invalid_request", "subject is required (sub_id)")
        try:
            return parse_subject(raw)
        except ValueError as error:
            raise _refuse("invalid_request", str(error)) from None
