"""Fixtures for the proxy primitives: a frozen clock, the canary and secret files."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import pytest

from gatepass.clock import FrozenClock
from gatepass.proxy import Compartment, UpstreamAuth
from gatepass.secret import Secret

CANARY = "canary-7f3a9c"


def spellings(secret: str) -> list[str]:
    """The secret raw, percent-encoded, hex and base64 (every alignment's core)."""
    raw = secret.encode()
    forms = {secret, quote(secret, safe=""), raw.hex(), raw.hex().upper()}
    for offset in range(3):
        core = base64.b64encode(b"#" * offset + raw + b"#")[4:-4].decode()
        forms |= {core, core.replace("+", "-").replace("/", "_")}
    return sorted(forms)


CANARY_SPELLINGS = spellings(CANARY)

SecretFileFactory = Callable[..., Path]
CompartmentFactory = Callable[..., Compartment]


@pytest.fixture
def clock() -> FrozenClock:
    """A clock that moves only when told to."""
    return FrozenClock()


@pytest.fixture
def secret_file(tmp_path: Path) -> SecretFileFactory:
    """Return a factory writing a secret file with the given content and mode."""

    def make(content: str | bytes = CANARY + "\n", *, mode: int = 0o600) -> Path:
        path = tmp_path / "upstream.secret"
        data = content.encode() if isinstance(content, str) else content
        path.write_bytes(data)
        path.chmod(mode)
        return path

    return make


@pytest.fixture
def make_compartment() -> CompartmentFactory:
    """Return a factory for a compartment holding the canary (or another secret)."""

    def make(
        method: str = "header",
        *,
        name: str | None = None,
        username: str | None = None,
        secret: str = CANARY,
    ) -> Compartment:
        if name is None and method == "header":
            name = "X-API-Key"
        if name is None and method == "query":
            name = "api_key"
        auth = UpstreamAuth.model_validate(
            {
                "method": method,
                "name": name,
                "username": username,
                "secret_env": "UNUSED_IN_THIS_TEST",
            }
        )
        return Compartment("tickets", auth, Secret(secret))

    return make
