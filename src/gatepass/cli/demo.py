"""``gatepass demo``: walk the demo agent through a task on a running quickstart."""

from __future__ import annotations

from pathlib import Path

import typer

from gatepass.config import load_settings
from gatepass.demo import run_tour
from gatepass.errors import GatepassError

__all__ = ["demo"]


def demo(
    config: Path = typer.Option(
        Path("examples/quickstart/gatepass.toml"),
        "--config",
        "-c",
        help="the configuration the broker was started with",
    ),
) -> None:
    """Open a task, use its tokens on the demo API, close it, and show the refusal."""
    try:
        run_tour(load_settings(config))
    except GatepassError as error:
        typer.echo(f"gatepass: {error.detail}", err=True)
        raise typer.Exit(error.exit_code) from error
