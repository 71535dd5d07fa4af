"""``gatepass report frameworks``: the framework report of a running broker."""

from __future__ import annotations

import enum
import sys
from pathlib import Path

import typer

from gatepass.cli.client import admin_client
from gatepass.cli.options import ADDR_OPTION, CONFIG_OPTION
from gatepass.cli.output import print_json
from gatepass.frameworks import render_html, render_markdown

__all__ = ["app"]

app = typer.Typer(help="Reports on this deployment.", no_args_is_help=True)


class ReportFormat(enum.StrEnum):
    """How the report is printed."""

    MD = "md"
    JSON = "json"
    HTML = "html"


@app.command("frameworks")
def frameworks(
    output_format: ReportFormat = typer.Option(
        ReportFormat.MD, "--format", help="md (default), json or html"
    ),
    addr: str | None = ADDR_OPTION,
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Map OWASP ASI/NHI/MCP, CSA MAESTRO and NIST AI RMF to live evidence."""
    with admin_client(addr, config) as client:
        report = client.get("/v1/admin/report/frameworks")
    if output_format is ReportFormat.JSON:
        print_json(report)
    elif output_format is ReportFormat.HTML:
        sys.stdout.write(render_html(report))
    else:
        sys.stdout.write(render_markdown(report))
