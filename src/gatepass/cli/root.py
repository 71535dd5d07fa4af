"""The ``gatepass`` command group: every noun, ``--version``, and the error boundary."""

from __future__ import annotations

import typer

from gatepass import __version__
from gatepass.cli import (
    agents,
    approvals,
    audit,
    console,
    evidence,
    keys,
    leases,
    operators,
    policy,
    report,
    signals,
    ssf,
    targets,
    tasks,
    tokens,
)
from gatepass.cli.demo import demo
from gatepass.cli.output import GatepassGroup
from gatepass.cli.proxy import proxy
from gatepass.cli.serve import serve

__all__ = ["app"]

app = typer.Typer(
    name="gatepass",
    cls=GatepassGroup,
    no_args_is_help=True,
    add_completion=False,
)
app.command("serve")(serve)
app.command("demo")(demo)
app.command("proxy")(proxy)
app.add_typer(agents.app, name="agents")
app.add_typer(tasks.app, name="tasks")
app.add_typer(leases.app, name="leases")
app.add_typer(targets.app, name="targets")
app.add_typer(policy.app, name="policy")
app.add_typer(audit.app, name="audit")
app.add_typer(keys.app, name="keys")
app.add_typer(operators.app, name="operators")
app.add_typer(approvals.app, name="approvals")
app.add_typer(tokens.app, name="tokens")
app.add_typer(ssf.app, name="ssf")
app.add_typer(signals.app, name="signals")
app.command("whoami")(operators.whoami)
app.add_typer(evidence.app, name="evidence")
app.add_typer(report.app, name="report")
app.add_typer(console.app, name="console")


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"gatepass {__version__}")
        raise typer.Exit


@app.callback()
def _root(
    _version: bool = typer.Option(
        False,
        "--version",
        callback=_print_version,
        is_eager=True,
        help="print the version and exit",
    ),
) -> None:
    """
    Short-lived, context-bound credentials for AI agents.

    Commands that talk to a broker find it with --addr URL or --config FILE (the
    broker's configuration, which also names the state directory holding
    admin.token), else GATEPASS_ADDR or GATEPASS_CONFIG, else
    http://127.0.0.1:8400. The API token is GATEPASS_TOKEN (an operator's own
    token; `gatepass whoami` shows whose it is), else the admin.token file the
    broker wrote (GATEPASS_STATE_DIR moves it). The token is never printed.
    Every error exits with the code docs/cli.md lists.
    """
