"""``gatepass demo``: walk the demo agent through a task on a running quickstart."""

from __future__ import annotations

from pathlib import Path

import typer

from gatepass.config import load_settings
from gatepass.demo import run_tour
from gatepass.demo.approval_tour import run_approval_tour

__all__ = ["demo"]


def demo(
    config: Path = typer.Option(
        Path("examples/quickstart/gatepass.toml"),
        "--config",
        "-c",
        envvar="GATEPASS_CONFIG",
        help="the configuration the broker was started with",
    ),
    approval: bool = typer.Option(
        False,
        "--approval",
        help="the step-up tour: a production write waits for an approver",
    ),
) -> None:
    """Open a task, use its tokens on the demo API, close it, and show the refusal."""
    settings = load_settings(config)
    if approval:
        run_approval_tour(settings)
        return
    run_tour(settings)
