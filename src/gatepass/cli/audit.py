"""
``gatepass audit``: follow, export and verify the tamper-evident audit log.

Verification always runs here, with the audit package, never on the broker: a
broker whose database was rewritten cannot vouch for itself.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn

from gatepass.audit import (
    AuditRecord,
    Checkpoint,
    VerifyReport,
    export_lines,
    load_public_keys,
    verify_export,
    verify_log,
)
from gatepass.cli.client import AdminClient, admin_client, current_connector
from gatepass.cli.output import print_record, stderr_console, stdout_console
from gatepass.errors import AuditIntegrityError, InvalidRequestError

__all__ = ["app"]

app = typer.Typer(help="Follow, export and verify the audit log.", no_args_is_help=True)

_PAGE = 1000
_POLL_SECONDS = 1.0


def _event_pages(client: AdminClient, *, after: int) -> Iterator[list[dict[str, Any]]]:
    """Yield the events after ``after`` one page at a time, up to the current end."""
    while True:
        answer = client.get("/v1/audit/events", {"after": after, "limit": _PAGE})
        items: list[dict[str, Any]] = answer["items"]
        if items:
            yield items
            after = int(answer["next"])
        if len(items) < _PAGE:
            return


def _records(
    client: AdminClient, *, on_page: Callable[[int], None] | None = None
) -> Iterator[AuditRecord]:
    """Yield every record of the broker's log, in seq order."""
    for page in _event_pages(client, after=0):
        for event in page:
            yield AuditRecord.from_json(event)
        if on_page is not None:
            on_page(len(page))


def _anchors(client: AdminClient) -> tuple[list[Checkpoint], Mapping[str, Any]]:
    """Return the broker's checkpoints and its published audit key."""
    answer = client.get("/v1/audit/checkpoints")
    checkpoints = [Checkpoint.from_json(item) for item in answer["items"]]
    return checkpoints, answer["public_key"]


def _read_public_key(path: Path) -> Mapping[str, Any]:
    """Read an audit public key (a JWK or a JWK set) that the operator trusts."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidRequestError(f"{path}: cannot read a JWK: {exc}") from exc
    if not isinstance(document, dict):
        raise InvalidRequestError(f"{path}: a JWK must be a JSON object")
    try:
        load_public_keys(document)
    except AuditIntegrityError as exc:
        raise InvalidRequestError(
            f"{path}: not an audit public key: {exc.detail}"
        ) from exc
    return document


def _print_event(event: Mapping[str, Any]) -> None:
    typer.echo(json.dumps(event, ensure_ascii=False, separators=(",", ":")))


@app.command("tail")
def tail(
    after: int | None = typer.Option(
        None, "--after", min=0, help="start after this seq [default: the newest events]"
    ),
    limit: int = typer.Option(
        100,
        "--limit",
        "-n",
        min=1,
        max=1000,
        help="at most this many events (per poll with --follow)",
    ),
    follow: bool = typer.Option(
        False, "--follow", "-f", help="keep polling every second until Ctrl-C"
    ),
) -> None:
    """Print audit events as JSON lines."""
    wait = current_connector().wait
    with admin_client() as client:
        try:
            while True:
                query = (
                    {"last": limit}
                    if after is None
                    else {"after": after, "limit": limit}
                )
                answer = client.get("/v1/audit/events", query)
                for event in answer["items"]:
                    _print_event(event)
                after = int(answer["next"])
                if not follow:
                    return
                # A full page means more is waiting: fetch it without pausing.
                if len(answer["items"]) < limit:
                    wait(_POLL_SECONDS)
        except KeyboardInterrupt:
            # Ctrl-C is how --follow ends; it is not a failure.
            return


@app.command("export")
def export(
    output: Path | None = typer.Option(
        None,
        "--output",
        "-o",
        dir_okay=False,
        help="write here instead of standard output",
    ),
) -> None:
    """Export the whole log as self-verifying JSON lines (key, checkpoints, events)."""
    console = stderr_console()
    # The data may go to stdout, so the progress display must never capture it.
    progress = Progress(
        SpinnerColumn(),
        TextColumn("exporting audit events"),
        TextColumn("{task.completed} so far"),
        console=console,
        transient=True,
        redirect_stdout=False,
        redirect_stderr=False,
        # Off when stderr is not a terminal: logs get the summary line only.
        disable=not console.is_terminal,
    )
    with admin_client() as client, progress:
        counter = progress.add_task("export", total=None)

        def advance(count: int) -> None:
            progress.advance(counter, count)

        # Checkpoints first, then events: every checkpoint then lies within the
        # events that follow, however many are appended meanwhile.
        checkpoints, public_jwk = _anchors(client)
        lines = export_lines(
            _records(client, on_page=advance), checkpoints, public_jwk=public_jwk
        )
        if output is None:
            sys.stdout.writelines(lines)
            sys.stdout.flush()
            destination = "standard output"
        else:
            _write_atomically(output, lines)
            destination = str(output)
        exported = int(progress.tasks[0].completed)
    console.print(
        f"exported {exported} events and {len(checkpoints)} checkpoints "
        f"to {escape(destination)}"
    )


def _write_atomically(output: Path, lines: Iterable[str]) -> None:
    """Write beside ``output`` and rename, so a failed export leaves no file."""
    partial = output.with_name(output.name + ".partial")
    try:
        with partial.open("w", encoding="utf-8", newline="\n") as handle:
            handle.writelines(lines)
        partial.replace(output)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def _print_report(report: VerifyReport, source: str) -> None:
    stdout_console().print(f"audit log verified: {source}")
    print_record(
        {
            "events": report.events,
            "checkpoints": report.checkpoints,
            "last seq": report.last_seq,
            "last checkpoint seq": report.last_checkpoint_seq,
            "unanchored tail": report.unanchored_tail,
        }
    )


@app.command("verify")
def verify(
    file: Path | None = typer.Option(
        None,
        "--file",
        exists=True,
        dir_okay=False,
        help="verify this export instead of the broker's live log",
    ),
    public_key: Path | None = typer.Option(
        None,
        "--public-key",
        exists=True,
        dir_okay=False,
        help="the audit public key (JWK) to trust instead of the file's or broker's",
    ),
) -> None:
    """Verify the hash chain and the signed checkpoints; exit 65 on any tampering."""
    pinned = _read_public_key(public_key) if public_key is not None else None
    if file is not None:
        if pinned is None:
            stderr_console().print(
                "note: trusting the key inside the file, which proves only that the "
                "file is self-consistent; pass --public-key to pin the broker's key"
            )
        with file.open(encoding="utf-8") as handle:
            report = verify_export(handle, public_jwk=pinned)
        _print_report(report, str(file))
        return
    with admin_client() as client:
        checkpoints, published = _anchors(client)
        trusted = pinned if pinned is not None else published
        report = verify_log(_records(client), checkpoints, trusted)
        _print_report(report, client.address)
