"""
The SSH engine's record of issued certificates, and the KRL hosts pull.

A certificate cannot be deleted from a host, so revoking one means listing it in
the key revocation list until its validity ends. Per target ``<name>``, the state
directory holds ``ssh-certs-<name>.json`` (key id, serials, end of validity and
revoked flag of every certificate still valid, mode 0600) and ``ssh-krl-<name>.krl``,
regenerated from scratch with ``ssh-keygen -k`` (no shell, under a timeout) and
swapped in atomically. The format is OpenSSH's PROTOCOL.krl.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
import struct
from typing import TypedDict

from gatepass.clock import Clock
from gatepass.engines.ssh.ca import CertificateAuthority, write_atomically
from gatepass.engines.ssh.settings import CONTROL
from gatepass.errors import EngineError

__all__ = ["SSH_KEYGEN_TIMEOUT_SECONDS", "CertificateRecord", "RevocationList"]

SSH_KEYGEN_TIMEOUT_SECONDS = 10.0


class CertificateRecord(TypedDict):
    """
    What the engine remembers of one lease's certificates.

    Attributes:
        serials: the serial of every certificate issued under the key id.
        valid_before: the latest end of validity (epoch seconds).
        revoked: whether the key id is listed in the KRL.
    """

    serials: list[int]
    valid_before: int
    revoked: bool


class RevocationList:
    """
    The certificate list and the KRL of one target.

    Args:
        ca: the target's CA: its public key is what ``ssh-keygen -k`` signs the
            KRL against, and its target and state directory name the files.
        clock: what "still valid" is measured against.
    """

    def __init__(self, ca: CertificateAuthority, clock: Clock) -> None:
        """Touch no file yet."""
        self._ca = ca
        self._clock = clock
        self._state_dir = ca.state_dir
        self.certs_path = ca.state_dir / f"ssh-certs-{ca.target}.json"
        self.krl_path = ca.state_dir / f"ssh-krl-{ca.target}.krl"

    def load(self) -> dict[str, CertificateRecord]:
        """
        Return the records by key id (empty before the first certificate).

        Raises:
            EngineError: the file is corrupt (never silently forget a lease).
        """
        try:
            raw = self.certs_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        try:
            document = json.loads(raw)
            certs: dict[str, CertificateRecord] = document["certificates"]
        except (ValueError, KeyError, TypeError):
            raise EngineError("the ssh certificate list is corrupt") from None
        return certs

    def save(self, certs: dict[str, CertificateRecord]) -> None:
        """Write the records, forgetting certificates past their validity."""
        now = self._now()
        # A certificate past its validity is dead on every host: forget it.
        live = {
            key: entry for key, entry in certs.items() if entry["valid_before"] > now
        }
        payload = json.dumps({"version": 1, "certificates": live}, sort_keys=True)
        write_atomically(self.certs_path, payload.encode(), 0o600)

    def current(self) -> bytes:
        """
        Return the KRL for hosts to pull; an empty one before the first revocation.

        Raises:
            EngineError: the KRL file is gone although certificates were revoked
                (serving an empty list would reinstate them).
        """
        try:
            return self.krl_path.read_bytes()
        except FileNotFoundError:
            pass
        if any(entry["revoked"] for entry in self.load().values()):
            raise EngineError("the krl file is missing; run check to rebuild it")
        return _empty_krl(self._now())

    async def write(self, certs: dict[str, CertificateRecord]) -> None:
        """
        Regenerate the KRL from every revoked, still-valid certificate.

        Raises:
            EngineError: ``ssh-keygen`` is missing, failed or timed out.
        """
        ssh_keygen = shutil.which("ssh-keygen")
        if ssh_keygen is None:
            raise EngineError("ssh-keygen is not installed")
        self._ca.key()
        now = self._now()
        lines: list[str] = []
        for key_id, entry in sorted(certs.items()):
            if entry["revoked"] and entry["valid_before"] > now:
                # Key ids were checked with is_id(), so they hold no newline.
                lines.append(f"id: {key_id}")
                lines.extend(f"serial: {serial}" for serial in entry["serials"])
        token = secrets.token_hex(8)
        spec = self._state_dir / f".{self.krl_path.name}.{token}.spec"
        output = self._state_dir / f".{self.krl_path.name}.{token}.tmp"
        spec.write_text("".join(f"{line}\n" for line in lines), encoding="ascii")
        try:
            await _run_ssh_keygen(
                ssh_keygen,
                "-k",
                "-f",
                str(output),
                "-s",
                str(self._ca.public_path),
                str(spec),
            )
            output.chmod(0o644)
            output.replace(self.krl_path)
        finally:
            spec.unlink(missing_ok=True)
            output.unlink(missing_ok=True)

    def _now(self) -> int:
        return int(self._clock.now().timestamp())


def _empty_krl(generated_at: int) -> bytes:
    """Encode a KRL without sections (PROTOCOL.krl §1: magic, format 1, header)."""
    return struct.pack(">8sIQQQII", b"SSHKRL\n\0", 1, 0, generated_at, 0, 0, 0)


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
        summary = CONTROL.sub("", lines[-1])[:200] if lines else "no output"
        raise EngineError(
            f"ssh-keygen failed building the krl (exit {process.returncode}): {summary}"
        )
