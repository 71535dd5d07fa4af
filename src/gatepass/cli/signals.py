"""
``gatepass signals``: send context signals and list those in force.

``send risk AGENT high|medium|low`` sets an agent's risk (``low`` clears it),
``send freeze ENV`` freezes an environment, ``send incident TENANT`` declares an
incident for a tenant; ``--until`` (a duration such as ``30m`` or an ISO 8601 time)
ends one by itself and ``--clear`` ends it now. Each signal re-evaluates the live
tasks and leases it touches at once; the answer lists what it closed and revoked.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any, Final

import typer

from gatepass.cli.client import admin_client
from gatepass.cli.options import (
    ADDR_OPTION,
    CONFIG_OPTION,
    JSON_OPTION,
    OUTPUT_OPTION,
    WIDE_OPTION,
    Format,
    wants_json,
)
from gatepass.cli.output import print_json, print_record, print_table
from gatepass.cli.tables import Column
from gatepass.clock import SystemClock
from gatepass.errors import InvalidRequestError

__all__ = ["app", "parse_until"]

app = typer.Typer(
    help="Send context signals (risk, freeze, incident) and list them.",
    no_args_is_help=True,
)
send_app = typer.Typer(
    help="Send one signal; it re-evaluates what it touches at once.",
    no_args_is_help=True,
)
app.add_typer(send_app, name="send")

_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86_400}
_COLUMNS = [
    Column("kind", "kind", "word"),
    Column("scope", "scope", "id"),
    Column("value", "value", "word"),
    Column("source", "source", "text", drop=2),
    Column("until", "until", "time", drop=1),
    Column("set_at", "set", "time", wide=True),
    Column("reason", "reason", "text", drop=3),
]
_UNTIL_HELP = "end it by itself: a duration (30m, 2h, 1d) or an ISO 8601 time"
_REASON_HELP = "why, for the audit log"


def parse_until(value: str, now: dt.datetime) -> dt.datetime:
    """
    Read ``--until``: a duration from now, or a time with a zone.

    Raises:
        InvalidRequestError: it is neither.
    """
    found = _DURATION.match(value.strip())
    if found is not None:
        amount, unit = int(found.group(1)), found.group(2)
        try:
            return now + dt.timedelta(seconds=amount * _UNITS[unit])
        except OverflowError:
            raise InvalidRequestError("--until is too far away") from None
    try:
        moment = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise InvalidRequestError(
            "--until must be a duration such as 30m, 2h or 1d, or an ISO 8601 "
            "time with a zone such as 2026-01-06T18:00:00Z"
        )
    return moment


def _send(
    body: dict[str, Any],
    *,
    until: str | None,
    reason: str | None,
    output: Format,
    as_json: bool,
    addr: str | None,
    config: Path | None,
) -> None:
    if until is not None:
        body["until"] = parse_until(until, SystemClock().now()).isoformat()
    if reason is not None:
        body["reason"] = reason
    with admin_client(addr, config) as client:
        answer = client.post("/v1/signals", body)
    if wants_json(output, as_json):
        print_json(answer)
        return
    print_record(
        {
            "signals": len(answer.get("signals", [])),
            "closed_tasks": ", ".join(answer.get("closed_tasks", [])) or "none",
            "revoked_leases": ", ".join(answer.get("revoked_leases", [])) or "none",
        },
        title=f"signal {body['kind']} sent",
    )


@send_app.command("risk")
def send_risk(
    agent: str = typer.Argument(..., metavar="AGENT", help="the agent's name or id"),
    level: str = typer.Argument(
        ..., metavar="LEVEL", help="high, medium or low (low clears it)"
    ),
    until: str | None = typer.Option(None, "--until", help=_UNTIL_HELP),
    reason: str | None = typer.Option(None, "--reason", "-r", help=_REASON_HELP),
    output: Format = OUTPUT_OPTION,
    as_json: bool = JSON_OPTION,
    addr: str | None = ADDR_OPTION,
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Set an agent's risk level (policies see principal.risk)."""
    if level not in {"high", "medium", "low"}:
        raise InvalidRequestError("LEVEL must be high, medium or low")
    _send(
        {"kind": "risk", "agent": agent, "level": level},
        until=until,
        reason=reason,
        output=output,
        as_json=as_json,
        addr=addr,
        config=config,
    )


@send_app.command("freeze")
def send_freeze(
    environment: str = typer.Argument(..., metavar="ENV", help="the environment"),
    until: str | None = typer.Option(None, "--until", help=_UNTIL_HELP),
    clear: bool = typer.Option(False, "--clear", help="end the freeze now"),
    reason: str | None = typer.Option(None, "--reason", "-r", help=_REASON_HELP),
    output: Format = OUTPUT_OPTION,
    as_json: bool = JSON_OPTION,
    addr: str | None = ADDR_OPTION,
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Freeze an environment (policies see context.environment_frozen)."""
    _send(
        {"kind": "freeze", "environment": environment, "clear": clear},
        until=until,
        reason=reason,
        output=output,
        as_json=as_json,
        addr=addr,
        config=config,
    )


@send_app.command("incident")
def send_incident(
    tenant: str = typer.Argument(..., metavar="TENANT", help="the tenant"),
    until: str | None = typer.Option(None, "--until", help=_UNTIL_HELP),
    clear: bool = typer.Option(False, "--clear", help="end the incident now"),
    reason: str | None = typer.Option(None, "--reason", "-r", help=_REASON_HELP),
    output: Format = OUTPUT_OPTION,
    as_json: bool = JSON_OPTION,
    addr: str | None = ADDR_OPTION,
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Declare an incident for a tenant (policies see context.tenant_incident)."""
    _send(
        {"kind": "incident", "tenant": tenant, "clear": clear},
        until=until,
        reason=reason,
        output=output,
        as_json=as_json,
        addr=addr,
        config=config,
    )


@app.command("list")
def list_signals(
    output: Format = OUTPUT_OPTION,
    wide: bool = WIDE_OPTION,
    as_json: bool = JSON_OPTION,
    addr: str | None = ADDR_OPTION,
    config: Path | None = CONFIG_OPTION,
) -> None:
    """List the signals in force."""
    with admin_client(addr, config) as client:
        answer = client.get("/v1/signals")
    if wants_json(output, as_json):
        print_json(answer)
        return
    print_table(answer["signals"], _COLUMNS, wide=wide, empty="no signals in force")
