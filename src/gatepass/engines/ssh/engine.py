"""
SSH engine: OpenSSH user certificates signed by a per-target gatepass CA, and a KRL.

The agent keeps its own private key and sends only the public half; gatepass answers
with a short-lived user certificate whose key id is the lease id. Hosts trust the
CA (``TrustedUserCAKeys``) and pull the key revocation list (``RevokedKeys``), since
a certificate cannot be deleted from a host: revoking or reaping one means listing
it in the KRL until its validity ends.

The CA key and its files are :mod:`.ca`'s, the certificate list and the KRL
:mod:`.krl`'s. One broker process owns these files; replicas sharing a state
directory would need a file lock around the certificate list.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from pathlib import Path
from typing import Any, ClassVar

from cryptography.hazmat.primitives.serialization.ssh import (
    SSHCertificate,
    SSHCertificateBuilder,
    SSHCertificateType,
)

from gatepass.engines.base import IssuedCredential, IssueRequest, SecretEngine
from gatepass.engines.context import EngineContext
from gatepass.engines.requests import check_actions, check_expiry
from gatepass.engines.settings import ConfiguredEngine
from gatepass.engines.ssh.ca import (
    CLOCK_SKEW,
    AgentKey,
    CertificateAuthority,
    parse_public_key,
)
from gatepass.engines.ssh.krl import CertificateRecord, RevocationList
from gatepass.engines.ssh.settings import SSHConfig, parse_settings
from gatepass.errors import ConflictError, InvalidRequestError
from gatepass.ids import is_id
from gatepass.models import Target

__all__ = ["SSHEngine"]


class SSHEngine(ConfiguredEngine[SSHConfig]):
    """
    Certify agents' own SSH keys with a per-target CA; revoke through a KRL.

    Build it with :meth:`from_target`.

    Args:
        config: the validated mount.
        context: the state directory, sealer and clock.
    """

    kind: ClassVar[str] = "ssh"

    def __init__(self, config: SSHConfig, context: EngineContext) -> None:
        """Keep the configuration; the CA key is loaded or generated on first use."""
        super().__init__(config, context)
        self._clock = context.clock
        self._lock = asyncio.Lock()
        self._ca = CertificateAuthority(
            target=config.target,
            algorithm=config.ca_algorithm,
            state_dir=context.state_dir,
            sealer=context.sealer,
        )
        self._krl = RevocationList(self._ca, context.clock)

    @classmethod
    def parse_settings(cls, target: Target, settings: Mapping[str, Any]) -> SSHConfig:
        """Validate an ``ssh`` table (:func:`.settings.parse_settings`)."""
        return parse_settings(target, settings)

    @property
    def ca_public_key(self) -> str:
        """The CA public key as an OpenSSH line, for hosts' ``TrustedUserCAKeys``."""
        return self._ca.public_line()

    @property
    def krl_path(self) -> Path:
        """Where the KRL file lives; it exists after :meth:`check` or any issue."""
        return self._krl.krl_path

    def krl_bytes(self) -> bytes:
        """
        Return the current KRL for hosts to pull (``RevokedKeys`` in ``sshd_config``).

        Before anything was revoked and before :meth:`check` built the file, this is
        an empty KRL, so hosts can be set up first.

        Raises:
            EngineError: the KRL file is gone although certificates were revoked
                (serving an empty list would reinstate them).
        """
        return self._krl.current()

    async def check(self) -> None:
        """
        Load (or create) the CA key and make sure ``ssh-keygen`` and the KRL exist.

        Raises:
            EngineError: ``ssh-keygen`` is not installed or cannot build the KRL.
            ConfigurationError: the sealed CA key cannot be opened.
        """
        self._ca.key()
        async with self._lock:
            if not self._krl.krl_path.exists():
                await self._krl.write(self._krl.load())

    async def issue(self, request: IssueRequest) -> IssuedCredential:
        """
        Certify ``request.public_key`` for the principals of the requested actions.

        Reissuing for the same lease id is allowed (the key id stays the same, so
        a later revocation covers every certificate of the lease), unless the lease
        was revoked already.

        Raises:
            InvalidRequestError: the public key or the lease id is unacceptable.
            EngineError: the expiry or the actions are unacceptable
                (:mod:`gatepass.engines.requests`), or the KRL cannot be written.
            ConflictError: the lease was revoked.
        """
        key = parse_public_key(request.public_key)
        if not is_id(request.lease_id, "lse"):
            raise InvalidRequestError("lease id is malformed")
        check_actions(request.actions, self._config.principals)
        now = self._clock.now()
        check_expiry(request.expires_at, now=now, max_ttl=self._config.max_ttl)
        valid_after = int((now - CLOCK_SKEW).timestamp())
        valid_before = int(request.expires_at.timestamp())
        key_id = str(request.lease_id)
        serial = secrets.randbelow(2**64 - 1) + 1  # KRLs cannot revoke serial 0.
        principals = self._principals_for(request.actions)
        certificate = self._certify(
            key,
            key_id=key_id,
            serial=serial,
            principals=principals,
            valid_after=valid_after,
            valid_before=valid_before,
        )
        async with self._lock:
            certs = self._krl.load()
            entry = certs.get(key_id)
            if entry is not None and entry["revoked"]:
                raise ConflictError("the lease was revoked; it cannot be certified")
            certs[key_id] = CertificateRecord(
                serials=[*entry["serials"], serial] if entry else [serial],
                valid_before=max(valid_before, entry["valid_before"] if entry else 0),
                revoked=False,
            )
            # Record the certificate before handing it over, so that revoke and
            # reap can always find it.
            self._krl.save(certs)
            if not self._krl.krl_path.exists():
                await self._krl.write(certs)
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
            certs = self._krl.load()
            entry = certs.get(handle)
            if entry is not None and entry["revoked"]:
                return
            if entry is None:
                end = self._clock.now() + self._config.max_ttl + CLOCK_SKEW
                entry = CertificateRecord(
                    serials=[], valid_before=int(end.timestamp()), revoked=False
                )
            certs[handle] = {**entry, "revoked": True}
            await self._krl.write(certs)
            self._krl.save(certs)

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
            certs = self._krl.load()
            now = int(self._clock.now().timestamp())
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
            await self._krl.write(certs)
            self._krl.save(certs)
        return reaped

    async def aclose(self) -> None:
        """Forget the CA key held in memory."""
        self._ca.forget()

    def _principals_for(self, actions: tuple[str, ...]) -> list[str]:
        found: list[str] = []
        for action in actions:
            found.extend(
                name for name in self._config.principals[action] if name not in found
            )
        return found

    def _certify(
        self,
        key: AgentKey,
        *,
        key_id: str,
        serial: int,
        principals: list[str],
        valid_after: int,
        valid_before: int,
    ) -> SSHCertificate:
        """Sign a user certificate with the configured options and extensions."""
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
        if self._config.source_address:
            builder = builder.add_critical_option(
                b"source-address", ",".join(self._config.source_address).encode()
            )
        if self._config.force_command:
            builder = builder.add_critical_option(
                b"force-command", self._config.force_command.encode()
            )
        for extension in self._config.extensions:
            builder = builder.add_extension(extension.encode(), b"")
        return builder.sign(self._ca.key())


def _iso(epoch: int) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat().replace("+00:00", "Z")


_: type[SecretEngine] = SSHEngine
