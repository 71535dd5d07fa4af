"""
The README, run as written, against a broker on ports other than the defaults.

The blocks marked ``<!-- readme-test: NAME -->`` in README.md are read from the file
and run in a scratch directory laid out like the repository root (``examples/``),
the way the README's "Other ports" section says: the quickstart configuration
copied to ``my.toml`` with its ports changed in their one place each,
``gatepass serve --config my.toml --with-demo`` (what ``make run CONFIG=my.toml``
runs) and ``GATEPASS_CONFIG=my.toml`` for every other command. ``.venv/bin/`` is
this interpreter's environment; nothing else in a command is changed.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from .conftest import REPO, free_port
from .deadline import poll

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
_BLOCK = re.compile(r"<!-- readme-test: ([\w-]+) -->\n```(\w+)\n(.*?)```", re.DOTALL)
_ENV_KEYS = ("GATEPASS_ADDR", "GATEPASS_TOKEN", "GATEPASS_STATE_DIR", "GATEPASS_CONFIG")


def readme_blocks() -> dict[str, str]:
    """Return every marked block of README.md by name."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    return {name: code for name, _language, code in _BLOCK.findall(text)}


def commands(block: str) -> list[list[str]]:
    """Split a shell block into commands: continuations joined, comments dropped."""
    joined = block.replace("\\\n", " ")
    found = []
    for line in joined.splitlines():
        words = shlex.split(line, comments=True)
        if words:
            found.append(words)
    return found


def local(words: list[str]) -> list[str]:
    """Run ``.venv/bin/...`` from this interpreter's environment instead."""
    program = words[0]
    if program.startswith(".venv/bin/"):
        return [str(BIN / program.removeprefix(".venv/bin/")), *words[1:]]
    return words


def move_port(text: str, old: int, new: int) -> str:
    """Change a port that the README says is written in exactly one place."""
    assert text.count(str(old)) == 1, f"port {old} is written more than once"
    return text.replace(str(old), str(new))


@dataclass
class World:
    """The scratch repository root, its ports, and the processes started in it."""

    root: Path
    ports: dict[str, int]
    env: dict[str, str]
    blocks: dict[str, str]
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def broker_url(self) -> str:
        """The broker's issuer."""
        return f"http://127.0.0.1:{self.ports['broker']}"

    def run(self, words: list[str], **env: str) -> subprocess.CompletedProcess[str]:
        """Run one command in the root and insist that it succeeds."""
        done = subprocess.run(  # noqa: S603 - commands from our own README
            local(words),
            cwd=self.root,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )
        assert done.returncode == 0, f"{shlex.join(words)}: {done.stdout}{done.stderr}"
        return done

    def python(self, name: str, **env: str) -> str:
        """Run a Python block of the README in the root; return what it printed."""
        script = self.root / f"{name}.py"
        script.write_text(self.blocks[name], encoding="utf-8")
        return self.run([sys.executable, str(script)], **env).stdout

    def start(self, words: list[str], log: str, **env: str) -> subprocess.Popen[bytes]:
        """Start a long-running command in the root, its output to a log file."""
        with (self.root / log).open("wb") as out:
            process = subprocess.Popen(  # noqa: S603 - commands from our README
                local(words),
                cwd=self.root,
                env={**self.env, **env},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.processes.append(process)
        return process

    def log(self, name: str) -> str:
        """Return a log file's text."""
        return (self.root / name).read_text(encoding="utf-8", errors="replace")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The README's "Other ports" setup with `make run CONFIG=my.toml` running."""
    root = tmp_path_factory.mktemp("readme")
    (root / "examples").mkdir()
    (root / "examples" / "quickstart").symlink_to(REPO / "examples" / "quickstart")
    (root / "examples" / "proxy").mkdir()
    ports = {name: free_port() for name in ("broker", "demo", "proxy", "legacy")}
    quickstart = (REPO / "examples" / "quickstart" / "gatepass.toml").read_text()
    config = move_port(quickstart, 8400, ports["broker"])
    config = move_port(config, 8401, ports["demo"])
    config = move_port(config, 8404, ports["proxy"])
    (root / "my.toml").write_text(config)
    # The proxy example names the broker and its own ports in its one file.
    proxy = (REPO / "examples" / "proxy" / "proxy.toml").read_text()
    proxy = proxy.replace("127.0.0.1:8400", f"127.0.0.1:{ports['broker']}")
    proxy = proxy.replace("8404", str(ports["proxy"]))
    proxy = proxy.replace("127.0.0.1:8403", f"127.0.0.1:{ports['legacy']}")
    (root / "examples" / "proxy" / "proxy.toml").write_text(proxy)
    (root / "examples" / "proxy" / "legacy_api.py").symlink_to(
        REPO / "examples" / "proxy" / "legacy_api.py"
    )
    env = {key: value for key, value in os.environ.items() if key not in _ENV_KEYS}
    env["GATEPASS_CONFIG"] = "my.toml"
    found = World(root=root, ports=ports, env=env, blocks=readme_blocks())
    makefile = (REPO / "Makefile").read_text()
    assert "$(BIN)/gatepass serve --config $(CONFIG) --with-demo" in makefile
    assert commands(found.blocks["start"]) == [["make", "run"]]
    broker = found.start(
        [".venv/bin/gatepass", "serve", "--config", "my.toml", "--with-demo"],
        "serve.log",
    )
    try:
        ready = poll(
            lambda: _answers(f"{found.broker_url}/readyz") or broker.poll() is not None,
            within=60,
        )
        assert ready, found.log("serve.log")
        assert broker.poll() is None, found.log("serve.log")
        yield found
    finally:
        for process in reversed(found.processes):
            _stop(process)


class TestReadme:
    """The README's commands work on other ports and print what it says."""

    def test_tour_steps_1_to_5(self, world: World) -> None:
        """The banner, the demo, the CLI tour, the policy checks and the SDK agent."""
        banner = world.log("serve.log")
        assert "broker ready" in banner
        assert f"issuer       {world.broker_url}" in banner
        assert ".gatepass/admin.token" in banner
        assert f"http://127.0.0.1:{world.ports['demo']}/" in banner
        assert commands(world.blocks["demo"]) == [["make", "demo"]]
        tour = world.run([".venv/bin/gatepass", "demo"])
        assert "Tour complete" in tour.stdout
        shown = [world.run(words) for words in commands(world.blocks["look"])]
        tasks, leases, tail, issued, verified = (done.stdout for done in shown)
        assert "closed" in tasks
        assert "demo-agent" in tasks
        assert "access_token" in leases
        assert "credential.issue" in tail
        assert "task.close" in tail
        assert "credential.issue" in issued
        assert "task.open" not in issued
        assert "audit log verified" in verified
        validate, test, explain = (
            world.run(words).stdout for words in commands(world.blocks["policy"])
        )
        assert "policies valid" in validate
        assert "0 failed" in test
        assert "DENY" in explain
        assert "never-admin" in explain
        listed = world.python("sdk")
        assert listed.startswith("{'items': [")
        assert "printer on fire" in listed

    def test_step_6_an_agent_with_its_identity_file(self, world: World) -> None:
        """Register triage-bot with --write-identity; the agent loads it and reads."""
        generated, added = (
            world.run(words) for words in commands(world.blocks["identity"])
        )
        assert generated.returncode == 0
        identity = json.loads((world.root / "triage-bot.json").read_text())
        assert re.fullmatch(r"agt_[a-z2-7]{26}", identity["agent_id"])
        assert f"agent id: {identity['agent_id']}" in added.stdout
        assert identity["broker"] == world.broker_url
        assert identity["private_key_file"] == "agent.pem"
        assert (world.root / "triage-bot.json").stat().st_mode & 0o777 == 0o600
        assert "PRIVATE" not in added.stdout + added.stderr
        assert world.python("identity-agent").strip() == "200"

    def test_proxy_example(self, world: World) -> None:
        """The legacy API behind examples/proxy/proxy.toml answers the SDK agent."""
        key_line, api_line, proxy_line = commands(world.blocks["proxy"])
        assert key_line[:1] == ["export"]
        assert key_line[1].startswith("LEGACY_API_KEY=")
        key = secrets.token_hex(16)
        assert api_line == [".venv/bin/python", "examples/proxy/legacy_api.py", "&"]
        world.start(
            [sys.executable, api_line[1], str(world.ports["legacy"])],
            "legacy.log",
            LEGACY_API_KEY=key,
        )
        proxy = world.start(proxy_line, "proxy.log", LEGACY_API_KEY=key)
        url = f"http://127.0.0.1:{world.ports['proxy']}/healthz"
        assert poll(lambda: _answers(url) or proxy.poll() is not None, within=30)
        assert proxy.poll() is None, world.log("proxy.log")
        answer = world.python("proxy-agent")
        assert "printer on fire" in answer
        assert key not in answer
        assert key not in world.log("proxy.log")
