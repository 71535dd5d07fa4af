"""
The ``gatepass`` command line.

One module per noun; each talks to the admin API through ``GATEPASS_ADDR`` and
``GATEPASS_TOKEN`` (falling back to the quickstart's ``.gatepass/admin.token``),
except ``serve`` and the local ``policy validate|test`` and ``audit verify --file``.
Errors from any command end in :class:`~gatepass.cli.output.GatepassGroup`, which
prints ``gatepass: <detail>`` and exits with the error's exit code.
"""

from __future__ import annotations

import typer

from gatepass.cli import (
    agents,
    approvals,
    audit,
    keys,
    leases,
    operators,
    policy,
    targets,
    tasks,
    tokens,
)
from gatepass.cli.demo import demo
from gatepass.cli.output import GatepassGroup
from gatepass.cli.proxy import proxy
from gatepass.cli.serve import serve

__all__ = ["app", "main"]

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
app.command("whoami")(operators.whoami)


@app.callback()
def _root() -> None:
    """
    Short-lived, context-bound credentials for AI agents.

    Commands that talk to a broker use GATEPASS_ADDR (default
    http://127.0.0.1:8400) and the API token in GATEPASS_TOKEN (an operator's
    own token; `gatepass whoami` shows whose it is). When
    GATEPASS_TOKEN is unset, the token is read from .gatepass/admin.token, which
    the quickstart (`make run`) writes; GATEPASS_STATE_DIR changes that directory.
    The token is never printed.
    """


def main() -> None:
    """Run the command line."""
    app()
