"""
The broker as a real process.

Write its config file, start ``gatepass serve``, stop it gently or with ``kill -9``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from gatepass.config import Settings

from .deadline import poll

GATEPASS = str(Path(sys.executable).with_name("gatepass"))


def write_config(path: Path, settings: Settings) -> None:
    """Write ``settings`` as the TOML file ``gatepass serve`` reads."""

    def value(item: Any) -> str:
        if isinstance(item, bool):
            return "true" if item else "false"
        if isinstance(item, (int, float)):
            return str(item)
        if isinstance(item, str):
            return json.dumps(item)
        if isinstance(item, list):
            return "[" + ", ".join(value(v) for v in item) + "]"
        if isinstance(item, dict):
            return "{" + ", ".join(f"{k} = {value(v)}" for k, v in item.items()) + "}"
        msg = f"cannot write {type(item).__name__}"
        raise TypeError(msg)

    data = settings.model_dump(mode="json", exclude_none=True)
    lines: list[str] = []
    for section, table in data.items():
        if section == "targets":
            for target in table:
                lines.append("[[targets]]")
                lines.extend(f"{k} = {value(v)}" for k, v in target.items())
        else:
            lines.append(f"[{section}]")
            lines.extend(f"{k} = {value(v)}" for k, v in table.items())
    path.write_text("\n".join(lines) + "\n")


def serve(
    config: Path,
    url: str,
    *,
    prefix: tuple[str, ...] = (),
    args: tuple[str, ...] = (),
    **env: str,
) -> subprocess.Popen[bytes]:
    """
    Start ``gatepass serve -c config`` and wait until ``/readyz`` answers 200.

    Args:
        config: the config file.
        url: the broker's base URL.
        prefix: a command to run the broker under (``faketime`` ...).
        args: more arguments to ``gatepass serve`` (``--workers 2``).
        env: extra environment variables (failpoints).
    """
    process = subprocess.Popen(  # noqa: S603 - our own entry point
        [*prefix, GATEPASS, "serve", "-c", str(config), *args],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def ready() -> bool:
        try:
            return httpx.get(f"{url}/readyz", timeout=1).status_code == 200
        except httpx.TransportError:
            return process.poll() is not None

    assert poll(ready, within=30.0)
    assert process.poll() is None, "the broker exited during start-up"
    return process


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a broker with SIGINT (graceful), killing it if it does not exit."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def kill(process: subprocess.Popen[bytes]) -> None:
    """``kill -9`` a broker and reap it."""
    if process.poll() is None:
        process.kill()
    process.wait(timeout=10)
