"""
The options commands share: where the broker is, and how to print.

Every command that talks to a broker takes ``--addr`` and ``--config``; every
command that prints records takes ``-o table|json`` (``--json`` is kept as a
hidden alias of ``-o json``) and, for lists, ``--wide``.
"""

from __future__ import annotations

import enum

import typer

__all__ = [
    "ADDR_OPTION",
    "CONFIG_OPTION",
    "JSON_OPTION",
    "OUTPUT_OPTION",
    "WIDE_OPTION",
    "Format",
    "wants_json",
]


class Format(enum.StrEnum):
    """How a command prints what it got."""

    TABLE = "table"
    JSON = "json"


ADDR_OPTION = typer.Option(
    None,
    "--addr",
    metavar="URL",
    help="the broker's URL (default: the --config issuer, GATEPASS_ADDR, "
    "then http://127.0.0.1:8400)",
    show_default=False,
)
CONFIG_OPTION = typer.Option(
    None,
    "--config",
    "-c",
    metavar="FILE",
    dir_okay=False,
    help="the broker's configuration: gives its issuer and the state directory "
    "holding admin.token (default: GATEPASS_CONFIG)",
    show_default=False,
)
OUTPUT_OPTION = typer.Option(
    Format.TABLE,
    "--output",
    "-o",
    case_sensitive=False,
    help="table for people, json for programs (the API's answer as is)",
)
WIDE_OPTION = typer.Option(
    False, "--wide", "-w", help="every column, and full timestamps instead of '5m ago'"
)
JSON_OPTION = typer.Option(False, "--json", hidden=True, help="the same as -o json")


def wants_json(output: Format, as_json: bool) -> bool:
    """
    Tell whether the command should print JSON.

    Args:
        output: the ``-o`` choice.
        as_json: the hidden ``--json`` alias.

    Returns:
        True for ``-o json`` or ``--json``.
    """
    return as_json or output is Format.JSON
