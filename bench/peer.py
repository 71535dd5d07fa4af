"""
The issuance bench's peer: panva ``oidc-provider``, installed and started by the bench.

The version is pinned in ``bench/peers/oidc-provider/package.json`` and its lock
file; :func:`ensure_installed` runs ``npm ci`` (the npm registry) when the
installed copy is missing or is not that version, so a fresh clone needs only
``node`` and ``npm``. ``server.mjs`` serves ``client_credentials`` with DPoP
(RFC 9449, every token sender-constrained) and a resource indicator (RFC 8707),
issuing ES256 ``at+jwt`` access tokens (RFC 9068) from its in-memory store, in
one Node process.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlencode

from harness import Processes, Server, free_port

PEER_DIR = Path(__file__).resolve().parent / "peers" / "oidc-provider"
CLIENT_ID = "bench-client"
CLIENT_SECRET = "bench-client-secret-not-a-real-one"  # noqa: S105 - bench data
NPM_TIMEOUT = 300


def pinned_version() -> str:
    """Return the ``oidc-provider`` version that package.json pins."""
    manifest = json.loads((PEER_DIR / "package.json").read_text())
    return str(manifest["dependencies"]["oidc-provider"])


def installed_version() -> str | None:
    """Return the installed ``oidc-provider`` version, or None."""
    manifest = PEER_DIR / "node_modules" / "oidc-provider" / "package.json"
    if not manifest.exists():
        return None
    return str(json.loads(manifest.read_text())["version"])


def node_version() -> str | None:
    """Return ``node --version``, or None without Node."""
    if shutil.which("node") is None:
        return None
    done = subprocess.run(
        ["node", "--version"], capture_output=True, check=False, timeout=30
    )
    return done.stdout.decode().strip() or None


def ensure_installed() -> str:
    """
    Install the pinned peer from the npm registry unless it is already there.

    Returns:
        The installed version.

    Raises:
        RuntimeError: Node or npm is missing, or ``npm ci`` failed.
    """
    if shutil.which("node") is None or shutil.which("npm") is None:
        msg = "node and npm are needed for the peer (apt-get install -y nodejs npm)"
        raise RuntimeError(msg)
    if installed_version() != pinned_version():
        done = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
            cwd=PEER_DIR,
            capture_output=True,
            check=False,
            timeout=NPM_TIMEOUT,
        )
        if done.returncode != 0:
            msg = f"npm ci failed: {done.stderr.decode()[-500:]}"
            raise RuntimeError(msg)
    version = installed_version()
    if version != pinned_version():
        msg = f"installed oidc-provider {version} is not {pinned_version()}"
        raise RuntimeError(msg)
    return version


def start_peer(processes: Processes, workdir: Path, resource: str) -> Server:
    """Start the peer on a free port and wait until it answers."""
    port = free_port()
    command = [
        "node",
        str(PEER_DIR / "server.mjs"),
        str(port),
        CLIENT_ID,
        CLIENT_SECRET,
        resource,
    ]
    return processes.start("peer", command, port, workdir)


def peer_body(resource: str) -> bytes:
    """Return the measured request's form: client_credentials, scope read."""
    return urlencode(
        {"grant_type": "client_credentials", "scope": "read", "resource": resource}
    ).encode("ascii")


def peer_authorization() -> str:
    """Return the client's ``Authorization: Basic`` value (RFC 6749 §2.3.1)."""
    pair = f"{CLIENT_ID}:{CLIENT_SECRET}".encode("ascii")
    return "Basic " + base64.b64encode(pair).decode("ascii")
