"""
The ``gatepass`` command line.

One module per noun; each talks to the admin API (see ``cli/client.py`` for how
it finds the broker and its admin token), except ``serve``, ``proxy``, the local
``policy validate|test`` and ``audit verify --file``. Errors from any command end
in :class:`~gatepass.cli.output.GatepassGroup`, which prints ``gatepass:
<detail>`` and exits with the error's exit code (docs/cli.md).

The command line is part of the server install (``gatepass[server]``): with only
the SDK installed, :func:`main` says so instead of failing on an import.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    import typer

__all__ = ["app", "main"]

# sysexits EX_UNAVAILABLE: a component the command needs is not there.
_MISSING_EXIT: Final = 69


def __getattr__(name: str) -> typer.Typer:
    """Import the Typer app on first use, so that ``main`` can report its absence."""
    if name == "app":
        from gatepass.cli.root import app  # noqa: PLC0415 - deliberately lazy

        return app
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)


def main() -> None:
    """Run the command line, or explain how to install it."""
    try:
        from gatepass.cli.root import app  # noqa: PLC0415 - deliberately lazy
    except ModuleNotFoundError as error:
        missing = (error.name or "").partition(".")[0]
        if missing in {"", "gatepass"}:
            raise
        sys.stderr.write(
            f"gatepass: the command line needs the server install ({missing} is "
            "missing): pip install 'gatepass[server]' (see the README's Install)\n"
        )
        raise SystemExit(_MISSING_EXIT) from None
    app()
