"""
``gatepass demo --approval``: a production write that waits for a named human.

The demo agent opens a task on the production tickets target and asks for a write
token. Policy says ``NeedsApproval`` (the quickstart's ``prod-writes-need-approval``:
one vote of ``prod-approvers``, a 60 s token), so the tour prints the approval id
and the command an approver runs, and waits. Once approved it shows the 60 s token,
then repeats the redemption with the spent approval, which the broker refuses,
and closes the task. No token is ever printed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import httpx
from rich.console import Console
from rich.markup import escape

from gatepass.clock import Clock, SystemClock
from gatepass.clock import sleep as pause
from gatepass.config import Settings
from gatepass.errors import GatepassError, InvalidGrantError
from gatepass.sdk import AgentIdentity, ApprovalProgress, GatepassClient
from gatepass.sdk.approvals import ApprovalParameters

__all__ = ["run_approval_tour"]

_JUSTIFICATION = "close ticket PROD-42 after the customer confirmed the fix"


def _minutes(left: dt.timedelta) -> str:
    """``14m 59s``: how long an approval may still wait, for people."""
    seconds = max(int(left.total_seconds()), 0)
    minutes, seconds = divmod(seconds, 60)
    return f"{minutes}m {seconds:02d}s" if minutes else f"{seconds}s"


def run_approval_tour(
    settings: Settings,
    *,
    wait: dt.timedelta = dt.timedelta(minutes=10),
    console: Console | None = None,
    http: httpx.Client | None = None,
    clock: Clock | None = None,
    sleep: Callable[[float], None] = pause,
) -> None:
    """
    Ask for a production write, wait for an approver, redeem it once.

    Args:
        settings: the broker's settings (``gatepass serve`` must run).
        wait: how long to wait for the approver.
        console: where to print; standard output when omitted.
        http: the HTTP client for the broker.
        clock: the time source.
        sleep: how to pause between polls (tests pass their own).

    Raises:
        GatepassError: a step failed (denied, expired, or off script).
    """
    out = console or Console()
    target = next(
        (t for t in settings.targets if t.name == settings.demo.approval_target), None
    )
    if target is None:
        raise GatepassError(
            f"no target {settings.demo.approval_target!r} in the configuration"
        )
    identity = AgentIdentity.load(settings.server.state_dir / "demo-agent.json")
    time = clock or SystemClock()
    client_http = http or httpx.Client(timeout=10.0, follow_redirects=False)
    told: list[str] = []

    def progress(update: ApprovalProgress) -> None:
        if not told:
            told.append(update.approval_id)
            out.print(
                f"   waiting for approval [bold]{escape(update.approval_id)}[/] "
                f"(expires in {_minutes(update.expires_in)}). As an approver, run:\n"
                f"   gatepass approvals show {escape(update.approval_id)}\n"
                f"   gatepass approvals approve {escape(update.approval_id)} "
                '--reason "CHG-1234"'
            )

    try:
        with GatepassClient(
            identity,
            settings.server.issuer,
            http=client_http,
            clock=time,
            sleep=sleep,
        ) as client:
            out.print(
                f"\n[bold]1.[/] Open a task on {escape(target.name)} "
                f"({escape(target.environment)})"
            )
            with client.open_task(
                intent="close a production ticket",
                purpose="support-triage",
                environment=target.environment,
                tenant=target.tenant,
                targets=[target.name],
            ) as task:
                out.print(f"   task {escape(task.id)}")
                out.print(
                    "\n[bold]2.[/] Ask for a write token: policy says a human "
                    "of prod-approvers must approve first"
                )
                token = task.access_token(
                    target.name,
                    "write",
                    wait=wait,
                    justification=_JUSTIFICATION,
                    on_progress=progress,
                )
                left = int((token.expires_at - time.now()).total_seconds())
                out.print(
                    f"   [green]✓[/] approved: lease {escape(token.lease_id)}, "
                    f"scope {token.scope!r}, expires in ~{left}s"
                )
                out.print("\n[bold]3.[/] Redeem the same approval a second time")
                try:
                    # The SDK never repeats a redeemed approval; the tour does, to
                    # show the broker's answer.
                    task._request_access_token(  # noqa: SLF001 - the demo's point
                        target.name,
                        ("write",),
                        ApprovalParameters(approval_id=told[0] if told else None),
                    )
                except InvalidGrantError as error:
                    out.print(
                        f"   [green]✓[/] refused: {escape(error.code)}: "
                        f"{escape(error.detail)}"
                    )
                else:
                    raise GatepassError("a second redemption was not refused")
                out.print("\n[bold]4.[/] Close the task")
        out.print("   the broker revoked the 60 s token with the task")
    finally:
        if http is None:
            client_http.close()
    out.print("\n[bold green]Approval tour complete.[/]")
