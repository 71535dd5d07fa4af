"""
Signed checkpoints: the audit key vouches for the chain up to a sequence number.

A checkpoint signs ``canonical_bytes({"seq", "hash", "at", "kid"})`` with Ed25519
(RFC 8032). The hash chain alone detects edits and deletions *inside* the log;
only a signature made with a key held outside the database stops someone with
write access from rewriting or truncating the tail and recomputing every hash.

The private key is kept sealed with the master key (DESIGN ground rule 8); the
public key is published as an OKP JWK (RFC 8037) whose ``kid`` is its RFC 7638
thumbprint, so a verifier needs nothing but the log and that key.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, NoReturn, Self

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from gatepass.audit.canonical import canonical_bytes, format_timestamp, parse_timestamp
from gatepass.audit.mac import AuditMac
from gatepass.errors import AuditIntegrityError, ConfigurationError
from gatepass.sealing import Sealer

__all__ = [
    "AuditSigner",
    "Checkpoint",
    "jwk_thumbprint",
    "load_public_keys",
    "verify_checkpoint",
]

_ED25519_KEY_BYTES: Final = 32
_ED25519_SIGNATURE_BYTES: Final = 64
_HEX_HASH = re.compile(r"[0-9a-f]{64}")


def _b64url_encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    """Decode unpadded base64url strictly: no stray characters are skipped."""
    padded = text + "=" * (-len(text) % 4)
    return base64.b64decode(padded, altchars=b"-_", validate=True)


def _signing_input(seq: int, hash_: str, at: dt.datetime, kid: str) -> bytes:
    return canonical_bytes(
        {"seq": seq, "hash": hash_, "at": format_timestamp(at), "kid": kid}
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Checkpoint:
    """
    The audit key's signature over the chain hash at one sequence number.

    Args:
        seq: the record the checkpoint vouches for (and, through the chain, all
            records before it).
        hash: that record's chain hash.
        at: when the checkpoint was made, aware UTC.
        kid: the RFC 7638 thumbprint of the signing key.
        signature: base64url (unpadded) Ed25519 signature over
            ``canonical_bytes({"seq", "hash", "at", "kid"})``.
    """

    seq: int
    hash: str
    at: dt.datetime
    kid: str
    signature: str

    def signing_input(self) -> bytes:
        """Return the exact bytes the signature covers."""
        return _signing_input(self.seq, self.hash, self.at, self.kid)

    def to_json(self) -> dict[str, Any]:
        """Return the checkpoint as a JSON object, its time in RFC 3339 UTC."""
        return {
            "seq": self.seq,
            "hash": self.hash,
            "at": format_timestamp(self.at),
            "kid": self.kid,
            "signature": self.signature,
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Self:
        """
        Rebuild a checkpoint from :meth:`to_json` output.

        Args:
            obj: a decoded JSON object.

        Raises:
            AuditIntegrityError: a field is missing or has the wrong type or form.
        """
        seq = obj.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool):
            raise AuditIntegrityError("malformed checkpoint: seq is not an integer")
        where = f"malformed checkpoint at seq {seq}"
        for name in ("hash", "at", "kid", "signature"):
            if not isinstance(obj.get(name), str):
                raise AuditIntegrityError(f"{where}: {name} is not a string")
        if not _HEX_HASH.fullmatch(obj["hash"]):
            raise AuditIntegrityError(f"{where}: hash is not a sha-256 hex digest")
        try:
            at = parse_timestamp(obj["at"])
        except ValueError as exc:
            raise AuditIntegrityError(f"{where}: at is not rfc 3339 utc") from exc
        return cls(
            seq=seq,
            hash=obj["hash"],
            at=at,
            kid=obj["kid"],
            signature=obj["signature"],
        )


def jwk_thumbprint(x: str) -> str:
    """
    Return the RFC 7638 thumbprint of an Ed25519 OKP public key.

    RFC 8037 §2 names ``crv``, ``kty`` and ``x`` as the required members; RFC 7638
    §3 hashes them in lexicographic order with no whitespace.

    Args:
        x: the base64url public key, as in the JWK's ``x`` member.

    Returns:
        The unpadded base64url SHA-256 thumbprint.
    """
    members = {"crv": "Ed25519", "kty": "OKP", "x": x}
    return _b64url_encode(hashlib.sha256(canonical_bytes(members)).digest())


def _load_public_key(jwk: Mapping[str, Any]) -> tuple[str, Ed25519PublicKey]:
    if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
        raise AuditIntegrityError("audit public key is not an ed25519 okp jwk")
    x = jwk.get("x")
    if not isinstance(x, str):
        raise AuditIntegrityError("audit public key has no x member")
    try:
        raw = _b64url_decode(x)
    except (binascii.Error, ValueError) as exc:
        raise AuditIntegrityError("audit public key x is not base64url") from exc
    if len(raw) != _ED25519_KEY_BYTES:
        raise AuditIntegrityError("audit public key x is not 32 bytes")
    kid = jwk_thumbprint(_b64url_encode(raw))
    if "kid" in jwk and jwk["kid"] != kid:
        raise AuditIntegrityError("audit public key kid is not its rfc 7638 thumbprint")
    return kid, Ed25519PublicKey.from_public_bytes(raw)


def load_public_keys(public_jwk: Mapping[str, Any]) -> dict[str, Ed25519PublicKey]:
    """
    Return the verification keys of an audit JWK, or of a JWK set during rotation.

    Args:
        public_jwk: one OKP Ed25519 JWK, or ``{"keys": [jwk, ...]}``.

    Returns:
        The keys by their RFC 7638 thumbprint.

    Raises:
        AuditIntegrityError: a key is malformed or its ``kid`` is not its thumbprint.
    """
    keys = public_jwk.get("keys")
    if keys is None:
        jwks: list[Mapping[str, Any]] = [public_jwk]
    elif isinstance(keys, list) and all(isinstance(key, Mapping) for key in keys):
        jwks = keys
    else:
        raise AuditIntegrityError("audit key set is malformed")
    return dict(_load_public_key(jwk) for jwk in jwks)


def verify_checkpoint(
    checkpoint: Checkpoint, keys: Mapping[str, Ed25519PublicKey]
) -> None:
    """
    Check a checkpoint's signature.

    Args:
        checkpoint: the checkpoint to check.
        keys: trusted keys by kid, from :func:`load_public_keys`.

    Raises:
        AuditIntegrityError: the kid is unknown or the signature does not verify.
    """
    key = keys.get(checkpoint.kid)
    if key is None:
        raise AuditIntegrityError(
            f"checkpoint at seq {checkpoint.seq} is signed by unknown kid "
            f"{checkpoint.kid[:64]!r}"
        )
    try:
        signature = _b64url_decode(checkpoint.signature)
    except (binascii.Error, ValueError):
        _bad_signature(checkpoint)
    if len(signature) != _ED25519_SIGNATURE_BYTES:
        _bad_signature(checkpoint)
    try:
        key.verify(signature, checkpoint.signing_input())
    except InvalidSignature:
        _bad_signature(checkpoint)


def _bad_signature(checkpoint: Checkpoint) -> NoReturn:
    raise AuditIntegrityError(
        f"checkpoint at seq {checkpoint.seq} has an invalid signature"
    )


class AuditSigner:
    """
    Hold the audit private key and sign checkpoints with it.

    Build one with :meth:`generate` (first start) or :meth:`from_sealed`; the
    private key never leaves this object except sealed.

    Args:
        private_key: the Ed25519 audit key.
    """

    __slots__ = ("_key", "_kid", "_x")

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        """Derive the public key and its thumbprint."""
        self._key = private_key
        raw = private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self._x = _b64url_encode(raw)
        self._kid = jwk_thumbprint(self._x)

    @classmethod
    def generate(cls, sealer: Sealer) -> tuple[AuditSigner, bytes]:
        """
        Create a new audit key.

        Args:
            sealer: the master-key sealer.

        Returns:
            The signer and its PKCS #8 DER private key sealed with ``sealer``, to
            persist.
        """
        key = Ed25519PrivateKey.generate()
        pkcs8 = key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return cls(key), sealer.seal(pkcs8)

    @classmethod
    def from_sealed(cls, sealed: bytes, sealer: Sealer) -> AuditSigner:
        """
        Load the audit key persisted by :meth:`generate`.

        Args:
            sealed: the sealed PKCS #8 DER bytes.
            sealer: the master-key sealer.

        Raises:
            ConfigurationError: the master key cannot open it, or it is not an
                Ed25519 PKCS #8 key.
        """
        pkcs8 = sealer.unseal(sealed)
        try:
            key = serialization.load_der_private_key(pkcs8, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise ConfigurationError("sealed audit key is not a pkcs8 key") from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise ConfigurationError("sealed audit key is not an ed25519 key")
        return cls(key)

    @property
    def kid(self) -> str:
        """The RFC 7638 thumbprint of the public key."""
        return self._kid

    def mac(self) -> AuditMac:
        """
        Derive the record and journal MAC keys from this key (HKDF, RFC 5869).

        The keys exist only where the sealed audit key can be opened, so a copy of
        the database cannot forge a record or a journal line.
        """
        raw = self._key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        return AuditMac.derive(raw)

    @property
    def public_jwk(self) -> dict[str, str]:
        """The public key as an RFC 8037 OKP JWK, with its ``kid`` and ``alg``."""
        return {
            "kty": "OKP",
            "crv": "Ed25519",
            "x": self._x,
            "kid": self._kid,
            "alg": "EdDSA",
            "use": "sig",
        }

    def sign(self, seq: int, hash: str, at: dt.datetime) -> Checkpoint:  # noqa: A002 - the record field's name
        """
        Sign a checkpoint over the chain hash at ``seq``.

        Args:
            seq: the sequence number of the last record covered.
            hash: that record's chain hash.
            at: the checkpoint time, aware.

        Returns:
            The signed checkpoint.

        Raises:
            ValueError: ``at`` is naive.
        """
        if at.tzinfo is None or at.utcoffset() is None:
            raise ValueError("checkpoint time must be timezone-aware")
        at = at.astimezone(dt.UTC)
        signature = self._key.sign(_signing_input(seq, hash, at, self._kid))
        return Checkpoint(
            seq=seq,
            hash=hash,
            at=at,
            kid=self._kid,
            signature=_b64url_encode(signature),
        )

    def sign_statement(self, domain: bytes, payload: bytes) -> str:
        """
        Sign ``domain + payload`` with the audit key (an evidence bundle, say).

        The domain separates these signatures from checkpoints: a checkpoint's
        signing input is a JSON object, so a domain that cannot start one (not
        ``{`` and not whitespace) can never produce a checkpoint signature.

        Args:
            domain: a fixed label for the kind of statement, ending in a newline.
            payload: the statement's bytes.

        Returns:
            The unpadded base64url Ed25519 signature.

        Raises:
            ValueError: the domain is empty or could start a JSON object.
        """
        if not domain or not domain.endswith(b"\n") or domain[:1] in b"{ \t\r\n":
            raise ValueError("a statement domain must be a label ending in a newline")
        return _b64url_encode(self._key.sign(domain + payload))

    def __repr__(self) -> str:
        """Show the kid, never the key."""
        return f"AuditSigner(kid={self._kid!r})"
