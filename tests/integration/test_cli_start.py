"""
``gatepass serve`` and the install, as a new user meets them (issue 17).

Real processes: the port-in-use message, "broker ready" only once the port is
bound, and ``gatepass`` with only the SDK importable.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from gatepass.cli.startup import bind
from gatepass.errors import ConfigurationError

from .conftest import REPO, free_port
from .deadline import poll

pytestmark = pytest.mark.slow

GATEPASS = str(Path(sys.executable).with_name("gatepass"))


def _config(tmp_path: Path, port: int, demo_port: int) -> Path:
    text = (REPO / "examples" / "quickstart" / "gatepass.toml").read_text()
    text = text.replace("port = 8400", f"port = {port}")
    text = text.replace("127.0.0.1:8401", f"127.0.0.1:{demo_port}")
    text = text.replace(
        'state_dir = ".gatepass"', f'state_dir = "{tmp_path / "state"}"'
    )
    text = text.replace(
        'directory = "examples/quickstart/policies"',
        f'directory = "{REPO / "examples" / "quickstart" / "policies"}"',
    )
    path = tmp_path / "gatepass.toml"
    path.write_text(text)
    return path


def _serve(config: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own entry point
        [GATEPASS, "serve", "--config", str(config), *extra],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


class TestIssue17PortInUse:
    """A taken port is one plain message naming the setting, exit 78."""

    def test_issue17_broker_port_taken(self, tmp_path: Path) -> None:
        """The broker's port taken: '[server] port' and the file, no traceback."""
        with socket.create_server(("127.0.0.1", 0)) as taken:
            port = taken.getsockname()[1]
            config = _config(tmp_path, port, free_port())
            done = _serve(config)
        assert done.returncode == 78
        assert done.stderr == (
            f"gatepass: port {port} on 127.0.0.1 is already in use: stop what is "
            f"listening there, or change [server] port in {config}\n"
        )
        assert "Traceback" not in done.stdout + done.stderr
        assert "broker ready" not in done.stdout + done.stderr
        # Nothing was started: no first-start work happened.
        assert not (tmp_path / "state" / "admin.token").exists()

    def test_issue17_demo_port_taken(self, tmp_path: Path) -> None:
        """With --with-demo, a taken demo port names [demo] resource_port."""
        with socket.create_server(("127.0.0.1", 0)) as taken:
            demo_port = taken.getsockname()[1]
            done = _serve(_config(tmp_path, free_port(), demo_port), "--with-demo")
        assert done.returncode == 78
        assert f"port {demo_port} on 127.0.0.1 is already in use" in done.stderr
        assert "[demo] resource_port" in done.stderr


class TestIssue17Ready:
    """'broker ready' and the banner come once the port answers."""

    def test_issue17_ready_is_logged_after_the_port_is_bound(
        self, tmp_path: Path
    ) -> None:
        """When 'broker ready' is logged, /readyz already answers on the port."""
        port = free_port()
        config = _config(tmp_path, port, free_port())
        log = tmp_path / "serve.log"
        errors = tmp_path / "serve.err"
        with log.open("w") as out, errors.open("w") as err:
            process = subprocess.Popen(  # noqa: S603 - our own entry point
                [GATEPASS, "serve", "--config", str(config)], stdout=out, stderr=err
            )
        try:
            assert poll(
                lambda: "broker ready" in log.read_text() or process.poll() is not None,
                within=60,
            ), errors.read_text()
            assert process.poll() is None, errors.read_text()
            # Logged after the server started on the bound socket: it answers now.
            answer = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
            assert answer.status_code == 200
            ready = [
                json.loads(line)
                for line in log.read_text().splitlines()
                if '"broker ready"' in line
            ]
            assert len(ready) == 1
            text = log.read_text()
            assert text.index("Application startup complete") < text.index(
                '"broker ready"'
            )
            assert ready[0]["issuer"] == f"http://127.0.0.1:{port}"
            assert ready[0]["admin_file"].endswith("admin.token")
            banner = errors.read_text()
            assert f"issuer       http://127.0.0.1:{port}" in banner
            assert "admin token" in banner
        finally:
            process.terminate()
            process.wait(timeout=15)


class TestIssue17SdkOnly:
    """With only the SDK importable, `gatepass` says what to install."""

    def test_issue17_sdk_only_install_prints_the_extra(self, tmp_path: Path) -> None:
        """A missing server dependency is one line naming gatepass[server], exit 69."""
        shim = tmp_path / "no_server.py"
        # As if typer (a server dependency) were not installed.
        shim.write_text(
            "import sys\n"
            "sys.modules['typer'] = None\n"
            "from gatepass.cli import main\n"
            "main()\n"
        )
        done = subprocess.run(  # noqa: S603 - our own interpreter
            [sys.executable, str(shim), "tasks", "list"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={**os.environ},
        )
        assert done.returncode == 69
        assert "pip install 'gatepass[server]'" in done.stderr
        assert "Traceback" not in done.stderr
        assert done.stderr.count("\n") == 1

    def test_issue17_sdk_imports_without_server_packages(self, tmp_path: Path) -> None:
        """The SDK itself imports with typer, starlette and sqlalchemy missing."""
        shim = tmp_path / "sdk_only.py"
        shim.write_text(
            "import sys\n"
            "for name in ('typer', 'starlette', 'sqlalchemy', 'cedarpy', 'pydantic'):\n"
            "    sys.modules[name] = None\n"
            "from gatepass.sdk import AgentIdentity, GatepassClient\n"
            "print('ok')\n"
        )
        done = subprocess.run(  # noqa: S603 - our own interpreter
            [sys.executable, str(shim)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout == "ok\n"


class TestIssue17Bind:
    """``startup.bind`` in-process: a listening socket, or a plain error."""

    def test_issue17_bind_listens(self, tmp_path: Path) -> None:
        """A free port is bound and listening before any server starts."""
        port = free_port()
        listener = bind("127.0.0.1", port, setting="[server] port", config=tmp_path)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5):
                pass
            assert listener.setting == "[server] port"
        finally:
            listener.sock.close()

    def test_accepted_connections_do_not_wait_for_nagle(self, tmp_path: Path) -> None:
        """
        Every accepted connection has TCP_NODELAY (uvicorn sets it only on its own).

        Without it, a keep-alive client of ``gatepass serve`` waited ~40 ms for
        each answer whose headers and body were written apart.
        """
        port = free_port()
        listener = bind("127.0.0.1", port, setting="[server] port", config=tmp_path)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5):
                accepted, _ = listener.sock.accept()
                with accepted:
                    nodelay = accepted.getsockopt(
                        socket.IPPROTO_TCP, socket.TCP_NODELAY
                    )
            assert nodelay != 0
        finally:
            listener.sock.close()

    def test_issue17_bind_taken_names_the_setting(self, tmp_path: Path) -> None:
        """A taken port raises ConfigurationError naming the setting and file."""
        with socket.create_server(("127.0.0.1", 0)) as taken:
            port = taken.getsockname()[1]
            with pytest.raises(ConfigurationError) as caught:
                bind("127.0.0.1", port, setting="[demo] resource_port", config=tmp_path)
        assert caught.value.detail == (
            f"port {port} on 127.0.0.1 is already in use: stop what is listening "
            f"there, or change [demo] resource_port in {tmp_path}"
        )

    def test_issue17_bind_unknown_host(self, tmp_path: Path) -> None:
        """An address that cannot be bound at all is named with the reason."""
        with pytest.raises(ConfigurationError, match=r"cannot listen on 192\.0\.2\.1"):
            bind("192.0.2.1", free_port(), setting="[server] port", config=tmp_path)
