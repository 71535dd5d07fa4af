"""How the CLI finds its broker: --addr, --config, the environment (issue 17)."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import httpx
import pytest
import typer.main
from typer.testing import CliRunner, Result

from gatepass import __version__
from gatepass.cli import app
from gatepass.cli.client import DEFAULT_ADDR, Connector, locate

from .conftest import LiveBroker


def _config(path: Path, *, issuer: str, state_dir: Path) -> Path:
    path.write_text(
        f'[server]\nissuer = "{issuer}"\nstate_dir = "{state_dir}"\n', encoding="utf-8"
    )
    return path


def _refuse(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


class Recorder:
    """A connector that records the address each command connects to."""

    def __init__(self, broker: LiveBroker | None) -> None:
        """Serve from the in-process broker, or refuse every connection."""
        self.addresses: list[str] = []
        self._broker = broker

    def open_http(self, address: str) -> httpx.Client:
        """Record the address; hand out the broker's client or a refusing one."""
        self.addresses.append(address)
        if self._broker is not None:
            # A TestClient (an httpx2 client when mcp is installed) speaks httpx.
            return cast("httpx.Client", self._broker.http)
        return httpx.Client(base_url=address, transport=httpx.MockTransport(_refuse))

    def run(self, *args: str, **env: str | None) -> Result:
        """Run a command with a clean environment plus ``env``."""
        environment: dict[str, str | None] = {
            "GATEPASS_ADDR": None,
            "GATEPASS_TOKEN": None,
            "GATEPASS_STATE_DIR": None,
            "GATEPASS_CONFIG": None,
            "COLUMNS": "200",
            **env,
        }
        connector = Connector(open_http=self.open_http, owns_http=False)
        return CliRunner().invoke(app, list(args), obj=connector, env=environment)


@pytest.fixture
def recorder(broker: LiveBroker) -> Recorder:
    """A connector in front of the in-process broker."""
    return Recorder(broker)


class TestIssue17Config:
    """--config gives the issuer and the state directory, so the token is found."""

    def test_issue17_config_finds_the_address_and_the_token_file(
        self, recorder, broker, tmp_path
    ):
        """With only --config, the command reaches the issuer with admin.token."""
        config = _config(
            tmp_path / "b.toml",
            issuer="http://10.1.2.3:9400",
            state_dir=broker.state_dir,
        )
        result = recorder.run("targets", "list", "--config", str(config))
        assert result.exit_code == 0, result.output
        assert recorder.addresses == ["http://10.1.2.3:9400"]
        assert "tickets-prod" in result.stdout

    def test_issue17_gatepass_config_in_the_environment(
        self, recorder, broker, tmp_path
    ):
        """GATEPASS_CONFIG works like --config for every command."""
        config = _config(
            tmp_path / "b.toml",
            issuer="http://10.1.2.3:9400",
            state_dir=broker.state_dir,
        )
        result = recorder.run("agents", "list", GATEPASS_CONFIG=str(config))
        assert result.exit_code == 0, result.output
        assert recorder.addresses == ["http://10.1.2.3:9400"]

    def test_issue17_addr_beats_config_which_beats_the_environment(
        self, recorder, broker, tmp_path
    ):
        """--addr wins over --config's issuer, which wins over GATEPASS_ADDR."""
        config = _config(
            tmp_path / "b.toml", issuer="http://config:1", state_dir=broker.state_dir
        )
        env = {"GATEPASS_ADDR": "http://env:2", "GATEPASS_TOKEN": broker.admin_token}
        recorder.run(
            "keys", "list", "--addr", "http://flag:3", "-c", str(config), **env
        )
        recorder.run("keys", "list", "-c", str(config), **env)
        recorder.run("keys", "list", **env)
        assert recorder.addresses == [
            "http://flag:3",
            "http://config:1",
            "http://env:2",
        ]

    def test_issue17_every_broker_command_takes_addr_and_config(self):
        """Each command that talks to a broker has --addr and --config options."""
        root = typer.main.get_command(app)
        commands = [
            ("agents", "add"),
            ("agents", "list"),
            ("agents", "show"),
            ("agents", "disable"),
            ("tasks", "list"),
            ("tasks", "show"),
            ("tasks", "close"),
            ("leases", "list"),
            ("leases", "show"),
            ("leases", "revoke"),
            ("targets", "list"),
            ("keys", "list"),
            ("keys", "rotate"),
            ("policy", "status"),
            ("policy", "reload"),
            ("policy", "explain"),
            ("audit", "tail"),
            ("audit", "export"),
            ("audit", "verify"),
            ("audit", "reconcile"),
            ("tokens", "create"),
            ("tokens", "list"),
            ("tokens", "revoke"),
        ]
        for group, name in commands:
            command = root.commands[group].commands[name]  # type: ignore[attr-defined]
            options = {opt for param in command.params for opt in param.opts}
            assert {"--addr", "--config"} <= options, (group, name)
        help_text = Recorder(None).run("tasks", "list", "--help").stdout
        assert "--addr" in help_text
        assert "GATEPASS_CONFIG" in help_text

    def test_issue17_missing_config_file_exits_78(self, recorder, tmp_path):
        """A --config that does not exist is a configuration error, exit 78."""
        result = recorder.run("tasks", "list", "--config", str(tmp_path / "none.toml"))
        assert result.exit_code == 78
        assert "does not exist" in result.stderr

    def test_issue17_no_token_names_config_and_the_file(self, recorder, tmp_path):
        """Without a token the message says how to give one and where it looked."""
        config = _config(tmp_path / "b.toml", issuer="http://b:1", state_dir=tmp_path)
        result = recorder.run("tasks", "list", "--config", str(config))
        assert result.exit_code == 77
        assert "GATEPASS_TOKEN" in result.stderr
        assert "--config" in result.stderr
        assert str(tmp_path / "admin.token") in result.stderr


class TestIssue17Unreachable:
    """A broker that does not answer is one line naming the way out, exit 69."""

    def test_issue17_unreachable_names_gatepass_addr(self):
        """The message names the address, where it came from, and GATEPASS_ADDR."""
        result = Recorder(None).run(
            "tasks", "list", GATEPASS_ADDR="http://127.0.0.1:1", GATEPASS_TOKEN="t"
        )
        assert result.exit_code == 69
        opening = "gatepass: cannot reach the broker at http://127.0.0.1:1"
        assert result.stderr.startswith(f"{opening} (from GATEPASS_ADDR)")
        assert "GATEPASS_ADDR" in result.stderr.split("(from GATEPASS_ADDR)")[1]
        assert "--config" in result.stderr
        assert "Traceback" not in result.output

    def test_issue17_default_address_says_it_is_the_default(self):
        """With nothing configured the message says the default was used."""
        result = Recorder(None).run("agents", "list", GATEPASS_TOKEN="t")
        assert result.exit_code == 69
        assert f"at {DEFAULT_ADDR} (from the default)" in result.stderr


class TestLocate:
    """The order in which the address and the state directory are chosen."""

    def test_state_dir_from_config_beats_the_environment(self, tmp_path, monkeypatch):
        """--config's state directory wins over GATEPASS_STATE_DIR."""
        config = _config(tmp_path / "b.toml", issuer="http://b:1", state_dir=tmp_path)
        monkeypatch.setenv("GATEPASS_STATE_DIR", "/elsewhere")
        assert locate(None, config).state_dir == tmp_path
        assert locate().state_dir == Path("/elsewhere")

    def test_defaults(self, monkeypatch):
        """With nothing set: the default address and .gatepass."""
        for name in ("GATEPASS_ADDR", "GATEPASS_STATE_DIR", "GATEPASS_CONFIG"):
            monkeypatch.delenv(name, raising=False)
        found = locate()
        assert (found.address, found.state_dir) == (DEFAULT_ADDR, Path(".gatepass"))

    def test_trailing_slash_is_dropped(self):
        """An address given with a trailing slash is used without it."""
        assert locate("http://b:1/").address == "http://b:1"


class TestIssue17Version:
    """``gatepass --version``."""

    def test_issue17_version(self, local_cli):
        """--version prints the package version and exits 0 without a broker."""
        result = local_cli("--version")
        assert result.exit_code == 0
        assert result.stdout == f"gatepass {__version__}\n"
