"""
The resource-server side of gatepass's SSF stream: subscribe by poll, verify SETs.

:class:`SSFPollSubscription` is what a :class:`~gatepass.verify.RevocationFeed`
follows instead of the Server-Sent Events stream when a resource server asks for
SSF (``ResourceVerifier.for_broker(..., revocations="ssf")``). It reads the
broker's ``/.well-known/ssf-configuration``, creates a **poll** stream (RFC 8936)
for its own audience with an ``ssf_receiver`` token, and long-polls it: each SET
is verified (:func:`verify_set`: ``typ secevent+jwt``, the broker's JWKS with the
algorithm pinned by the key, ``iss``, this audience) and acknowledged in the next
poll; a ``session-revoked`` or ``token-claims-change`` names an access token that
this server then refuses. Poll delivery needs no inbound connection, so it works
behind NAT. One stream per process: on a fresh start the broker fills a new stream
with the revocations of every token that may still be live, and the stream is
deleted when the feed closes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any, Final, Protocol

import httpx

from gatepass.errors import TokenError, TokenSignatureError
from gatepass.tokens import (
    SIGNING_ALGORITHMS,
    KeySource,
    parse_compact,
    verify_signature,
)

__all__ = ["RevocationSink", "SSFPollSubscription", "verify_set"]

_log = logging.getLogger("gatepass.ssf.consume")
_SET_TYP: Final = "secevent+jwt"
_POLL: Final = "urn:ietf:rfc:8936"
_REVOKING: Final = frozenset(
    {
        "https://schemas.openid.net/secevent/caep/event-type/session-revoked",
        # A changed claim makes a token this server verified stale: it is refused
        # and the agent fetches a new one (fail closed).
        "https://schemas.openid.net/secevent/caep/event-type/token-claims-change",
    }
)


class RevocationSink(Protocol):
    """Where a subscription reports (a :class:`~gatepass.verify.RevocationFeed`)."""

    def revoke(self, jti: str, *, at: dt.datetime | None = None) -> None:
        """Remember a revoked access token."""

    def mark_connected(self) -> None:
        """Say that revocations now arrive as they happen."""


def _typ_is_set(value: object) -> bool:
    # RFC 7515 §4.1.9: a media type, compared case-insensitively, "application/"
    # optional.
    if not isinstance(value, str):
        return False
    return value.lower() in {_SET_TYP, f"application/{_SET_TYP}"}


def verify_set(
    token: str,
    *,
    keys: KeySource,
    issuer: str,
    audience: str,
    algorithms: frozenset[str] = SIGNING_ALGORITHMS,
) -> dict[str, Any]:
    """
    Verify a Security Event Token from the broker and return its claims.

    Args:
        token: the compact JWS.
        keys: the broker's keys (its JWKS).
        issuer: the broker's issuer URL.
        audience: this receiver's audience; one of the SET's ``aud``.
        algorithms: the allowed algorithms.

    Returns:
        The claims.

    Raises:
        TokenError: malformed, not a SET, another issuer or audience, or not
            exactly one event.
        TokenSignatureError: unknown key, algorithm not the key's, bad signature.
    """
    try:
        jws = parse_compact(token)
    except ValueError:
        raise TokenError("malformed security event token") from None
    header = jws.header
    # RFC 8417 §2.3 and RFC 8725 §3.11: explicit typing.
    if not _typ_is_set(header.get("typ")):
        raise TokenError("not a security event token")
    algorithm, kid = header.get("alg"), header.get("kid")
    if not isinstance(algorithm, str) or algorithm not in algorithms:
        raise TokenSignatureError("token algorithm is not allowed")
    if not isinstance(kid, str) or not kid:
        raise TokenError("token has no key id")
    key, pinned = keys.key_for(kid)
    # RFC 8725 §3.1: the key's own algorithm decides; never the header's.
    if algorithm != pinned:
        raise TokenSignatureError("token algorithm does not match the signing key")
    if not verify_signature(jws, key, pinned):
        raise TokenSignatureError("invalid token signature")
    try:
        claims = jws.claims()
    except ValueError:
        raise TokenError("malformed security event token claims") from None
    _check_set_claims(claims, issuer, audience)
    return claims


def _check_set_claims(claims: Mapping[str, Any], issuer: str, audience: str) -> None:
    if claims.get("iss") != issuer:
        raise TokenError("security event issuer is not trusted")
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud
    if not isinstance(audiences, list) or audience not in audiences:
        raise TokenError("security event audience does not match")
    events = claims.get("events")
    if not isinstance(events, dict) or len(events) != 1:
        raise TokenError("security event must hold exactly one event")
    if not isinstance(claims.get("jti"), str):
        raise TokenError("security event has no jti")


def _revoked_token(claims: Mapping[str, Any]) -> tuple[str, dt.datetime | None] | None:
    ((event_type, body),) = claims["events"].items()
    if event_type not in _REVOKING:
        return None
    subject = claims.get("sub_id")
    if not isinstance(subject, dict) or subject.get("format") != "opaque":
        return None
    jti = subject.get("id")
    if not isinstance(jti, str) or not jti:
        return None
    at = None
    stamp = body.get("event_timestamp") if isinstance(body, dict) else None
    if isinstance(stamp, int) and not isinstance(stamp, bool):
        at = dt.datetime.fromtimestamp(stamp, tz=dt.UTC)
    return jti, at


class SSFPollSubscription:
    """
    A poll stream on the broker's SSF transmitter, for one audience.

    Args:
        broker: the broker's issuer URL.
        audience: this resource server's target URI (the stream's one ``aud``).
        keys: the broker's keys, to verify SETs.
        description: how the stream is named to operators.
        max_events: the most SETs per poll.
        inactivity_timeout: seconds after which the broker may disable a stream
            this process stopped polling (it crashed).
    """

    def __init__(
        self,
        broker: str,
        audience: str,
        *,
        keys: KeySource,
        description: str = "gatepass.verify resource server",
        max_events: int = 100,
        inactivity_timeout: int = 600,
    ) -> None:
        """Keep the configuration; nothing is sent until :meth:`follow`."""
        # The issuer as configured is what SETs and the metadata name; URLs are
        # built on it without a trailing slash.
        self._issuer = broker
        self._base = broker.rstrip("/")
        self.audience = audience
        self._keys = keys
        self._description = description
        self._max_events = max_events
        self._inactivity = inactivity_timeout
        self._configuration: dict[str, Any] | None = None
        self._poll_url: str | None = None
        self.stream_id: str | None = None
        self._ack: list[str] = []
        self._errors: dict[str, dict[str, str]] = {}
        self.sets_seen = 0

    def __repr__(self) -> str:
        """Show the broker and the stream, never a token."""
        return (
            f"SSFPollSubscription(broker={self._issuer!r}, stream={self.stream_id!r})"
        )

    async def _discover(self, http: httpx.AsyncClient) -> dict[str, Any]:
        if self._configuration is None:
            response = await http.get(f"{self._base}/.well-known/ssf-configuration")
            response.raise_for_status()
            document = response.json()
            if not isinstance(document, dict) or document.get("issuer") != self._issuer:
                msg = "ssf configuration names another issuer"
                raise ValueError(msg)
            if _POLL not in document.get("delivery_methods_supported", []):
                msg = "the transmitter does not offer poll delivery"
                raise ValueError(msg)
            self._configuration = document
        return self._configuration

    async def _subscribe(
        self, http: httpx.AsyncClient, headers: dict[str, str]
    ) -> bool:
        configuration = await self._discover(http)
        body = {
            "delivery": {"method": _POLL},
            "aud": [self.audience],
            "description": self._description,
            "inactivity_timeout": self._inactivity,
        }
        response = await http.post(
            str(configuration["configuration_endpoint"]), json=body, headers=headers
        )
        if response.status_code != httpx.codes.CREATED:
            _log.warning("ssf stream refused: status %s", response.status_code)
            return False
        created = response.json()
        self.stream_id = str(created["stream_id"])
        self._poll_url = str(created["delivery"]["endpoint_url"])
        return True

    async def follow(
        self, http: httpx.AsyncClient, api_token: str, sink: RevocationSink
    ) -> bool:
        """
        Subscribe (once) and long-poll until the broker refuses or fails.

        Args:
            http: the client (its read timeout must exceed the broker's poll wait).
            api_token: the ``ssf_receiver`` token.
            sink: told of each revoked token and of the connection.

        Returns:
            False when the broker refused (the caller backs off); True when an
            accepted subscription ended (its stream disappeared).

        Raises:
            httpx.HTTPError: the broker could not be reached.
            ValueError: its configuration or an answer is malformed.
        """
        headers = {"Authorization": f"Bearer {api_token}"}
        if self._poll_url is None and not await self._subscribe(http, headers):
            return False
        connected = False
        while True:
            body: dict[str, Any] = {
                "ack": self._ack,
                "maxEvents": self._max_events,
                # The first poll answers at once: it proves the stream is up.
                "returnImmediately": not connected,
            }
            if self._errors:
                body["setErrs"] = self._errors
            response = await http.post(str(self._poll_url), json=body, headers=headers)
            if response.status_code == httpx.codes.NOT_FOUND:
                # Deleted or disabled by the broker: subscribe again.
                self._poll_url = self.stream_id = None
                return connected
            if response.status_code != httpx.codes.OK:
                _log.warning("ssf poll refused: status %s", response.status_code)
                return False
            self._ack, self._errors = [], {}
            answer = response.json()
            sets = answer.get("sets") if isinstance(answer, dict) else None
            if not isinstance(sets, dict):
                msg = "ssf poll answer has no sets"
                raise ValueError(msg)  # noqa: TRY004 - a malformed answer, as JSON errors
            await self._take(sets, sink)
            if not connected:
                connected = True
                sink.mark_connected()

    async def _take(self, sets: Mapping[str, object], sink: RevocationSink) -> None:
        for jti, token in sets.items():
            if not isinstance(token, str):
                self._errors[jti] = {
                    "err": "invalid_request",
                    "description": "not a jwt",
                }
                continue
            try:
                # A JWKS fetch may block on the network: off the event loop.
                claims = await asyncio.to_thread(
                    verify_set,
                    token,
                    keys=self._keys,
                    issuer=self._issuer,
                    audience=self.audience,
                )
            except TokenError as error:
                code = (
                    "invalid_key"
                    if isinstance(error, TokenSignatureError)
                    else "invalid_request"
                )
                _log.warning("ssf event refused: %s", error.detail)
                self._errors[jti] = {"err": code, "description": error.detail}
                continue
            self.sets_seen += 1
            revoked = _revoked_token(claims)
            if revoked is not None:
                sink.revoke(revoked[0], at=revoked[1])
            self._ack.append(jti)

    async def close(self, http: httpx.AsyncClient, api_token: str) -> None:
        """Delete this process's stream (best effort: the broker expires it anyway)."""
        if self.stream_id is None or self._configuration is None:
            return
        try:
            await http.delete(
                str(self._configuration["configuration_endpoint"]),
                params={"stream_id": self.stream_id},
                headers={"Authorization": f"Bearer {api_token}"},
            )
        except httpx.HTTPError:
            _log.warning("ssf stream could not be deleted; it expires by inactivity")
        self.stream_id = self._poll_url = None
