"""
The ``gatepass`` command line.

One module per noun; each talks to the admin API through ``GATEPASS_ADDR`` and
``GATEPASS_TOKEN`` (falling back to the quickstart's ``.gatepass/admin.token``),
except ``serve`` and the local ``policy validate|test`` and ``audit verify --file``.
"""

from __future__ import annotations

import typer

from gatepass.cli.serve import serve

__all__ = ["app", "main"]

app = typer.Typer(
    name="gatepass",
    help="Short-lived, context-bound credentials for AI agents.",
    no_args_is_help=True,
    add_completion=False,
)
app.command("serve")(serve)


@app.callback()
def _root() -> None:
    """Short-lived, context-bound credentials for AI agents."""


def main() -> None:
    """Run the command line."""
    app()
