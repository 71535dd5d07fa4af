"""
JSON Web Keys: parsing, canonical public forms and RFC 7638 thumbprints.

Agents register a public key as a JWK or a PEM; gatepass keeps only the canonical
public members (``kty``, ``crv``, ``x``, ``y``) and derives the JWS algorithm from
the key type, so an algorithm is always pinned to a key and never read from a token
(RFC 8725 §3.1). DPoP proofs may also carry P-384 and RSA keys, so the key loader
used for them accepts those too.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from gatepass.errors import InvalidRequestError

__all__ = [
    "PRIVATE_MEMBERS",
    "PublicKey",
    "algorithm_for",
    "b64url",
    "b64url_decode",
    "load_public_jwk",
    "public_jwk_from_key",
    "public_key_from_jwk",
    "thumbprint",
]

PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey

# RFC 7517 §9.3 / RFC 7518 §6.2.2, §6.3.2, §6.4.1 and RFC 8037 §2: the members that
# only a private (or symmetric) key carries. Their presence means a secret was sent.
PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})

# RFC 7518 §3.4: the byte length of a coordinate on each supported curve.
_EC_CURVES: dict[str, tuple[type[ec.EllipticCurve], int]] = {
    "P-256": (ec.SECP256R1, 32),
    "P-384": (ec.SECP384R1, 48),
}
_EC_NAMES = {"secp256r1": "P-256", "secp384r1": "P-384"}
_ED25519_LENGTH = 32
# RFC 7518 §3.3 / §3.5: RSA keys of 2048 bits or more.
_RSA_MIN_BITS = 2048
_RSA_MAX_BITS = 8192
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_FROM_URLSAFE = bytes.maketrans(b"-_", b"+/")
# The base64url characters whose 6-bit value has its low 4 (2) bits clear.
_CANONICAL_LAST_OF_2 = frozenset("AQgw")
_CANONICAL_LAST_OF_3 = frozenset("AEIMQUYcgkosw048")
_PEM_PRIVATE = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----")


def b64url(data: bytes) -> str:
    """
    Encode bytes as base64url without padding (RFC 7515 §2).

    Args:
        data: the bytes to encode.

    Returns:
        The unpadded base64url text.
    """
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """
    Decode unpadded base64url strictly: canonical encodings only.

    A lenient decoder accepts several spellings of the same bytes (unused trailing
    bits, stray characters), so a token whose text was altered could still verify.

    Args:
        text: unpadded base64url text.

    Returns:
        The decoded bytes.

    Raises:
        ValueError: the text is not the canonical encoding of any bytes.
    """
    tail = len(text) % 4
    if tail == 1 or _B64URL.fullmatch(text) is None:
        raise ValueError("not base64url")
    # RFC 4648 §3.5: a final group of 2 (3) characters carries 4 (2) unused low
    # bits, which must be zero; any other last character is a second spelling of
    # the same bytes.
    if (tail == 2 and text[-1] not in _CANONICAL_LAST_OF_2) or (
        tail == 3 and text[-1] not in _CANONICAL_LAST_OF_3
    ):
        raise ValueError("not canonical base64url")
    # The alphabet, length and last character were checked above, so decoding
    # cannot fail here and the encoding is canonical.
    return binascii.a2b_base64(
        text.encode("ascii").translate(_FROM_URLSAFE) + b"=" * (-tail % 4)
    )


def _member(jwk: Mapping[str, Any], name: str, length: int | None = None) -> bytes:
    value = jwk.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidRequestError(f"jwk member {name} is missing")
    try:
        data = b64url_decode(value)
    except ValueError:
        raise InvalidRequestError(f"jwk member {name} is not base64url") from None
    if length is not None and len(data) != length:
        raise InvalidRequestError(f"jwk member {name} has the wrong length")
    return data


def _reject_private(jwk: Mapping[str, Any]) -> None:
    if PRIVATE_MEMBERS.intersection(jwk):
        raise InvalidRequestError("private keys are not accepted; send the public key")


def _ec_key(jwk: Mapping[str, Any], *, curves: frozenset[str]) -> PublicKey:
    crv = jwk.get("crv")
    if not isinstance(crv, str) or crv not in curves:
        raise InvalidRequestError("unsupported elliptic curve")
    curve, length = _EC_CURVES[crv]
    x = _member(jwk, "x", length)
    y = _member(jwk, "y", length)
    try:
        # cryptography checks that the point lies on the curve (invalid-curve attacks).
        return ec.EllipticCurvePublicNumbers(
            int.from_bytes(x, "big"), int.from_bytes(y, "big"), curve()
        ).public_key()
    except ValueError:
        raise InvalidRequestError("jwk is not a point on its curve") from None


def _okp_key(jwk: Mapping[str, Any]) -> PublicKey:
    if jwk.get("crv") != "Ed25519":
        raise InvalidRequestError("unsupported okp curve")
    # Any 32 bytes are an Ed25519 public key encoding (RFC 8032 §5.1.3 rejects bad
    # points at verification time).
    return ed25519.Ed25519PublicKey.from_public_bytes(
        _member(jwk, "x", _ED25519_LENGTH)
    )


def _rsa_key(jwk: Mapping[str, Any]) -> PublicKey:
    n = int.from_bytes(_member(jwk, "n"), "big")
    e = int.from_bytes(_member(jwk, "e"), "big")
    if not _RSA_MIN_BITS <= n.bit_length() <= _RSA_MAX_BITS:
        raise InvalidRequestError("rsa key size is not accepted")
    try:
        return rsa.RSAPublicNumbers(e, n).public_key()
    except ValueError:
        raise InvalidRequestError("rsa key is invalid") from None


def public_key_from_jwk(jwk: Mapping[str, Any]) -> PublicKey:
    """
    Build a public key object that PyJWT and cryptography can verify with.

    Accepts EC P-256 and P-384, OKP Ed25519 and RSA (2048 to 8192 bits) keys, the
    types a DPoP proof may use; registered keys are further restricted by
    :func:`load_public_jwk`.

    Args:
        jwk: a public JWK.

    Returns:
        A cryptography public key.

    Raises:
        InvalidRequestError: the JWK is private, malformed or of an unsupported type.
    """
    if not isinstance(jwk, Mapping):
        raise InvalidRequestError("jwk must be a json object")
    _reject_private(jwk)
    kty = jwk.get("kty")
    if kty == "EC":
        return _ec_key(jwk, curves=frozenset(_EC_CURVES))
    if kty == "OKP":
        return _okp_key(jwk)
    if kty == "RSA":
        return _rsa_key(jwk)
    raise InvalidRequestError("unsupported key type")


def public_jwk_from_key(key: object) -> dict[str, Any]:
    """
    Return the canonical public JWK of a key object (public or private).

    Args:
        key: a cryptography EC (P-256, P-384), Ed25519 or RSA key.

    Returns:
        The JWK with only its public members: kty/crv/x/y, kty/crv/x or kty/n/e.

    Raises:
        InvalidRequestError: the key type is not supported.
    """
    if isinstance(
        key,
        ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey,
    ):
        key = key.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        crv = _EC_NAMES.get(key.curve.name)
        if crv is None:
            raise InvalidRequestError("unsupported elliptic curve")
        length = _EC_CURVES[crv][1]
        numbers = key.public_numbers()
        return {
            "kty": "EC",
            "crv": crv,
            "x": b64url(numbers.x.to_bytes(length, "big")),
            "y": b64url(numbers.y.to_bytes(length, "big")),
        }
    if isinstance(key, ed25519.Ed25519PublicKey):
        raw = key.public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return {"kty": "OKP", "crv": "Ed25519", "x": b64url(raw)}
    if isinstance(key, rsa.RSAPublicKey):
        rsa_numbers = key.public_numbers()
        return {
            "kty": "RSA",
            "n": b64url(_int_bytes(rsa_numbers.n)),
            "e": b64url(_int_bytes(rsa_numbers.e)),
        }
    raise InvalidRequestError("unsupported key type")


def _int_bytes(value: int) -> bytes:
    # RFC 7518 §6.3.1.1: the minimal big-endian octets of the integer.
    return value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")


def _from_pem(text: str) -> dict[str, Any]:
    if _PEM_PRIVATE.search(text):
        raise InvalidRequestError("private keys are not accepted; send the public key")
    try:
        key = serialization.load_pem_public_key(text.encode("utf-8"))
    except (ValueError, UnsupportedAlgorithm):
        raise InvalidRequestError("public key pem cannot be parsed") from None
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name != "secp256r1":
            raise InvalidRequestError("unsupported elliptic curve")
        return public_jwk_from_key(key)
    if isinstance(key, ed25519.Ed25519PublicKey):
        return public_jwk_from_key(key)
    raise InvalidRequestError("unsupported key type")


def load_public_jwk(value: str | Mapping[str, Any]) -> dict[str, Any]:
    """
    Parse an agent's public key and return its canonical public JWK.

    Only P-256 (``ES256``) and Ed25519 (``EdDSA``) keys are accepted. A private key
    is refused outright and never echoed.

    Args:
        value: a JWK object, a JWK as JSON text, or a PEM public key.

    Returns:
        The JWK with only ``kty``, ``crv``, ``x`` and (for EC) ``y``.

    Raises:
        InvalidRequestError: the value is private, malformed or unsupported.
    """
    if isinstance(value, str):
        text = value.strip()
        if "-----BEGIN" in text:
            return _from_pem(text)
        try:
            parsed = json.loads(text)
        except (ValueError, RecursionError):
            raise InvalidRequestError("public key is neither a jwk nor a pem") from None
        if not isinstance(parsed, dict):
            raise InvalidRequestError("jwk must be a json object")
        value = parsed
    if not isinstance(value, Mapping):
        raise InvalidRequestError("jwk must be a json object")
    _reject_private(value)
    kty = value.get("kty")
    if kty == "EC":
        key = _ec_key(value, curves=frozenset({"P-256"}))
    elif kty == "OKP":
        key = _okp_key(value)
    else:
        raise InvalidRequestError("unsupported key type")
    return public_jwk_from_key(key)


def algorithm_for(jwk: Mapping[str, Any]) -> str:
    """
    Return the JWS algorithm pinned to a registered key's type.

    Args:
        jwk: a P-256 or Ed25519 JWK.

    Returns:
        ``"ES256"`` or ``"EdDSA"``.

    Raises:
        InvalidRequestError: the key type has no pinned algorithm.
    """
    kty, crv = jwk.get("kty"), jwk.get("crv")
    if kty == "EC" and crv == "P-256":
        return "ES256"
    if kty == "OKP" and crv == "Ed25519":
        return "EdDSA"
    raise InvalidRequestError("unsupported key type")


# RFC 7638 §3.2: the required members of each key type, and only those.
_THUMBPRINT_MEMBERS = {
    "EC": ("crv", "kty", "x", "y"),
    "OKP": ("crv", "kty", "x"),
    "RSA": ("e", "kty", "n"),
}


def thumbprint(jwk: Mapping[str, Any]) -> str:
    """
    Return the RFC 7638 SHA-256 thumbprint of a JWK.

    Args:
        jwk: an EC, OKP or RSA JWK (other members are ignored).

    Returns:
        The base64url (unpadded) SHA-256 of the canonical JSON of the required members.

    Raises:
        InvalidRequestError: the key type is unsupported or a member is missing.
    """
    kty = jwk.get("kty")
    members = _THUMBPRINT_MEMBERS.get(kty) if isinstance(kty, str) else None
    if members is None:
        raise InvalidRequestError("unsupported key type")
    canonical: dict[str, str] = {}
    for name in members:
        member = jwk.get(name)
        if not isinstance(member, str):
            raise InvalidRequestError(f"jwk member {name} is missing")
        canonical[name] = member
    # RFC 7638 §3.3: lexicographic order, no whitespace, UTF-8.
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"))
    return b64url(hashlib.sha256(text.encode("utf-8")).digest())
