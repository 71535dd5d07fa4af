"""
SSH engine: OpenSSH user certificates signed by a per-target gatepass CA, and a KRL.

The agent keeps its own private key and sends only the public half; gatepass answers
with a short-lived user certificate whose key id is the lease id. Hosts trust the
CA (``TrustedUserCAKeys``) and pull the key revocation list (``RevokedKeys``), since
a certificate cannot be deleted from a host: revoking or reaping one means listing
it in the KRL until its validity ends.

Files in the state directory, per target ``<name>``:

- ``ssh-ca-<name>.sealed``: the CA private key (PKCS#8 PEM), sealed, mode 0600.
- ``ssh-ca-<name>.pub``: the CA public key, for ``ssh-keygen -s`` and operators.
- ``ssh-certs-<name>.json``: issued certificates (key id, serials, end of
  validity, revoked flag) until their validity ends.
- ``ssh-krl-<name>.krl``: the KRL, regenerated with ``ssh-keygen -k`` and
  replaced atomically.

One broker process owns these files; replicas sharing a state directory would need
a file lock around the certificate list.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import datetime as dt
import ipaddress
import json
import os
import re
import secrets
import shutil
import struct
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization.ssh import (
    SSHCertificate,
    SSHCertificateBuilder,
    SSHCertificateType,
    load_ssh_public_identity,
)
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from gatepass.engines.base import IssuedCredential, IssueRequest, SecretEngine
from gatepass.engines.context import EngineContext
from gatepass.errors import (
    ConfigurationError,
    ConflictError,
    EngineError,
    InvalidRequestError,
    InvalidScopeError,
)
from gatepass.ids import is_id
from gatepass.models import Target

__all__ = ["SSHEngine", "SSHSettings"]

# A login name as useradd(8) accepts it (NAME_REGEX), capped at 32 characters.
_PRINCIPAL = r"^[a-z_][a-z0-9_.-]{0,31}$"
Principal = Annotated[str, Field(pattern=_PRINCIPAL)]
Extension = Literal[
    "permit-pty",
    "permit-port-forwarding",
    "permit-agent-forwarding",
    "permit-X11-forwarding",
    "permit-user-rc",
]

# Hosts and the broker disagree about time by a few seconds; PROTOCOL.certkeys
# validity is checked by the host, so back-date the start a little.
CLOCK_SKEW = dt.timedelta(seconds=30)
SSH_KEYGEN_TIMEOUT_SECONDS = 10.0
# An RSA-16384 public key line is about 2.8 kB; anything longer is not a key.
MAX_PUBLIC_KEY_CHARS = 4096
MIN_RSA_BITS = 3072
MAX_RSA_BITS = 16384
_KEY_LINE = re.compile(
    r"\A(ssh-ed25519|ecdsa-sha2-nistp256|ssh-rsa) ([A-Za-z0-9+/]+={0,2})"
    r"(?: [\x20-\x7e]{0,255})?\Z"
)
_DEFAULT_EXTENSIONS: tuple[Extension, ...] = ("permit-pty",)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class SSHSettings(BaseModel):
    """
    The ``[targets.engine]`` table of an ``ssh`` target.

    Attributes:
        principals: for each action, the principals (host login names or names in
            ``AuthorizedPrincipalsFile``) its certificate carries.
        source_address: CIDRs the certificate may be used from (critical option).
        force_command: the command the host runs instead of the agent's (critical
            option).
        extensions: the OpenSSH extensions granted; ``permit-pty`` by default.
        ca_algorithm: the CA key type, fixed when the CA key is first generated.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    principals: dict[str, list[Principal]] = Field(min_length=1, max_length=32)
    source_address: list[str] | None = Field(default=None, min_length=1, max_length=32)
    force_command: str | None = Field(default=None, min_length=1, max_length=1024)
    extensions: list[Extension] = Field(
        default_factory=lambda: list(_DEFAULT_EXTENSIONS), max_length=5
    )
    ca_algorithm: Literal["ed25519", "ecdsa-p256"] = "ed25519"

    @field_validator("principals")
    @classmethod
    def _principals_not_empty(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for action, names in value.items():
            if not 1 <= len(names) <= 32:
                raise ValueError(f"{action}: needs 1 to 32 principals")
            if len(set(names)) != len(names):
                raise ValueError(f"{action}: repeats a principal")
        return value

    @field_validator("source_address")
    @classmethod
    def _cidrs(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        networks: list[str] = []
        for item in value:
            if len(item) > 64:
                raise ValueError("an entry is too long to be a CIDR")
            try:
                networks.append(str(ipaddress.ip_network(item, strict=True)))
            except ValueError:
                raise ValueError(
                    "each entry must be an address or CIDR such as 10.0.0.0/8, "
                    "without host bits"
                ) from None
        return networks

    @field_validator("force_command")
    @classmethod
    def _one_line(cls, value: str | None) -> str | None:
        if value is not None and _CONTROL.search(value):
            raise ValueError("must be one line without control characters")
        return value

    @field_validator("extensions")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("repeats an extension")
        return value


class SSHEngine:
    """
    Certify agents' own SSH keys with a per-target CA; revoke through a KRL.

    Args:
        target: the target this engine serves.
        settings: its validated engine settings.
        context: the state directory, sealer and clock.
    """

    kind: ClassVar[str] = "ssh"

    def __init__(
        self, target: Target, settings: SSHSettings, context: EngineContext
    ) -> None:
        """Keep the configuration; the CA key is loaded or generated on first use."""
        self._target = target
        self._settings = settings
        self._context = context
        self._lock = asyncio.Lock()
        self._ca_key: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | None
        self._ca_key = None
        state_dir = context.state_dir
        self._sealed_path = state_dir / f"ssh-ca-{target.name}.sealed"
        self._public_path = state_dir / f"ssh-ca-{target.name}.pub"
        self._certs_path = state_dir / f"ssh-certs-{target.name}.json"
        self._krl_path = state_dir / f"ssh-krl-{target.name}.krl"

    @classmethod
    def from_target(
        cls, target: Target, settings: Mapping[str, Any], context: EngineContext
    ) -> SSHEngine:
        """
        Build the engine from a target and its ``[targets.engine]`` table.

        Args:
            target: the configured target.
            settings: the raw engine table.
            context: shared engine facilities.

        Returns:
            The engine; no file is touched yet.

        Raises:
            ConfigurationError: a setting is missing, unknown or invalid.
        """
        prefix = f"targets.{target.name}.engine"
        try:
            parsed = SSHSettings.model_validate(dict(settings))
        except ValidationError as exc:
            problems = []
            for error in exc.errors(include_input=False, include_url=False):
                where = ".".join(str(part) for part in error["loc"])
                problems.append(f"{prefix}.{where}: {error['msg']}")
            raise ConfigurationError("; ".join(problems)) from None
        for action in parsed.principals:
            if action not in target.actions:
                raise ConfigurationError(
                    f"{prefix}.principals.{action}: not an action of the target"
                )
        return cls(target, parsed, context)

    @property
    def ca_public_key(self) -> str:
        """The CA public key as an OpenSSH line, for hosts' ``TrustedUserCAKeys``."""
        public = (
            self._ca()
            .public_key()
            .public_bytes(
                serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
            )
        )
        return f"{public.decode()} gatepass-ca-{self._target.name}"

    @property
    def krl_path(self) -> Path:
        """Where the KRL file lives; it exists after :meth:`check` or any issue."""
        return self._krl_path

    def krl_bytes(self) -> bytes:
        """
        Return the current KRL for hosts to pull (``RevokedKeys`` in ``sshd_config``).

        Before anything was revoked and before :meth:`check` built the file, this is
        an empty KRL, so hosts can be set up first.

        Raises:
            EngineError: the KRL file is gone although certificates were revoked
                (serving an empty list would reinstate them).
        """
        try:
            return self._krl_path.read_bytes()
        except FileNotFoundError:
            pass
        if any(entry["revoked"] for entry in self._load_certs().values()):
            raise EngineError("the krl file is missing; run check to rebuild it")
        return _empty_krl(int(self._context.clock.now().timestamp()))

    async def check(self) -> None:
        """
        Load (or create) the CA key and make sure ``ssh-keygen`` and the KRL exist.

        Raises:
            EngineError: ``ssh-keygen`` is not installed or cannot build the KRL.
            ConfigurationError: the sealed CA key cannot be opened.
        """
        self._ca()
        async with self._lock:
            if not self._krl_path.exists():
                await self._write_krl(self._load_certs())

    async def issue(self, request: IssueRequest) -> IssuedCredential:
        """
        Certify ``request.public_key`` for the principals of the requested actions.

        Reissuing for the same lease id is allowed (the key id stays the same, so
        a later revocation covers every certificate of the lease), unless the lease
        was revoked already.

        Raises:
            InvalidRequestError: the public key, lease id or expiry is unacceptable.
            InvalidScopeError: an action has no principals on this target.
            ConflictError: the lease was revoked.
            EngineError: the KRL cannot be written.
        """
        key = _parse_public_key(request.public_key)
        if not is_id(request.lease_id, "lse"):
            raise InvalidRequestError("lease id is malformed")
        principals = self._principals_for(request.actions)
        now = self._context.clock.now()
        expires_at = request.expires_at
        if expires_at.tzinfo is None:
            raise InvalidRequestError("expires_at must be timezone-aware")
        if expires_at <= now:
            raise InvalidRequestError("expires_at is not in the future")
        if expires_at - now > self._target.max_ttl:
            raise InvalidRequestError("expires_at exceeds the target's max ttl")
        valid_after = int((now - CLOCK_SKEW).timestamp())
        valid_before = int(expires_at.timestamp())
        key_id = str(request.lease_id)
        serial = secrets.randbelow(2**64 - 1) + 1  # KRLs cannot revoke serial 0.
        builder = (
            SSHCertificateBuilder()
            .public_key(key)
            .serial(serial)
            .type(SSHCertificateType.USER)
            .key_id(key_id.encode())
            .valid_principals([name.encode() for name in principals])
            .valid_after(valid_after)
            .valid_before(valid_before)
        )
        if self._settings.source_address:
            builder = builder.add_critical_option(
                b"source-address", ",".join(self._settings.source_address).encode()
            )
        if self._settings.force_command:
            builder = builder.add_critical_option(
                b"force-command", self._settings.force_command.encode()
            )
        for extension in self._settings.extensions:
            builder = builder.add_extension(extension.encode(), b"")
        certificate: SSHCertificate = builder.sign(self._ca())
        async with self._lock:
            certs = self._load_certs()
            entry = certs.get(key_id)
            if entry is not None and entry["revoked"]:
                raise ConflictError("the lease was revoked; it cannot be certified")
            serials = [*entry["serials"], serial] if entry else [serial]
            latest = max(valid_before, entry["valid_before"] if entry else 0)
            certs[key_id] = {
                "serials": serials,
                "valid_before": latest,
                "revoked": False,
            }
            # Record the certificate before handing it over, so that revoke and
            # reap can always find it.
            self._save_certs(certs)
            if not self._krl_path.exists():
                await self._write_krl(certs)
        return IssuedCredential(
            handle=key_id,
            expires_at=dt.datetime.fromtimestamp(valid_before, dt.UTC),
            secret=None,
            fields={
                "certificate": certificate.public_bytes().decode(),
                "ca_public_key": self.ca_public_key,
                "principals": principals,
                "serial": serial,
                "key_id": key_id,
                "valid_after": _iso(valid_after),
                "valid_before": _iso(valid_before),
            },
        )

    async def renew(self, handle: str, expires_at: dt.datetime) -> dt.datetime:
        """
        Refuse: a certificate's validity is signed into it and cannot change.

        Raises:
            ConflictError: always; the agent requests a new certificate instead.
        """
        del handle, expires_at
        msg = "an ssh certificate cannot be extended; request a new one"
        raise ConflictError(msg)

    async def revoke(self, handle: str) -> None:
        """
        List the lease's certificates in the KRL. Idempotent.

        A well-formed handle the engine has no record of (its record was lost) is
        revoked anyway, for the target's max ttl, so revocation fails closed.

        Raises:
            EngineError: ``ssh-keygen`` failed; the broker retries.
        """
        if not is_id(handle, "lse"):
            # Nothing this engine issued carries such a key id.
            return
        async with self._lock:
            certs = self._load_certs()
            entry = certs.get(handle)
            if entry is not None and entry["revoked"]:
                return
            if entry is None:
                now = self._context.clock.now()
                end = now + self._target.max_ttl + CLOCK_SKEW
                entry = {"serials": [], "valid_before": int(end.timestamp())}
            certs[handle] = {**entry, "revoked": True}
            await self._write_krl(certs)
            self._save_certs(certs)

    async def reap(self, live_handles: AbstractSet[str]) -> list[str]:
        """
        Revoke every still-valid certificate whose lease is no longer live.

        Args:
            live_handles: handles of pending and active leases of this target.

        Returns:
            The key ids newly listed in the KRL.

        Raises:
            EngineError: ``ssh-keygen`` failed.
        """
        async with self._lock:
            certs = self._load_certs()
            now = int(self._context.clock.now().timestamp())
            reaped = sorted(
                key_id
                for key_id, entry in certs.items()
                if not entry["revoked"]
                and key_id not in live_handles
                and entry["valid_before"] > now
            )
            if not reaped:
                return []
            for key_id in reaped:
                certs[key_id] = {**certs[key_id], "revoked": True}
            await self._write_krl(certs)
            self._save_certs(certs)
        return reaped

    async def aclose(self) -> None:
        """Forget the CA key held in memory."""
        self._ca_key = None

    def _principals_for(self, actions: tuple[str, ...]) -> list[str]:
        if not actions:
            raise InvalidScopeError("no action requested")
        found: list[str] = []
        for action in actions:
            names = self._settings.principals.get(action)
            if names is None:
                raise InvalidScopeError(f"action {action!r} grants no ssh principal")
            found.extend(name for name in names if name not in found)
        return found

    def _ca(self) -> ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey:
        if self._ca_key is None:
            self._ca_key = self._load_or_create_ca()
            self._write_public_file(self._ca_key)
        return self._ca_key

    def _load_or_create_ca(
        self,
    ) -> ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey:
        state_dir = self._context.state_dir
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not self._sealed_path.exists():
            key = _generate_ca(self._settings.ca_algorithm)
            pem = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            sealed = self._context.sealer.seal(pem)
            temporary = state_dir / f".{self._sealed_path.name}.{secrets.token_hex(8)}"
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                with os.fdopen(descriptor, "wb") as handle:
                    handle.write(sealed)
                    handle.flush()
                    os.fsync(handle.fileno())
                # link() never replaces: if another process won the race, its key
                # stays and this one is discarded.
                with contextlib.suppress(FileExistsError):
                    os.link(temporary, self._sealed_path)
            finally:
                temporary.unlink(missing_ok=True)
        pem = self._context.sealer.unseal(self._sealed_path.read_bytes())
        try:
            loaded = serialization.load_pem_private_key(pem, password=None)
        except ValueError:
            raise ConfigurationError(
                f"targets.{self._target.name}: the sealed ssh ca key is corrupt"
            ) from None
        matching = _matching_ca(loaded, self._settings.ca_algorithm)
        if matching is None:
            raise ConfigurationError(
                f"targets.{self._target.name}.engine.ca_algorithm: the existing ca "
                f"key is of another type; rotate it by hand"
            )
        return matching

    def _write_public_file(
        self, key: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
    ) -> None:
        line = key.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
        content = line + f" gatepass-ca-{self._target.name}\n".encode()
        if self._public_path.exists() and self._public_path.read_bytes() == content:
            return
        _write_atomically(self._public_path, content, 0o644)

    def _load_certs(self) -> dict[str, dict[str, Any]]:
        try:
            raw = self._certs_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        try:
            document = json.loads(raw)
            certs: dict[str, dict[str, Any]] = document["certificates"]
        except (ValueError, KeyError, TypeError):
            raise EngineError("the ssh certificate list is corrupt") from None
        return certs

    def _save_certs(self, certs: dict[str, dict[str, Any]]) -> None:
        now = int(self._context.clock.now().timestamp())
        # A certificate past its validity is dead on every host: forget it.
        live = {
            key: entry for key, entry in certs.items() if entry["valid_before"] > now
        }
        payload = json.dumps({"version": 1, "certificates": live}, sort_keys=True)
        _write_atomically(self._certs_path, payload.encode(), 0o600)

    async def _write_krl(self, certs: dict[str, dict[str, Any]]) -> None:
        """Regenerate the KRL from every revoked, still-valid certificate."""
        ssh_keygen = shutil.which("ssh-keygen")
        if ssh_keygen is None:
            raise EngineError("ssh-keygen is not installed")
        self._ca()
        now = int(self._context.clock.now().timestamp())
        lines: list[str] = []
        for key_id, entry in sorted(certs.items()):
            if entry["revoked"] and entry["valid_before"] > now:
                # Key ids were checked with is_id(), so they hold no newline.
                lines.append(f"id: {key_id}")
                lines.extend(f"serial: {serial}" for serial in entry["serials"])
        token = secrets.token_hex(8)
        spec = self._context.state_dir / f".{self._krl_path.name}.{token}.spec"
        output = self._context.state_dir / f".{self._krl_path.name}.{token}.tmp"
        spec.write_text("".join(f"{line}\n" for line in lines), encoding="ascii")
        try:
            await _run_ssh_keygen(
                ssh_keygen,
                "-k",
                "-f",
                str(output),
                "-s",
                str(self._public_path),
                str(spec),
            )
            output.chmod(0o644)
            output.replace(self._krl_path)
        finally:
            spec.unlink(missing_ok=True)
            output.unlink(missing_ok=True)


def _iso(epoch: int) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat().replace("+00:00", "Z")


def _empty_krl(generated_at: int) -> bytes:
    """Encode a KRL without sections (PROTOCOL.krl §1: magic, format 1, header)."""
    return struct.pack(">8sIQQQII", b"SSHKRL\n\0", 1, 0, generated_at, 0, 0, 0)


def _generate_ca(
    algorithm: str,
) -> ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey:
    if algorithm == "ecdsa-p256":
        return ec.generate_private_key(ec.SECP256R1())
    return ed25519.Ed25519PrivateKey.generate()


def _matching_ca(
    key: object, algorithm: str
) -> ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | None:
    if algorithm == "ecdsa-p256":
        if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(
            key.curve, ec.SECP256R1
        ):
            return key
        return None
    return key if isinstance(key, ed25519.Ed25519PrivateKey) else None


def _parse_public_key(
    text: object,
) -> ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey | rsa.RSAPublicKey:
    """
    Parse the agent's OpenSSH public key strictly; never echo it in an error.

    Raises:
        InvalidRequestError: missing, malformed, a certificate, or a weak type.
    """
    if text is None:
        raise InvalidRequestError("public_key is required for an ssh target")
    if not isinstance(text, str) or len(text) > MAX_PUBLIC_KEY_CHARS:
        raise InvalidRequestError("public_key is not an openssh public key")
    match = _KEY_LINE.match(text.removesuffix("\n"))
    if match is None:
        raise InvalidRequestError(
            "public_key must be one ssh-ed25519, ecdsa-sha2-nistp256 or ssh-rsa line"
        )
    key_type, body = match.group(1), match.group(2)
    try:
        base64.b64decode(body, validate=True)
        key = load_ssh_public_identity(f"{key_type} {body}".encode())
    except (ValueError, binascii.Error, UnsupportedAlgorithm):
        raise InvalidRequestError("public_key is not an openssh public key") from None
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(
        key.curve, ec.SECP256R1
    ):
        return key
    if isinstance(key, rsa.RSAPublicKey):
        if not MIN_RSA_BITS <= key.key_size <= MAX_RSA_BITS:
            raise InvalidRequestError(
                f"public_key: rsa keys need {MIN_RSA_BITS} to {MAX_RSA_BITS} bits"
            )
        return key
    raise InvalidRequestError("public_key is not an openssh public key")


def _write_atomically(path: Path, content: bytes, mode: int) -> None:
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        temporary.replace(path)
    finally:
        temporary.unlink(missing_ok=True)


async def _run_ssh_keygen(executable: str, *arguments: str) -> None:
    """
    Run ``ssh-keygen`` without a shell, under a timeout.

    Raises:
        EngineError: it timed out or exited non-zero (with its last stderr line).
    """
    process = await asyncio.create_subprocess_exec(
        executable,
        *arguments,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, stderr = await asyncio.wait_for(
            process.communicate(), timeout=SSH_KEYGEN_TIMEOUT_SECONDS
        )
    except TimeoutError:
        process.kill()
        await process.wait()
        raise EngineError("ssh-keygen timed out building the krl") from None
    if process.returncode != 0:
        lines = stderr.decode("utf-8", "replace").strip().splitlines()
        summary = _CONTROL.sub("", lines[-1])[:200] if lines else "no output"
        raise EngineError(
            f"ssh-keygen failed building the krl (exit {process.returncode}): {summary}"
        )


_: type[SecretEngine] = SSHEngine
