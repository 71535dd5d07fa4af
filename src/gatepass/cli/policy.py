"""
``gatepass policy``: check policies locally, see or reload the broker's set, what-ifs.

``validate`` and ``test`` run on this machine with no broker, so they fit in CI
(the directory is the argument, or the ``[policy] directory`` of ``--config``);
``status``, ``reload`` and ``explain`` ask the broker.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from gatepass.cli.client import admin_client, locate
from gatepass.cli.options import (
    ADDR_OPTION,
    CONFIG_OPTION,
    JSON_OPTION,
    OUTPUT_OPTION,
    Format,
    wants_json,
)
from gatepass.cli.output import print_json, print_record, stdout_console
from gatepass.errors import InvalidRequestError
from gatepass.policy import CaseReport, CedarPolicySet, run_cases

__all__ = ["app"]

app = typer.Typer(
    help="Validate, test, reload and explain Cedar policies.", no_args_is_help=True
)

_DIRECTORY = typer.Argument(
    None,
    metavar="DIR",
    help="a policy directory: schema.cedarschema and *.cedar files "
    "(default: the policy directory of --config)",
    show_default=False,
)


def _directory(directory: Path | None, config: Path | None) -> Path:
    """Return the policy directory given, or the one the configuration names."""
    if directory is not None:
        return directory
    settings = locate(None, config).settings
    if settings is None:
        raise InvalidRequestError(
            "give a policy directory, or --config FILE (or GATEPASS_CONFIG) to use "
            "its [policy] directory"
        )
    return settings.policy.directory


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
def validate(
    directory: Path | None = _DIRECTORY, config: Path | None = CONFIG_OPTION
) -> None:
    """Parse and validate a policy directory against its schema (no broker needed)."""
    found = _directory(directory, config)
    policy_set = CedarPolicySet.from_directory(found)
    stdout_console().print(
        f"{escape(str(found))}: {policy_set.policy_count} policies valid, "
        f"digest {policy_set.digest}",
        soft_wrap=True,
    )


@app.command("test")
def run_tests(
    directory: Path | None = _DIRECTORY,
    cases: Path | None = typer.Option(
        None,
        "--cases",
        help="a TOML case file or a directory of them (default: DIR/tests)",
    ),
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Run TOML policy test cases against a policy directory (no broker needed)."""
    found = _directory(directory, config)
    policy_set = CedarPolicySet.from_directory(found)
    report = run_cases(policy_set, cases if cases is not None else found / "tests")
    _print_report(report)
    if not report.passed:
        raise typer.Exit(1)


@app.command("status")
def status(
    output: Format = OUTPUT_OPTION,
    as_json: bool = JSON_OPTION,
    addr: str | None = ADDR_OPTION,
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Show the broker's live policy set: count, digest and the last reload error."""
    with admin_client(addr, config) as client:
        answer = client.get("/v1/policy")
    _print_status(answer, as_json=wants_json(output, as_json))


@app.command("reload")
def reload(
    output: Format = OUTPUT_OPTION,
    as_json: bool = JSON_OPTION,
    addr: str | None = ADDR_OPTION,
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Have the broker reload its policy directory now (a broken set is refused)."""
    with admin_client(addr, config) as client:
        answer = client.post("/v1/policy/reload")
    _print_status(answer, as_json=wants_json(output, as_json))


def _print_explanation(answer: dict[str, Any]) -> None:
    profile = answer.get("profile", {})
    agent = profile.get("agent", {})
    target = profile.get("target", {})
    task = profile.get("task", {})
    ttl = answer.get("ttl_seconds")
    print_record(
        {
            "decision": str(answer.get("decision", "")).upper(),
            "deciding policies": answer.get("policy_ids"),
            "ttl cap": None if ttl is None else f"{ttl}s",
            "errors": answer.get("errors"),
            "would also refuse": answer.get("notes"),
            "agent": f"{agent.get('name')} ({agent.get('id')}), tenant "
            f"{agent.get('tenant')}",
            "labels": agent.get("labels"),
            "target": f"{target.get('name')} ({target.get('environment')}, tenant "
            f"{target.get('tenant')}, risk {target.get('risk')})",
            "action": profile.get("action"),
            "task": f"purpose {task.get('purpose') or '-'}, environment "
            f"{task.get('environment')}, tenant {task.get('tenant')}",
            "at": profile.get("at"),
            "policy digest": answer.get("policy_digest"),
        },
        title="what if",
    )


@app.command("explain")
def explain(
    agent: str = typer.Argument(..., help="the agent: an id (agt_…) or a name"),
    target: str = typer.Argument(..., help="the target: a name or a URI"),
    action: str = typer.Argument(..., help="an action of the target, or OpenTask"),
    purpose: str = typer.Option("", "--purpose", "-p", help="the task's purpose"),
    environment: str | None = typer.Option(
        None,
        "--environment",
        "-e",
        help="the task's environment (default: the target's)",
    ),
    tenant: str | None = typer.Option(
        None, "--tenant", "-t", help="the task's tenant (default: the agent's)"
    ),
    intent: str = typer.Option("", "--intent", help="the task's intent text"),
    at: str | None = typer.Option(
        None,
        "--at",
        metavar="TIME",
        help="decide as of this ISO 8601 time, such as 2026-01-06T20:00:00Z "
        "(default: now)",
    ),
    output: Format = OUTPUT_OPTION,
    as_json: bool = JSON_OPTION,
    addr: str | None = ADDR_OPTION,
    config: Path | None = CONFIG_OPTION,
) -> None:
    """
    Ask the live policy set about one request, without issuing anything.

    Prints the decision, the deciding policy ids (which agents are never
    told), the TTL cap and the facts the policy saw. It exits 0 whatever the
    decision; use -o json to script on it.
    """
    body: dict[str, Any] = {
        "agent": agent,
        "target": target,
        "action": action,
        "purpose": purpose,
        "intent": intent,
    }
    optional = {"environment": environment, "tenant": tenant, "at": at}
    body.update({key: value for key, value in optional.items() if value is not None})
    with admin_client(addr, config) as client:
        answer = client.post("/v1/policy/explain", body)
    if wants_json(output, as_json):
        print_json(answer)
        return
    _print_explanation(answer)
