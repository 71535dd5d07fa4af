"""
Reading an issuer's keys: a JWK Set (RFC 7517 §5) or a SPIFFE bundle.

A SPIFFE bundle is a JWK Set with ``spiffe_sequence`` and ``spiffe_refresh_hint``
members whose keys say what they are for: ``use: jwt-svid`` keys verify JWT-SVIDs,
``use: x509-svid`` keys are X.509 roots and are ignored here, as are unknown uses
and key types (SPIFFE Trust Domain and Bundle §4.1-4.2). It is parsed here rather
than with the ``spiffe`` package, which would pull grpcio into the broker
(FACTS.md) for what is one JSON document.

Each key gets exactly one algorithm, pinned by its type and the issuer's configured
algorithms (and the JWK's own ``alg`` when it has one, which must agree): tokens
never choose it (RFC 8725 §3.1). A document that carries a private key or a
symmetric (``oct``) key is refused as a whole: publishing one is a compromise or a
misconfiguration, and nothing from such a document should be trusted.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gatepass.errors import InvalidRequestError
from gatepass.tokens import (
    PRIVATE_MEMBERS,
    PublicKey,
    canonical_algorithm,
    public_key_from_jwk,
)

__all__ = ["KeySet", "VerificationKey", "parse_key_set"]

_MAX_KID_LENGTH = 256
# RFC 7518 §3.3-3.5 and RFC 8037 §3.1: the algorithms each key type can verify.
_FAMILIES: dict[tuple[str, str | None], frozenset[str]] = {
    ("EC", "P-256"): frozenset({"ES256"}),
    ("EC", "P-384"): frozenset({"ES384"}),
    ("OKP", "Ed25519"): frozenset({"EdDSA"}),
    ("RSA", None): frozenset({"RS256", "PS256"}),
}


def _reject_constant(name: str) -> None:
    # RFC 8259 §6: NaN and Infinity are not JSON numbers.
    raise ValueError(name)


@dataclass(frozen=True, slots=True)
class VerificationKey:
    """
    One public key an issuer signs with.

    Attributes:
        kid: its key id.
        key: the cryptography public key.
        algorithm: the one algorithm pinned to it.
    """

    kid: str
    key: PublicKey = field(repr=False)
    algorithm: str


@dataclass(frozen=True, slots=True)
class KeySet:
    """
    The usable keys of one document.

    Attributes:
        keys: the keys by kid.
        sequence: the SPIFFE bundle's ``spiffe_sequence``, if any.
        refresh_hint: the SPIFFE bundle's ``spiffe_refresh_hint``, if any.
        skipped: entries ignored (other uses, unknown or unpinned types, no kid).
    """

    keys: Mapping[str, VerificationKey]
    sequence: int | None = None
    refresh_hint: dt.timedelta | None = None
    skipped: int = 0


def _whole_number(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def _algorithm(entry: Mapping[str, Any], algorithms: frozenset[str]) -> str | None:
    kty = entry.get("kty")
    crv = entry.get("crv") if kty != "RSA" else None
    family = _FAMILIES.get((kty, crv)) if isinstance(kty, str) else None
    if family is None:
        return None
    candidates = family & algorithms
    if "alg" in entry:
        declared = canonical_algorithm(entry["alg"])
        return declared if declared in candidates else None
    return next(iter(candidates)) if len(candidates) == 1 else None


def _wanted(entry: Mapping[str, Any], *, spiffe_bundle: bool) -> bool:
    use = entry.get("use")
    if spiffe_bundle:
        # SPIFFE bundle §4.2.2: use is required and case sensitive.
        return use == "jwt-svid"
    # RFC 7517 §4.2: a key without "use" may sign; "enc" keys never verify.
    return use is None or use == "sig"


def _entry_key(
    entry: Mapping[str, Any], algorithms: frozenset[str]
) -> VerificationKey | None:
    kid = entry.get("kid")
    if not isinstance(kid, str) or not 0 < len(kid) <= _MAX_KID_LENGTH:
        return None
    algorithm = _algorithm(entry, algorithms)
    if algorithm is None:
        return None
    try:
        key = public_key_from_jwk(entry)
    except InvalidRequestError:
        return None
    return VerificationKey(kid=kid, key=key, algorithm=algorithm)


def _keys(
    entries: list[Any], pinned: frozenset[str], *, spiffe_bundle: bool
) -> tuple[dict[str, VerificationKey], int]:
    keys: dict[str, VerificationKey] = {}
    skipped = 0
    for entry in entries:
        if not isinstance(entry, dict):
            skipped += 1
            continue
        # RFC 8725 §3.1 / §2.1: a MAC key must never verify a public issuer's
        # tokens, and a published private key means the issuer is compromised.
        if entry.get("kty") == "oct":
            raise ValueError("key set contains a symmetric key")
        if PRIVATE_MEMBERS.intersection(entry):
            raise ValueError("key set contains private key material")
        wanted = _wanted(entry, spiffe_bundle=spiffe_bundle)
        key = _entry_key(entry, pinned) if wanted else None
        if key is None:
            skipped += 1
            continue
        if key.kid in keys:
            raise ValueError("key set repeats a kid")
        keys[key.kid] = key
    return keys, skipped


def parse_key_set(
    document: bytes,
    *,
    algorithms: frozenset[str],
    max_keys: int,
    spiffe_bundle: bool,
) -> KeySet:
    """
    Parse a JWK Set or SPIFFE bundle into the keys that may verify tokens.

    Args:
        document: the JSON bytes.
        algorithms: the issuer's pinned algorithms (``Ed25519`` counts as
            ``EdDSA``).
        max_keys: the most entries the document may have.
        spiffe_bundle: read it as a SPIFFE bundle (``use: jwt-svid`` keys only).

    Returns:
        The usable keys.

    Raises:
        ValueError: the document is not a JWK Set, has too many entries, carries
            a private or symmetric key or a repeated kid, or has no usable key.
    """
    pinned = frozenset(canonical_algorithm(name) or "" for name in algorithms)
    try:
        parsed = json.loads(document, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise ValueError("key set is not json") from None
    entries = parsed.get("keys") if isinstance(parsed, dict) else None
    if not isinstance(entries, list):
        raise ValueError("key set has no keys array")  # noqa: TRY004 - bad input
    if len(entries) > max_keys:
        raise ValueError(f"key set has more than {max_keys} keys")
    keys, skipped = _keys(entries, pinned, spiffe_bundle=spiffe_bundle)
    if not keys:
        raise ValueError("key set has no usable signing key")
    if not spiffe_bundle:
        return KeySet(keys=keys, skipped=skipped)
    hint = _whole_number(parsed.get("spiffe_refresh_hint"))
    return KeySet(
        keys=keys,
        sequence=_whole_number(parsed.get("spiffe_sequence")),
        refresh_hint=dt.timedelta(seconds=hint) if hint else None,
        skipped=skipped,
    )
