"""
The SSH engine: certificates checked with ``ssh-keygen`` and a real ``sshd``.

Tests that need OpenSSH skip when it is absent locally and fail under ``CI``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import pwd
import shutil
import socket
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa

from gatepass.clock import Clock, FrozenClock, SystemClock
from gatepass.engines import (
    EngineContext,
    IssuedCredential,
    IssueRequest,
    new_installation_id,
)
from gatepass.engines.ssh import SSHEngine
from gatepass.engines.ssh import krl as ssh_krl
from gatepass.errors import (
    ConfigurationError,
    ConflictError,
    EngineError,
    InvalidRequestError,
)
from gatepass.ids import LeaseId, new_lease_id
from gatepass.models import Target
from gatepass.sealing import Sealer
from gatepass.testing import (
    EngineProbe,
    LiveSession,
    RequestFactory,
    SecretEngineContract,
    fresh_clock,
)

SETTINGS: dict[str, Any] = {"principals": {"read": ["readonly"], "write": ["deploy"]}}
SEARCH_PATH = os.pathsep.join(
    [os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"]
)
PRIVSEP_DIR = Path("/run/sshd")


def unavailable(message: str) -> NoReturn:
    """Skip locally; fail under CI, which must run every service test."""
    if os.environ.get("CI"):
        pytest.fail(f"{message}; CI must run every service test", pytrace=False)
    pytest.skip(message)


def require_tool(name: str) -> str:
    """Return the tool's path; skip when absent locally, fail when absent under CI."""
    path = shutil.which(name, path=SEARCH_PATH)
    if path is None:
        unavailable(f"{name} is not installed")
    return path


def make_target(max_ttl: dt.timedelta = dt.timedelta(minutes=15)) -> Target:
    """Build an ssh target offering read and write."""
    return Target(
        name="bastion",
        uri="https://bastion.example",
        kind="ssh",
        environment="dev",
        tenant="acme",
        risk="medium",
        actions=("read", "write"),
        max_ttl=max_ttl,
    )


def make_engine(
    state_dir: Path,
    settings: dict[str, Any] | None = None,
    *,
    clock: Clock | None = None,
    master_key: bytes | None = None,
) -> SSHEngine:
    """Build an engine over ``state_dir``; the same key reopens the same CA."""
    context = EngineContext(
        state_dir=state_dir,
        sealer=Sealer([master_key or MASTER_KEY]),
        clock=clock or SystemClock(),
        installation_id=new_installation_id(),
    )
    chosen = SETTINGS if settings is None else settings
    return SSHEngine.from_target(make_target(), chosen, context)


MASTER_KEY = Fernet.generate_key()


def public_line(key: Any) -> str:
    """Return a public key as one OpenSSH line."""
    return str(
        key.public_key()
        .public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
        .decode()
    )


def make_ssh_request(
    public_key: str | None,
    *,
    actions: tuple[str, ...] = ("read",),
    lease_id: LeaseId | None = None,
    expires_at: dt.datetime | None = None,
) -> IssueRequest:
    """Build an issue request valid for five minutes of real time."""
    lease_id = lease_id or new_lease_id()
    return IssueRequest(
        lease_id=lease_id,
        name=f"gp_{lease_id.removeprefix('lse_')}",
        actions=actions,
        principal="agt_test",
        expires_at=expires_at or SystemClock().now() + dt.timedelta(minutes=5),
        public_key=public_key,
    )


def write_certificate(directory: Path, credential: IssuedCredential) -> Path:
    """Write the issued certificate where ``ssh`` and ``ssh-keygen`` can read it."""
    path = directory / f"{credential.handle}-cert.pub"
    path.write_text(f"{credential.fields['certificate']}\n", encoding="ascii")
    return path


def keygen(*arguments: str) -> subprocess.CompletedProcess[str]:
    """Run ssh-keygen with the given arguments."""
    return subprocess.run(  # noqa: S603 - fixed tool, test-owned arguments
        [require_tool("ssh-keygen"), *arguments],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
        # ssh-keygen -L prints validity in local time.
        env={**os.environ, "TZ": "UTC"},
    )


@pytest.fixture
def agent_key() -> ed25519.Ed25519PrivateKey:
    """A fresh agent key pair."""
    return ed25519.Ed25519PrivateKey.generate()


@pytest.fixture
def engine(tmp_path: Path) -> SSHEngine:
    """An engine with a read → readonly, write → deploy mapping."""
    require_tool("ssh-keygen")
    return make_engine(tmp_path / "state")


class TestSettings:
    """The ``[targets.engine]`` table is validated strictly."""

    def test_minimal_settings_give_permit_pty_and_ed25519(self, tmp_path):
        """Only principals are required; extensions default to permit-pty."""
        engine = make_engine(tmp_path)
        assert engine.config.extensions == ("permit-pty",)
        assert engine.config.ca_algorithm == "ed25519"

    @pytest.mark.parametrize(
        ("settings", "location"),
        [
            ({**SETTINGS, "colour": "blue"}, "colour"),
            ({}, "principals"),
            ({"principals": {"read": ["root user"]}}, "principals.read.0"),
            ({"principals": {"read": ["deploy\nroot"]}}, "principals.read.0"),
            ({"principals": {"read": ["dépl"]}}, "principals.read.0"),
            ({"principals": {"read": ["x" * 10_000]}}, "principals.read.0"),
            ({"principals": {"read": []}}, "principals"),
            ({"principals": {"read": ["a", "a"]}}, "principals"),
            ({**SETTINGS, "source_address": ["10.0.0.1/8"]}, "source_address"),
            ({**SETTINGS, "source_address": ["not-an-ip"]}, "source_address"),
            ({**SETTINGS, "source_address": ["1" * 10_000]}, "source_address"),
            ({**SETTINGS, "force_command": "uptime\nrm -rf /"}, "force_command"),
            ({**SETTINGS, "force_command": "uptime\x00"}, "force_command"),
            ({**SETTINGS, "force_command": "x" * 10_000}, "force_command"),
            ({**SETTINGS, "extensions": ["permit-everything"]}, "extensions.0"),
            ({**SETTINGS, "extensions": ["permit-pty", "permit-pty"]}, "extensions"),
            ({**SETTINGS, "ca_algorithm": "dsa"}, "ca_algorithm"),
        ],
    )
    def test_invalid_settings_are_refused_with_their_location(
        self, tmp_path, settings, location
    ):
        """Each invalid field is refused, named as targets.<name>.engine.<field>."""
        with pytest.raises(ConfigurationError) as caught:
            make_engine(tmp_path, settings)
        assert f"targets.bastion.engine.{location}:" in caught.value.detail

    def test_principals_of_an_unknown_action_are_refused(self, tmp_path):
        """Principals may only be mapped from actions the target offers."""
        with pytest.raises(
            ConfigurationError, match=r"principals\.admin: not an action"
        ):
            make_engine(tmp_path, {"principals": {"admin": ["root"]}})

    def test_source_addresses_are_normalised(self, tmp_path):
        """Addresses become networks (``::1`` → ``::1/128``)."""
        engine = make_engine(
            tmp_path, {**SETTINGS, "source_address": ["::1", "10.0.0.0/8"]}
        )
        assert engine.config.source_address == ("::1/128", "10.0.0.0/8")

    def test_construction_touches_no_file(self, tmp_path):
        """The CA key is created on first use, not when the engine is built."""
        make_engine(tmp_path / "state")
        assert not (tmp_path / "state").exists()


class TestPublicKey:
    """The agent's public key is parsed strictly and never echoed back."""

    @pytest.mark.parametrize(
        "private_key",
        [
            pytest.param(ed25519.Ed25519PrivateKey.generate(), id="ed25519"),
            pytest.param(ec.generate_private_key(ec.SECP256R1()), id="ecdsa-p256"),
            pytest.param(rsa.generate_private_key(65537, 3072), id="rsa-3072"),
        ],
    )
    def test_supported_keys_are_certified(self, engine, private_key):
        """Ed25519, ECDSA P-256 and RSA ≥ 3072 keys get a certificate of their type."""
        credential = asyncio.run(
            engine.issue(make_ssh_request(public_line(private_key)))
        )
        key_type = public_line(private_key).split()[0]
        assert credential.fields["certificate"].startswith(
            f"{key_type}-cert-v01@openssh.com "
        )

    def test_a_trailing_comment_and_newline_are_accepted_and_dropped(
        self, engine, agent_key
    ):
        """A key line as ``ssh-keygen`` writes it (with comment) is accepted."""
        line = f"{public_line(agent_key)} agent@host\n"
        credential = asyncio.run(engine.issue(make_ssh_request(line)))
        assert "agent@host" not in credential.fields["certificate"]

    def test_a_missing_key_is_refused(self, engine):
        """An SSH target needs the agent's public key."""
        with pytest.raises(InvalidRequestError, match="public_key is required"):
            asyncio.run(engine.issue(make_ssh_request(None)))

    @pytest.mark.parametrize(
        "make_line",
        [
            pytest.param(lambda _good: "", id="empty"),
            pytest.param(lambda _good: "ssh-ed25519", id="no-body"),
            pytest.param(lambda _good: "ssh-ed25519 !!!notbase64", id="not-base64"),
            pytest.param(lambda good: good[:-8], id="truncated"),
            pytest.param(lambda good: good + "AAAA", id="trailing-bytes"),
            pytest.param(
                lambda good: good.replace("ssh-ed25519", "ssh-rsa"), id="type-mismatch"
            ),
            pytest.param(lambda good: f"{good}\n{good}", id="two-lines"),
            pytest.param(lambda good: f" {good}", id="leading-space"),
            pytest.param(
                lambda good: f"{good} comment\x1b[2J", id="control-in-comment"
            ),
            pytest.param(lambda good: f"{good} {'x' * 10_000}", id="ten-kilobytes"),
            pytest.param(lambda _good: "A" * 10_000, id="ten-kilobytes-junk"),
            pytest.param(lambda good: f"{good} ключ", id="unicode-comment"),
        ],
    )
    def test_malformed_keys_are_refused_without_echo(
        self, engine, agent_key, make_line
    ):
        """Malformed lines are refused, and the detail never quotes the key."""
        good = public_line(agent_key)
        with pytest.raises(InvalidRequestError) as caught:
            asyncio.run(engine.issue(make_ssh_request(make_line(good))))
        assert good.split()[1][:16] not in caught.value.detail

    @pytest.mark.parametrize(
        "line",
        [
            pytest.param(
                lambda: public_line(dsa.generate_private_key(1024)),  # noqa: S505 - weak on purpose
                id="dsa",
            ),
            pytest.param(
                lambda: public_line(rsa.generate_private_key(65537, 2048)),
                id="rsa-2048",
            ),
            pytest.param(
                lambda: public_line(ec.generate_private_key(ec.SECP384R1())), id="p384"
            ),
        ],
    )
    # Serialising the DSA fixture key is deprecated in cryptography; refusing it is not.
    @pytest.mark.filterwarnings("ignore:SSH DSA key support is deprecated")
    def test_weak_or_unsupported_key_types_are_refused(self, engine, line):
        """DSA, RSA under 3072 bits and curves other than P-256 are refused."""
        with pytest.raises(InvalidRequestError):
            asyncio.run(engine.issue(make_ssh_request(line())))

    def test_a_certificate_is_not_accepted_as_a_key(self, engine, agent_key):
        """An agent cannot send a certificate to be re-certified."""
        credential = asyncio.run(engine.issue(make_ssh_request(public_line(agent_key))))
        with pytest.raises(InvalidRequestError):
            asyncio.run(
                engine.issue(make_ssh_request(credential.fields["certificate"]))
            )


class TestIssue:
    """Issued certificates carry exactly what the configuration and lease say."""

    def test_ssh_keygen_shows_the_certificate_contents(
        self, engine, agent_key, tmp_path
    ):
        """``ssh-keygen -L`` shows key id = lease id, principals, window and options."""
        engine = make_engine(
            tmp_path / "state",
            {
                **SETTINGS,
                "source_address": ["127.0.0.1/32", "10.0.0.0/8"],
                "force_command": "/usr/bin/uptime",
                "extensions": ["permit-pty", "permit-port-forwarding"],
            },
        )
        request = make_ssh_request(public_line(agent_key), actions=("read", "write"))
        credential = asyncio.run(engine.issue(request))
        listing = keygen("-L", "-f", str(write_certificate(tmp_path, credential)))
        assert listing.returncode == 0, listing.stderr
        output = listing.stdout
        assert "user certificate" in output
        assert f'Key ID: "{request.lease_id}"' in output
        assert f"Serial: {credential.fields['serial']}" in output
        principals = (
            output.split("Principals:")[1].split("Critical Options:")[0].split()
        )
        assert principals == ["readonly", "deploy"]
        assert "force-command /usr/bin/uptime" in output
        assert "source-address 127.0.0.1/32,10.0.0.0/8" in output
        extensions = output.split("Extensions:")[1].split()
        assert extensions == ["permit-port-forwarding", "permit-pty"]
        start = credential.fields["valid_after"].removesuffix("Z")
        end = request.expires_at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
        assert f"Valid: from {start} to {end}" in output

    def test_the_credential_describes_the_certificate(self, engine, agent_key):
        """Handle and key id are the lease id; no secret; expiry ≤ requested."""
        request = make_ssh_request(
            public_line(agent_key), actions=("write", "read", "write")
        )
        credential = asyncio.run(engine.issue(request))
        assert credential.handle == request.lease_id == credential.fields["key_id"]
        assert credential.secret is None
        assert credential.expires_at <= request.expires_at
        assert request.expires_at - credential.expires_at < dt.timedelta(seconds=1)
        assert credential.fields["principals"] == ["deploy", "readonly"]
        assert credential.fields["ca_public_key"] == engine.ca_public_key
        assert 0 < credential.fields["serial"] < 2**64

    def test_the_validity_starts_thirty_seconds_early(self, tmp_path, agent_key):
        """valid_after is now - 30 s from the injected clock, for clock skew."""
        clock = FrozenClock(dt.datetime(2030, 1, 1, tzinfo=dt.UTC))
        engine = make_engine(tmp_path / "state", clock=clock)
        request = make_ssh_request(
            public_line(agent_key), expires_at=clock.now() + dt.timedelta(minutes=1)
        )
        credential = asyncio.run(engine.issue(request))
        assert credential.fields["valid_after"] == "2029-12-31T23:59:30Z"
        assert credential.fields["valid_before"] == "2030-01-01T00:01:00Z"

    def test_serials_are_random(self, engine, agent_key):
        """Two certificates never share a serial."""
        line = public_line(agent_key)
        first = asyncio.run(engine.issue(make_ssh_request(line)))
        second = asyncio.run(engine.issue(make_ssh_request(line)))
        assert first.fields["serial"] != second.fields["serial"]

    @pytest.mark.parametrize("actions", [(), ("admin",)])
    def test_actions_without_principals_are_refused(self, engine, agent_key, actions):
        """A certificate never goes out without principals or for an unmapped action."""
        with pytest.raises(EngineError, match="action"):
            asyncio.run(
                engine.issue(make_ssh_request(public_line(agent_key), actions=actions))
            )

    @pytest.mark.parametrize(
        "expires_at",
        [
            pytest.param(SystemClock().now() - dt.timedelta(seconds=1), id="past"),
            pytest.param(
                SystemClock().now() + dt.timedelta(days=1), id="beyond-max-ttl"
            ),
            pytest.param(dt.datetime(2099, 1, 1), id="naive"),  # noqa: DTZ001
        ],
    )
    def test_unacceptable_expiry_is_refused(self, engine, agent_key, expires_at):
        """Expiry must be aware, in the future and within the target's max ttl."""
        with pytest.raises(EngineError, match="expires_at"):
            asyncio.run(
                engine.issue(
                    make_ssh_request(public_line(agent_key), expires_at=expires_at)
                )
            )

    def test_a_malformed_lease_id_is_refused(self, engine, agent_key):
        """The key id ends up in the KRL spec, so it must be a well-formed lease id."""
        request = make_ssh_request(
            public_line(agent_key), lease_id=LeaseId("lse_x\nid: *")
        )
        with pytest.raises(InvalidRequestError, match="lease id"):
            asyncio.run(engine.issue(request))

    def test_reissuing_a_lease_is_allowed_until_it_is_revoked(self, engine, agent_key):
        """Issue is retryable for one lease; after revocation it is a conflict."""
        request = make_ssh_request(public_line(agent_key))
        asyncio.run(engine.issue(request))
        asyncio.run(engine.issue(request))
        asyncio.run(engine.revoke(request.lease_id))
        with pytest.raises(ConflictError):
            asyncio.run(engine.issue(request))


class TestCAKey:
    """The CA key is generated once, sealed at rest and pinned to its algorithm."""

    def test_the_sealed_key_is_not_plaintext_and_is_private(self, engine, tmp_path):
        """The sealed file has mode 0600 and holds no PEM."""
        asyncio.run(engine.check())
        sealed = tmp_path / "state" / "ssh-ca-bastion.sealed"
        assert stat.S_IMODE(sealed.stat().st_mode) == 0o600
        content = sealed.read_bytes()
        assert b"PRIVATE KEY" not in content
        assert b"-----BEGIN" not in content

    def test_the_ca_survives_a_restart(self, engine, tmp_path):
        """A second engine over the same state directory uses the same CA."""
        first = engine.ca_public_key
        assert make_engine(tmp_path / "state").ca_public_key == first
        assert first.startswith("ssh-ed25519 ")
        assert (tmp_path / "state" / "ssh-ca-bastion.pub").read_text().strip() == first

    def test_ecdsa_p256_ca(self, tmp_path):
        """ca_algorithm = ecdsa-p256 gives an ECDSA P-256 CA."""
        engine = make_engine(tmp_path, {**SETTINGS, "ca_algorithm": "ecdsa-p256"})
        assert engine.ca_public_key.startswith("ecdsa-sha2-nistp256 ")

    def test_changing_the_algorithm_later_is_refused(self, engine, tmp_path):
        """An existing CA of another type is not silently replaced."""
        _ = engine.ca_public_key
        other = make_engine(
            tmp_path / "state", {**SETTINGS, "ca_algorithm": "ecdsa-p256"}
        )
        with pytest.raises(ConfigurationError, match="ca_algorithm"):
            _ = other.ca_public_key

    def test_another_master_key_cannot_open_the_ca(self, engine, tmp_path):
        """check() fails with ConfigurationError under the wrong master key."""
        _ = engine.ca_public_key
        other = make_engine(tmp_path / "state", master_key=Fernet.generate_key())
        with pytest.raises(ConfigurationError):
            asyncio.run(other.check())


class TestRevocation:
    """Revocation lists certificates in a KRL that ``ssh-keygen -Q`` agrees with."""

    def test_check_writes_an_empty_krl(self, engine):
        """check() leaves a KRL that hosts can already load."""
        asyncio.run(engine.check())
        assert engine.krl_path.exists()
        listing = keygen("-Q", "-l", "-f", str(engine.krl_path))
        assert listing.returncode == 0, listing.stderr
        assert "id:" not in listing.stdout
        assert engine.krl_bytes() == engine.krl_path.read_bytes()

    def test_krl_bytes_before_anything_is_an_empty_krl(self, engine, tmp_path):
        """Hosts can pull a valid, empty KRL before the first issue or check."""
        krl = tmp_path / "pulled.krl"
        krl.write_bytes(engine.krl_bytes())
        listing = keygen("-Q", "-l", "-f", str(krl))
        assert listing.returncode == 0, listing.stderr
        assert "id:" not in listing.stdout
        assert not engine.krl_path.exists()

    def test_krl_bytes_refuses_to_forget_revocations(self, engine):
        """A lost KRL file is an error, never an empty list reinstating certificates."""
        asyncio.run(engine.revoke(new_lease_id()))
        engine.krl_path.unlink()
        with pytest.raises(EngineError, match="krl file is missing"):
            engine.krl_bytes()
        asyncio.run(engine.check())
        assert "id: lse_" in keygen("-Q", "-l", "-f", str(engine.krl_path)).stdout

    def test_a_revoked_certificate_is_in_the_krl(self, engine, agent_key, tmp_path):
        """After revoke, ssh-keygen -Q reports the certificate REVOKED."""
        credential = asyncio.run(engine.issue(make_ssh_request(public_line(agent_key))))
        certificate = write_certificate(tmp_path, credential)
        asyncio.run(engine.check())
        assert (
            keygen("-Q", "-f", str(engine.krl_path), str(certificate)).returncode == 0
        )
        asyncio.run(engine.revoke(credential.handle))
        query = keygen("-Q", "-f", str(engine.krl_path), str(certificate))
        assert query.returncode == 1
        assert "REVOKED" in query.stdout
        listing = keygen("-Q", "-l", "-f", str(engine.krl_path)).stdout
        assert f"id: {credential.handle}" in listing
        assert f"serial: {credential.fields['serial']}" in listing

    def test_revoke_is_idempotent(self, engine, agent_key):
        """Revoking twice leaves one entry and raises nothing."""
        credential = asyncio.run(engine.issue(make_ssh_request(public_line(agent_key))))
        asyncio.run(engine.revoke(credential.handle))
        asyncio.run(engine.revoke(credential.handle))
        listing = keygen("-Q", "-l", "-f", str(engine.krl_path)).stdout
        assert listing.count(f"id: {credential.handle}") == 1

    def test_an_unknown_lease_is_revoked_anyway(self, engine):
        """A well-formed handle with no record is listed (fail closed)."""
        handle = new_lease_id()
        asyncio.run(engine.revoke(handle))
        assert f"id: {handle}" in keygen("-Q", "-l", "-f", str(engine.krl_path)).stdout

    @pytest.mark.parametrize(
        "handle", ["", "not-a-lease", "lse_x\nid: *", "x" * 10_000]
    )
    def test_a_malformed_handle_is_a_no_op(self, engine, handle):
        """A malformed key id was never issued; no KRL spec line is injected."""
        asyncio.run(engine.revoke(handle))
        assert not engine.krl_path.exists()

    def test_expired_certificates_leave_the_krl(self, tmp_path, agent_key):
        """Entries past their validity are dropped when the KRL is regenerated."""
        require_tool("ssh-keygen")
        clock = FrozenClock(SystemClock().now())
        engine = make_engine(tmp_path / "state", clock=clock)
        line = public_line(agent_key)
        short = make_ssh_request(line, expires_at=clock.now() + dt.timedelta(minutes=1))
        long = make_ssh_request(line, expires_at=clock.now() + dt.timedelta(minutes=10))
        for request in (short, long):
            asyncio.run(engine.issue(request))
        asyncio.run(engine.revoke(short.lease_id))
        clock.advance(dt.timedelta(minutes=2))
        asyncio.run(engine.revoke(long.lease_id))
        listing = keygen("-Q", "-l", "-f", str(engine.krl_path)).stdout
        assert f"id: {long.lease_id}" in listing
        assert f"id: {short.lease_id}" not in listing


class TestReap:
    """Reaping revokes every still-valid certificate whose lease is not live."""

    def test_reap_revokes_only_dead_leases(self, tmp_path, agent_key):
        """Live leases stay usable; dead ones go to the KRL and are returned."""
        require_tool("ssh-keygen")
        clock = FrozenClock(SystemClock().now())
        engine = make_engine(tmp_path / "state", clock=clock)
        line = public_line(agent_key)
        live, dead, expired = (
            make_ssh_request(
                line, expires_at=clock.now() + dt.timedelta(minutes=minutes)
            )
            for minutes in (10, 10, 1)
        )
        for request in (live, dead, expired):
            asyncio.run(engine.issue(request))
        clock.advance(dt.timedelta(minutes=2))
        assert asyncio.run(engine.reap({live.lease_id})) == [dead.lease_id]
        listing = keygen("-Q", "-l", "-f", str(engine.krl_path)).stdout
        assert f"id: {dead.lease_id}" in listing
        assert f"id: {live.lease_id}" not in listing
        assert f"id: {expired.lease_id}" not in listing

    def test_reap_twice_returns_nothing_new(self, engine, agent_key):
        """A reaped certificate is not reported again."""
        credential = asyncio.run(engine.issue(make_ssh_request(public_line(agent_key))))
        assert asyncio.run(engine.reap(set())) == [credential.handle]
        assert asyncio.run(engine.reap(set())) == []

    def test_reap_skips_revoked_certificates(self, engine, agent_key):
        """A revoked certificate is not reported as reaped."""
        credential = asyncio.run(engine.issue(make_ssh_request(public_line(agent_key))))
        asyncio.run(engine.revoke(credential.handle))
        assert asyncio.run(engine.reap(set())) == []


def fake_ssh_keygen(directory: Path, script: str) -> None:
    """Put an executable ``ssh-keygen`` running ``script`` into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    tool = directory / "ssh-keygen"
    tool.write_text(f"#!/bin/sh\n{script}\n", encoding="ascii")
    tool.chmod(0o700)


class TestFailures:
    """Failures of ssh-keygen or of the state files surface as EngineError."""

    def test_check_fails_without_ssh_keygen(self, tmp_path, monkeypatch):
        """check() raises EngineError when ssh-keygen is not on PATH."""
        engine = make_engine(tmp_path / "state")
        monkeypatch.setenv("PATH", str(tmp_path / "empty"))
        with pytest.raises(EngineError, match="ssh-keygen is not installed"):
            asyncio.run(engine.check())

    def test_a_failing_ssh_keygen_is_summarised_and_retryable(
        self, tmp_path, monkeypatch
    ):
        """The last stderr line is reported, and the revocation is not recorded."""
        engine = make_engine(tmp_path / "state")
        handle = new_lease_id()
        fake_ssh_keygen(tmp_path / "bin", "echo noise >&2; echo 'bad spec' >&2; exit 3")
        monkeypatch.setenv("PATH", str(tmp_path / "bin"))
        with pytest.raises(EngineError, match=r"\(exit 3\): bad spec$"):
            asyncio.run(engine.revoke(handle))
        monkeypatch.undo()
        require_tool("ssh-keygen")
        asyncio.run(engine.revoke(handle))
        assert f"id: {handle}" in keygen("-Q", "-l", "-f", str(engine.krl_path)).stdout

    def test_a_hanging_ssh_keygen_times_out(self, tmp_path, monkeypatch):
        """ssh-keygen is killed after the timeout and EngineError is raised."""
        engine = make_engine(tmp_path / "state")
        fake_ssh_keygen(tmp_path / "bin", f"exec {require_tool('sleep')} 30")
        monkeypatch.setenv("PATH", str(tmp_path / "bin"))
        monkeypatch.setattr(ssh_krl, "SSH_KEYGEN_TIMEOUT_SECONDS", 0.2)
        with pytest.raises(EngineError, match="timed out"):
            asyncio.run(engine.check())
        assert not engine.krl_path.exists()

    def test_a_corrupt_certificate_list_is_an_engine_error(self, engine, tmp_path):
        """A damaged state file stops revocation loudly instead of forgetting leases."""
        asyncio.run(engine.check())
        (tmp_path / "state" / "ssh-certs-bastion.json").write_text(
            "{not json", encoding="utf-8"
        )
        with pytest.raises(EngineError, match="corrupt"):
            asyncio.run(engine.revoke(new_lease_id()))

    def test_concurrent_revocations_all_land_in_the_krl(
        self, engine, agent_key, tmp_path
    ):
        """Revocations racing in one event loop are serialised, none is lost."""
        line = public_line(agent_key)

        async def scenario() -> list[str]:
            issued = [await engine.issue(make_ssh_request(line)) for _ in range(8)]
            handles = [credential.handle for credential in issued]
            await asyncio.gather(*(engine.revoke(handle) for handle in handles))
            return handles

        handles = asyncio.run(scenario())
        listing = keygen("-Q", "-l", "-f", str(engine.krl_path)).stdout
        assert all(f"id: {handle}" in listing for handle in handles)
        certs = tmp_path / "state" / "ssh-certs-bastion.json"
        assert stat.S_IMODE(certs.stat().st_mode) == 0o600


@dataclass(frozen=True, slots=True)
class SSHHost:
    """A running sshd trusting the engine's CA and KRL."""

    engine: SSHEngine
    port: int
    log: Path
    work: Path
    ssh: str
    user: str

    def login(
        self, key: Any, credential: IssuedCredential
    ) -> subprocess.CompletedProcess[str]:
        """Log in with ``key`` and its certificate and run ``true``."""
        key_path = self.work / f"{credential.handle}.key"
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.OpenSSH,
                serialization.NoEncryption(),
            )
        )
        key_path.chmod(0o600)
        certificate = write_certificate(self.work, credential)
        return subprocess.run(  # noqa: S603 - fixed tool, test-owned arguments
            [
                self.ssh,
                "-F",
                "/dev/null",
                "-i",
                str(key_path),
                "-o",
                f"CertificateFile={certificate}",
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "IdentityAgent=none",
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "BatchMode=yes",
                "-o",
                "PreferredAuthentications=publickey",
                "-o",
                "ConnectTimeout=5",
                "-p",
                str(self.port),
                f"{self.user}@127.0.0.1",
                "true",
            ],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )


def free_port() -> int:
    """Return a TCP port free on 127.0.0.1 right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until_listening(
    process: subprocess.Popen[bytes], port: int, log: Path
) -> None:
    """Poll a TCP connect under a deadline; fail if sshd exits first."""
    deadline = SystemClock().now() + dt.timedelta(seconds=10)
    while SystemClock().now() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.1):
                return
        except OSError:
            pass
        try:
            process.wait(timeout=0.05)
        except subprocess.TimeoutExpired:
            continue
        pytest.fail(f"sshd exited: {log.read_text()}", pytrace=False)
    pytest.fail(f"sshd did not listen within 10 s: {log.read_text()}", pytrace=False)


@pytest.fixture
def host(tmp_path: Path) -> Iterator[SSHHost]:
    """Start sshd on 127.0.0.1 that maps only the ``readonly`` principal to the user."""
    sshd = require_tool("sshd")
    ssh = require_tool("ssh")
    require_tool("ssh-keygen")
    if not PRIVSEP_DIR.is_dir():
        if os.geteuid() != 0:
            unavailable(f"sshd needs {PRIVSEP_DIR}, which only root can create")
        PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
    engine = make_engine(tmp_path / "state")
    _ = engine.ca_public_key
    # Start from the engine's own empty KRL, as a host that pulled it before the
    # first revocation would; revoke() then replaces the file with ssh-keygen's.
    engine.krl_path.write_bytes(engine.krl_bytes())
    work = tmp_path / "host"
    (work / "principals").mkdir(parents=True)
    user = pwd.getpwuid(os.getuid()).pw_name
    (work / "principals" / user).write_text("readonly\n", encoding="ascii")
    host_key = work / "host_ed25519"
    host_key.write_bytes(
        ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
    )
    host_key.chmod(0o600)
    ca_file = work / "ca.pub"
    ca_file.write_text(f"{engine.ca_public_key}\n", encoding="ascii")
    port = free_port()
    config = work / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"Port {port}",
                "ListenAddress 127.0.0.1",
                f"HostKey {host_key}",
                f"PidFile {work / 'sshd.pid'}",
                f"TrustedUserCAKeys {ca_file}",
                f"RevokedKeys {engine.krl_path}",
                "AuthorizedKeysFile none",
                f"AuthorizedPrincipalsFile {work / 'principals'}/%u",
                "PubkeyAuthentication yes",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PermitRootLogin prohibit-password",
                "StrictModes no",
                "UsePAM no",
                "LogLevel VERBOSE",
                "",
            ]
        ),
        encoding="ascii",
    )
    log = work / "sshd.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(  # noqa: S603 - fixed tool, test-owned arguments
            [sshd, "-D", "-e", "-f", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
    try:
        wait_until_listening(process, port, log)
        yield SSHHost(engine=engine, port=port, log=log, work=work, ssh=ssh, user=user)
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@pytest.mark.slow
class TestRealSSHD:
    """A real OpenSSH server accepts the certificates and honours the KRL."""

    def test_login_works_until_revoked(self, host, agent_key):
        """A readonly certificate logs in; after revoke the same one is refused."""
        credential = asyncio.run(
            host.engine.issue(make_ssh_request(public_line(agent_key)))
        )
        first = host.login(agent_key, credential)
        assert first.returncode == 0, f"{first.stderr}\n{host.log.read_text()}"
        asyncio.run(host.engine.revoke(credential.handle))
        second = host.login(agent_key, credential)
        assert second.returncode == 255
        assert "Permission denied" in second.stderr
        assert "revoked" in host.log.read_text().lower()

    def test_a_principal_the_host_does_not_accept_is_refused(self, host, agent_key):
        """A deploy certificate cannot log in where only readonly is authorised."""
        request = make_ssh_request(public_line(agent_key), actions=("write",))
        credential = asyncio.run(host.engine.issue(request))
        result = host.login(agent_key, credential)
        assert result.returncode == 255
        assert "Permission denied" in result.stderr
        assert "does not contain an authorized principal" in host.log.read_text()

    def test_an_expired_certificate_is_refused(self, host, agent_key, tmp_path):
        """A certificate whose window has passed cannot log in."""
        past = FrozenClock(SystemClock().now() - dt.timedelta(hours=2))
        engine = make_engine(tmp_path / "state", clock=past)
        request = make_ssh_request(
            public_line(agent_key), expires_at=past.now() + dt.timedelta(minutes=1)
        )
        credential = asyncio.run(engine.issue(request))
        result = host.login(agent_key, credential)
        assert result.returncode == 255
        assert "Permission denied" in result.stderr
        assert "expired" in host.log.read_text().lower()

    def test_reaped_certificates_are_refused(self, host, agent_key):
        """Reaping a dead lease cuts access on the host, live ones keep working."""
        line = public_line(agent_key)
        live = asyncio.run(host.engine.issue(make_ssh_request(line)))
        dead = asyncio.run(host.engine.issue(make_ssh_request(line)))
        assert asyncio.run(host.engine.reap({live.handle})) == [dead.handle]
        assert host.login(agent_key, live).returncode == 0
        assert host.login(agent_key, dead).returncode == 255


class SSHProbe:
    """Asks ``ssh-keygen -Q`` about the KRL, as a host does at every login."""

    def __init__(self, engine: SSHEngine, work: Path) -> None:
        """Probe ``engine``'s KRL; certificates are written under ``work``."""
        self.engine = engine
        self.work = work
        work.mkdir(parents=True, exist_ok=True)

    def _krl(self) -> Path:
        path = self.work / "pulled.krl"
        path.write_bytes(self.engine.krl_bytes())
        return path

    async def can_login(self, credential: IssuedCredential) -> bool:
        """Tell whether a host pulling the KRL now would accept the certificate."""
        certificate = write_certificate(self.work, credential)
        return keygen("-Q", "-f", str(self._krl()), str(certificate)).returncode == 0

    async def exists(self, handle: str) -> bool:
        """Tell whether an issued certificate of ``handle`` is still unrevoked."""
        listing = keygen("-Q", "-l", "-f", str(self._krl())).stdout
        return f"id: {handle}" not in listing

    async def open_session(self, credential: IssuedCredential) -> LiveSession:
        """Unused: sshd checks the KRL only at login (cuts_live_sessions is off)."""
        raise NotImplementedError

    async def create_foreign(self) -> list[str]:
        """Create nothing: hosts hold no credential of the engine's to spare."""
        return []

    async def drop_foreign(self, names: list[str]) -> None:
        """Nothing to drop."""


@pytest.mark.slow
class TestSSHEngineContract(SecretEngineContract):
    """The shared engine contract, judged by the KRL that hosts pull."""

    # A certificate cannot be deleted from a host, nor an open session cut.
    cuts_live_sessions = False
    ttl = dt.timedelta(minutes=10)
    # Reaping skips certificates past their validity: stay inside it.
    reap_after = dt.timedelta(minutes=1)
    concurrency = 20

    @pytest.fixture
    def clock(self) -> FrozenClock:
        """The engine's clock, starting now."""
        return fresh_clock()

    @pytest.fixture
    def actions(self) -> tuple[str, ...]:
        """The contract asks for read certificates."""
        return ("read",)

    @pytest.fixture
    def make_request(
        self, actions: tuple[str, ...], clock: FrozenClock
    ) -> RequestFactory:
        """Fresh requests carrying the agent's public key."""
        line = public_line(ed25519.Ed25519PrivateKey.generate())

        def make() -> IssueRequest:
            return make_ssh_request(
                line, actions=actions, expires_at=clock.now() + self.ttl
            )

        return make

    @pytest.fixture
    def engine(self, tmp_path: Path, clock: FrozenClock) -> SSHEngine:
        """An engine over the test's state directory."""
        require_tool("ssh-keygen")
        return make_engine(tmp_path / "state", clock=clock)

    @pytest.fixture
    def probe(self, engine: SSHEngine, tmp_path: Path) -> EngineProbe:
        """A probe of the same engine's KRL."""
        return SSHProbe(engine, tmp_path / "probe")
