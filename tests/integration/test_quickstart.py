"""
The quickstart as a new user runs it.

``gatepass serve --with-demo`` in its own process, then ``gatepass demo`` and a few
CLI commands against it.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .conftest import REPO, free_port

pytestmark = pytest.mark.slow

GATEPASS = str(Path(sys.executable).with_name("gatepass"))


def quickstart_config(tmp_path: Path, port: int, resource_port: int) -> Path:
    """Write the quickstart configuration with its ports and state moved."""
    text = (REPO / "examples" / "quickstart" / "gatepass.toml").read_text()
    text = text.replace("127.0.0.1:8400", f"127.0.0.1:{port}")
    text = text.replace("port = 8400", f"port = {port}")
    text = text.replace("127.0.0.1:8401", f"127.0.0.1:{resource_port}")
    text = text.replace("resource_port = 8401", f"resource_port = {resource_port}")
    text = text.replace(
        'state_dir = ".gatepass"', f'state_dir = "{tmp_path / "state"}"'
    )
    text = re.sub(
        r'directory = "examples/quickstart/policies"',
        f'directory = "{REPO / "examples" / "quickstart" / "policies"}"',
        text,
    )
    path = tmp_path / "gatepass.toml"
    path.write_text(text)
    return path


def _log(tmp_path: Path) -> str:
    return (tmp_path / "serve.log").read_text()[-2000:]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """`gatepass serve --with-demo` running in its own process until ready."""
    port, resource_port = free_port(), free_port()
    config = quickstart_config(tmp_path, port, resource_port)
    log = (tmp_path / "serve.log").open("w")
    process = subprocess.Popen(  # noqa: S603 - our own entry point
        [GATEPASS, "serve", "--config", str(config), "--with-demo"],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    try:
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"broker did not start: {_log(tmp_path)}")
            try:
                # One step of the poll, which also notices a broker that exited.
                process.wait(timeout=0.1)
            except subprocess.TimeoutExpired:
                continue
            pytest.fail(f"broker exited: {_log(tmp_path)}")
        yield config, url
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def run_cli(
    *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the gatepass CLI and capture its output."""
    return subprocess.run(  # noqa: S603 - our own entry point
        [GATEPASS, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )


class TestQuickstart:
    """The README's tour works against a real `gatepass serve`."""

    def test_tour_and_cli(self, served: tuple[Path, str]) -> None:
        """The demo tour passes, the CLI sees its task, and the audit verifies."""
        config, url = served
        tour = run_cli("demo", "--config", str(config))
        assert tour.returncode == 0, tour.stdout + tour.stderr
        assert "eyJ" not in tour.stdout
        state = config.parent / "state"
        env = {
            "GATEPASS_ADDR": url,
            "GATEPASS_TOKEN": (state / "admin.token").read_text().strip(),
        }
        tasks = run_cli("tasks", "list", "--json", env=env)
        assert tasks.returncode == 0, tasks.stderr
        assert '"state": "closed"' in tasks.stdout
        verified = run_cli("audit", "verify", env=env)
        assert verified.returncode == 0, verified.stdout + verified.stderr
        mode = (state / "demo-agent.json").stat().st_mode & 0o777
        assert mode == 0o600
        serve_log = (config.parent / "serve.log").read_text()
        assert "eyJ" not in serve_log
        assert (state / "admin.token").read_text().strip() not in serve_log
