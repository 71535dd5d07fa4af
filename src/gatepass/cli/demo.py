"""``gatepass demo``: walk the demo agent through a task on a running quickstart."""

from __future__ import annotations

from pathlib import Path

import typer

from gatepass.config import load_settings
from gatepass.demo import run_tour

__all__ = ["demo"]


def demo(
    config: Path = typer.Option(
        Path("examples/quickstart/gatepass.toml"),
        "--config",
        "-c",
        envvar="GATEPASS_CONFIG",
        help="the configuration the broker was started with",
    ),
) -> None:
    """Open a task, use its tokens on the demo API, close it, and show the refusal."""
    run_tour(load_settings(config))
