"""
``gatepass policy``: check policies locally, and see or reload the broker's set.

``validate`` and ``test`` run on this machine with no broker, so they fit in CI;
``status`` and ``reload`` ask the broker.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from gatepass.cli.client import admin_client
from gatepass.cli.output import JSON_OPTION, print_json, print_record, stdout_console
from gatepass.policy import CaseReport, CedarPolicySet, run_cases

__all__ = ["app"]

app = typer.Typer(
    help="Validate, test and reload Cedar policies.", no_args_is_help=True
)

_DIRECTORY = typer.Argument(
    ...,
    metavar="DIR",
    help="a policy directory: schema.cedarschema and *.cedar files",
)


def _print_report(report: CaseReport) -> None:
    console = stdout_console()
    for result in report.results:
        mark = "[green]PASS[/green]" if result.passed else "[red]FAIL[/red]"
        console.print(
            f"{mark} {escape(result.file.name)}: {escape(result.name)}",
            soft_wrap=True,
        )
        for problem in result.problems:
            console.print(f"     {escape(problem)}", soft_wrap=True)
    failed = len(report.failures)
    console.print(f"{len(report.results) - failed} passed, {failed} failed")


def _print_status(status: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        print_json(status)
        return
    print_record(status, title="live policy set")


@app.command("validate")
def validate(directory: Path = _DIRECTORY) -> None:
    """Parse and validate a policy directory against its schema (no broker needed)."""
    policy_set = CedarPolicySet.from_directory(directory)
    stdout_console().print(
        f"{escape(str(directory))}: {policy_set.policy_count} policies valid, "
        f"digest {policy_set.digest}",
        soft_wrap=True,
    )


@app.command("test")
def run_tests(
    directory: Path = _DIRECTORY,
    cases: Path | None = typer.Option(
        None,
        "--cases",
        help="a TOML case file or a directory of them [default: DIR/tests]",
    ),
) -> None:
    """Run TOML policy test cases against a policy directory (no broker needed)."""
    policy_set = CedarPolicySet.from_directory(directory)
    report = run_cases(policy_set, cases if cases is not None else directory / "tests")
    _print_report(report)
    if not report.passed:
        raise typer.Exit(1)


@app.command("status")
def status(as_json: bool = JSON_OPTION) -> None:
    """Show the broker's live policy set: count, digest and the last reload error."""
    with admin_client() as client:
        answer = client.get("/v1/policy")
    _print_status(answer, as_json=as_json)


@app.command("reload")
def reload(as_json: bool = JSON_OPTION) -> None:
    """Have the broker reload its policy directory now (a broken set is refused)."""
    with admin_client() as client:
        answer = client.post("/v1/policy/reload")
    _print_status(answer, as_json=as_json)
