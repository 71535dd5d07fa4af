"""
The broker's token signing keys: generation, rotation and the key ring.

Each key moves ``next → current → retired``. A *next* key is published in the JWKS
one rotation before it signs anything, so verifiers that cache the JWKS already know
it when the first token signed with it arrives; a *retired* key stays published until
the tokens it signed have expired. Private keys are stored only sealed with the
master key (DESIGN ground rule 8).
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from gatepass.errors import ConfigurationError, InvalidRequestError, TokenSignatureError
from gatepass.sealing import Sealer
from gatepass.tokens.jwk import (
    PublicKey,
    algorithm_for,
    public_jwk_from_key,
    public_key_from_jwk,
)
from gatepass.tokens.jwk import thumbprint as jwk_thumbprint

__all__ = [
    "SIGNING_ALGORITHMS",
    "KeyRecord",
    "KeyRing",
    "KeyState",
    "PrivateKey",
    "generate_key",
    "rotate",
]

# RFC 8725 §3.2: asymmetric algorithms only; one algorithm per key type.
SIGNING_ALGORITHMS = frozenset({"ES256", "EdDSA"})

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


class KeyState(enum.StrEnum):
    """Where a signing key is in its life."""

    NEXT = "next"
    CURRENT = "current"
    RETIRED = "retired"


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyRecord:
    """
    One signing key as the store keeps it.

    Attributes:
        kid: the RFC 7638 thumbprint of the public key.
        algorithm: ``ES256`` or ``EdDSA``, pinned to the key.
        state: next, current or retired.
        sealed_private: the PKCS8 PEM private key, sealed with the master key.
        public_jwk: the canonical public JWK.
        created_at: when the key was generated.
        activated_at: when it became current, if it did.
        retired_at: when it was retired, if it was.
    """

    kid: str
    algorithm: str
    state: KeyState
    sealed_private: bytes
    public_jwk: dict[str, Any]
    created_at: dt.datetime
    activated_at: dt.datetime | None
    retired_at: dt.datetime | None

    def __repr__(self) -> str:
        """Show the key's identity and state, never its sealed material."""
        return (
            f"KeyRecord(kid={self.kid!r}, algorithm={self.algorithm!r}, "
            f"state={self.state.value!r})"
        )


def _new_private_key(algorithm: str) -> PrivateKey:
    if algorithm == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    raise ConfigurationError("unsupported signing algorithm")


def generate_key(
    algorithm: str, *, sealer: Sealer, now: dt.datetime, state: KeyState
) -> KeyRecord:
    """
    Generate a signing key and seal its private half.

    Args:
        algorithm: ``ES256`` or ``EdDSA``.
        sealer: seals the PKCS8 PEM private key.
        now: the creation time (and activation or retirement time for those states).
        state: the state the key starts in.

    Returns:
        The new record; its kid is the RFC 7638 thumbprint.

    Raises:
        ConfigurationError: the algorithm is not a supported signing algorithm.
    """
    private_key = _new_private_key(algorithm)
    pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_jwk = public_jwk_from_key(private_key)
    return KeyRecord(
        kid=jwk_thumbprint(public_jwk),
        algorithm=algorithm,
        state=state,
        sealed_private=sealer.seal(pem),
        public_jwk=public_jwk,
        created_at=now,
        activated_at=now if state is KeyState.CURRENT else None,
        retired_at=now if state is KeyState.RETIRED else None,
    )


def rotate(
    records: Sequence[KeyRecord],
    *,
    algorithm: str,
    sealer: Sealer,
    now: dt.datetime,
    retire_after: dt.timedelta,
) -> list[KeyRecord]:
    """
    Return the key list after one rotation; the input is not changed.

    With no records, a current and a next key are created. Otherwise the next key
    becomes current, the current key is retired, retired keys older than
    ``retire_after`` are dropped, and a new next key is added. If there is no next
    key (a hand-edited ring), the current key keeps signing and only a next key is
    added, so that no key ever signs before it has been published.

    Args:
        records: the present keys.
        algorithm: the algorithm of the new next key.
        sealer: seals the new key.
        now: the rotation time.
        retire_after: how long a retired key stays published; at least the longest
            token lifetime plus the verifiers' JWKS cache time.

    Returns:
        The new key list, current first.

    Raises:
        ConfigurationError: the ring has more than one current or next key, or the
            algorithm is unsupported.
    """
    if not records:
        return [
            generate_key(algorithm, sealer=sealer, now=now, state=KeyState.CURRENT),
            generate_key(algorithm, sealer=sealer, now=now, state=KeyState.NEXT),
        ]
    _single(records, KeyState.CURRENT)
    has_next = _single(records, KeyState.NEXT) is not None
    current: list[KeyRecord] = []
    retired: list[KeyRecord] = []
    for record in records:
        if record.state is KeyState.NEXT:
            current.append(replace(record, state=KeyState.CURRENT, activated_at=now))
        elif record.state is KeyState.CURRENT:
            if has_next:
                retired.append(replace(record, state=KeyState.RETIRED, retired_at=now))
            else:
                current.append(record)
        else:
            since = record.retired_at or record.created_at
            if since + retire_after >= now:
                retired.append(record)
    upcoming = generate_key(algorithm, sealer=sealer, now=now, state=KeyState.NEXT)
    return [*current, upcoming, *retired]


def _single(records: Sequence[KeyRecord], state: KeyState) -> KeyRecord | None:
    found = [record for record in records if record.state is state]
    if len(found) > 1:
        raise ConfigurationError(f"key ring has more than one {state.value} key")
    return found[0] if found else None


class KeyRing:
    """
    The published signing keys and the unsealed current private key.

    Args:
        records: the key records; exactly one must be current.
        sealer: opens the current key's sealed private key.

    Raises:
        ConfigurationError: no current key, several, an unsupported algorithm, or a
            record whose private key, public key and kid do not agree.
    """

    __slots__ = (
        "_jwks",
        "_public",
        "_records",
        "sign_key",
        "signing_algorithm",
        "signing_kid",
    )

    def __init__(self, records: Sequence[KeyRecord], sealer: Sealer) -> None:
        """Check the records and unseal the current key once."""
        current = _single(records, KeyState.CURRENT)
        if current is None:
            raise ConfigurationError("key ring has no current key")
        self._records = tuple(records)
        self._public: dict[str, tuple[PublicKey, str]] = {}
        for record in self._records:
            if record.algorithm not in SIGNING_ALGORITHMS:
                raise ConfigurationError("unsupported signing algorithm")
            try:
                key = public_key_from_jwk(record.public_jwk)
                pinned = algorithm_for(record.public_jwk)
            except InvalidRequestError:
                raise ConfigurationError("signing key record is corrupt") from None
            if pinned != record.algorithm:
                raise ConfigurationError("signing key does not match its algorithm")
            if jwk_thumbprint(record.public_jwk) != record.kid:
                raise ConfigurationError("signing key kid does not match its key")
            self._public[record.kid] = (key, record.algorithm)
        self.sign_key: PrivateKey = self._unseal(current, sealer)
        self.signing_kid: str = current.kid
        self.signing_algorithm: str = current.algorithm
        order = {KeyState.CURRENT: 0, KeyState.NEXT: 1, KeyState.RETIRED: 2}
        self._jwks: list[dict[str, Any]] = [
            {
                **record.public_jwk,
                "kid": record.kid,
                "alg": record.algorithm,
                "use": "sig",
            }
            for record in sorted(self._records, key=lambda item: order[item.state])
        ]

    @staticmethod
    def _unseal(record: KeyRecord, sealer: Sealer) -> PrivateKey:
        pem = sealer.unseal(record.sealed_private)
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            raise ConfigurationError("signing key record is corrupt") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
            raise ConfigurationError("signing key does not match its algorithm")
        if public_jwk_from_key(key) != record.public_jwk:
            raise ConfigurationError("signing key does not match its public key")
        return key

    @property
    def records(self) -> tuple[KeyRecord, ...]:
        """The records the ring was built from."""
        return self._records

    def jwks(self) -> dict[str, Any]:
        """
        Return the JWK Set to publish (RFC 7517 §5): current, next and retired keys.

        Returns:
            ``{"keys": [...]}``: public members plus ``kid``, ``alg`` and ``use``.
        """
        return {"keys": [dict(key) for key in self._jwks]}

    def key_for(self, kid: str) -> tuple[object, str]:
        """
        Return the public key and pinned algorithm for a kid.

        Args:
            kid: the ``kid`` header of a token.

        Returns:
            The public key and its algorithm.

        Raises:
            TokenSignatureError: no published key has that kid.
        """
        found = self._public.get(kid)
        if found is None:
            raise TokenSignatureError("unknown signing key")
        return found
