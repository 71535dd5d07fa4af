"""
``gatepass audit``: follow, export, verify and reconcile the audit log.

Verification always runs here, with the audit package, never on the broker: a
broker whose database was rewritten cannot vouch for itself. ``export`` and
``verify`` first ask the broker for a checkpoint over its head (the broker checks
every record's MAC before it signs), then read the events up to that checkpoint,
so nothing they verify is unanchored. ``verify`` also compares the log with the
anchor journal (``--anchors``; by default the state directory's), which catches a
database restored from an old snapshot: its chain is intact, but it is behind what
the broker had already committed.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn

from gatepass.audit import (
    JOURNAL_FILE,
    ROLLBACK_KIND,
    AuditRecord,
    Checkpoint,
    Journal,
    VerifyReport,
    compare,
    export_lines,
    load_public_keys,
    read_export,
    read_journal,
    verify_log,
)
from gatepass.cli.audit_tail import tail
from gatepass.cli.client import AdminClient, admin_client, locate
from gatepass.cli.options import (
    ADDR_OPTION,
    CONFIG_OPTION,
    JSON_OPTION,
    OUTPUT_OPTION,
    Format,
    wants_json,
)
from gatepass.cli.output import (
    print_json,
    print_record,
    stderr_console,
    stdout_console,
)
from gatepass.errors import AuditIntegrityError, InvalidRequestError, NotFoundError

__all__ = ["app"]

app = typer.Typer(
    help="Follow, export, verify and reconcile the audit log.", no_args_is_help=True
)

_PAGE = 1000


def _event_pages(
    client: AdminClient, *, after: int, through: int | None = None
) -> Iterator[list[dict[str, Any]]]:
    """Yield the events after ``after`` (up to ``through``), a page at a time."""
    while through is None or after < through:
        answer = client.get("/v1/audit/events", {"after": after, "limit": _PAGE})
        items: list[dict[str, Any]] = answer["items"]
        if through is not None:
            items = [item for item in items if int(item["seq"]) <= through]
        if items:
            yield items
            after = int(items[-1]["seq"])
        if len(answer["items"]) < _PAGE or len(items) < len(answer["items"]):
            return


def _records(
    client: AdminClient,
    *,
    through: int | None = None,
    on_page: Callable[[int], None] | None = None,
) -> Iterator[AuditRecord]:
    """Yield the records of the broker's log in seq order, up to ``through``."""
    for page in _event_pages(client, after=0, through=through):
        for event in page:
            yield AuditRecord.from_json(event)
        if on_page is not None:
            on_page(len(page))


def _anchored(
    client: AdminClient,
) -> tuple[Checkpoint | None, list[Checkpoint], Mapping[str, Any]]:
    """
    Ask for a checkpoint over the head now, then return every checkpoint up to it.

    Returns:
        The fresh checkpoint (None for an empty log), the checkpoints it ends, and
        the broker's published audit key.
    """
    answer = client.post("/v1/audit/checkpoints")
    fresh = answer.get("checkpoint")
    head = None if fresh is None else Checkpoint.from_json(fresh)
    listed = client.get("/v1/audit/checkpoints")
    checkpoints = [Checkpoint.from_json(item) for item in listed["items"]]
    if head is not None:
        # Later ones (the background job runs meanwhile) lie past what is read.
        checkpoints = [c for c in checkpoints if c.seq <= head.seq]
    return head, checkpoints, listed["public_key"]


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


app.command("tail")(tail)


@app.command("export")
def export(
    output: Path | None = typer.Option(
        None,
        "--output",
        "-o",
        dir_okay=False,
        help="write here instead of standard output",
    ),
    addr: str | None = ADDR_OPTION,
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Export the log as self-verifying JSON lines, ending at a fresh checkpoint."""
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
    with admin_client(addr, config) as client, progress:
        counter = progress.add_task("export", total=None)

        def advance(count: int) -> None:
            progress.advance(counter, count)

        head, checkpoints, public_jwk = _anchored(client)
        through = 0 if head is None else head.seq
        lines = export_lines(
            _records(client, through=through, on_page=advance),
            checkpoints,
            public_jwk=public_jwk,
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


class _ObservedChain:
    """The verified records as :func:`gatepass.audit.compare` needs to see them."""

    def __init__(self, wanted: Collection[int]) -> None:
        self._wanted = set(wanted)
        self._hashes: dict[int, str] = {}
        self._rollbacks: list[Mapping[str, Any]] = []
        self._head: tuple[int, str] = (0, "")

    def watch(self, records: Iterable[AuditRecord]) -> Iterator[AuditRecord]:
        for record in records:
            if record.seq in self._wanted:
                self._hashes[record.seq] = record.hash
            if record.kind == ROLLBACK_KIND:
                self._rollbacks.append(dict(record.data))
            self._head = (record.seq, record.hash)
            yield record

    def head(self) -> tuple[int, str]:
        return self._head

    def hashes(self, seqs: Collection[int]) -> Mapping[int, str]:
        return {seq: self._hashes[seq] for seq in seqs if seq in self._hashes}

    def rollbacks(self) -> Sequence[Mapping[str, Any]]:
        return self._rollbacks

    def still_live(self, kind: str, ids: Collection[str]) -> Collection[str]:
        # Rows are not part of the log; the broker checks endings at start-up.
        del kind, ids
        return ()


def _journal(anchors: Path | None, state: Path) -> tuple[Journal | None, str | None]:
    """Read the journal to compare with, and say which one (or why none)."""
    if anchors is None:
        default = state / JOURNAL_FILE
        if not default.exists():
            return None, (
                f"note: no anchor journal at {default}; the log was not compared "
                "with one (pass --anchors FILE from the broker's state directory)"
            )
        anchors = default
    try:
        return read_journal(anchors), None
    except OSError as exc:
        raise NotFoundError(f"{anchors}: cannot read the anchor journal") from exc


def _check_journal(
    journal: Journal, observed: _ObservedChain, final: Checkpoint | None
) -> None:
    comparison = compare(
        journal,
        observed,
        require_segments=True,
        as_of=None if final is None else final.at,
    )
    if comparison.problem is not None:
        where = journal.segments[0].path if journal.segments else "the anchor journal"
        raise AuditIntegrityError(f"{comparison.problem} (compared with {where})")


def _print_report(report: VerifyReport, source: str, journal: Journal | None) -> None:
    stdout_console().print(f"audit log verified: {escape(source)}")
    fields: dict[str, object] = {
        "events": report.events,
        "checkpoints": report.checkpoints,
        "last seq": report.last_seq,
        "last checkpoint seq": report.last_checkpoint_seq,
        "unanchored tail": report.unanchored_tail,
    }
    if journal is not None and journal.segments:
        fields["anchor journal"] = str(journal.segments[0].path)
        fields["journal segments"] = len(journal.segments)
    print_record(fields)


def _binary_lines(file: Path) -> Iterator[bytes]:
    try:
        with file.open("rb") as handle:
            yield from handle
    except OSError as exc:
        raise NotFoundError(f"{file}: cannot read the export") from exc


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
    anchors: Path | None = typer.Option(
        None,
        "--anchors",
        dir_okay=False,
        help="the broker's anchor journal (default: audit-checkpoints.jsonl in "
        "the broker's state directory, from --config or GATEPASS_STATE_DIR, when "
        "it exists)",
    ),
    addr: str | None = ADDR_OPTION,
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Verify chain, checkpoints and anchor journal; exit 65 on any tampering."""
    pinned = _read_public_key(public_key) if public_key is not None else None
    journal, note = _journal(anchors, locate(addr, config).state_dir)
    if note is not None:
        stderr_console().print(escape(note))
    observed = _ObservedChain(set() if journal is None else journal.seqs())
    if file is not None:
        if pinned is None:
            stderr_console().print(
                "note: trusting the key inside the file, which proves only that the "
                "file is self-consistent; pass --public-key to pin the broker's key"
            )
        export = read_export(_binary_lines(file))
        trusted = export.public_jwk
        if pinned is not None:
            claimed, expected = load_public_keys(trusted), load_public_keys(pinned)
            if not set(claimed) <= set(expected):
                raise AuditIntegrityError(
                    "export's audit_public_key is not the expected audit key"
                )
            trusted = pinned
        report = verify_log(
            observed.watch(export.records),
            export.checkpoints,
            trusted,
            start_after=export.start_after,
        )
        final = export.checkpoints[-1] if export.checkpoints else None
        if journal is not None:
            _check_journal(journal, observed, final)
        _print_report(report, str(file), journal)
        return
    with admin_client(addr, config) as client:
        head, checkpoints, published = _anchored(client)
        trusted = pinned if pinned is not None else published
        through = 0 if head is None else head.seq
        report = verify_log(
            observed.watch(_records(client, through=through)), checkpoints, trusted
        )
        if journal is not None:
            _check_journal(journal, observed, head)
        _print_report(report, client.address, journal)


@app.command("reconcile")
def reconcile(
    output: Format = OUTPUT_OPTION,
    as_json: bool = JSON_OPTION,
    addr: str | None = ADDR_OPTION,
    config: Path | None = CONFIG_OPTION,
) -> None:
    """
    Reconcile a sealed broker with its anchor journal, then unseal it.

    Re-applies every ending the journal holds and the database lacks, reaps
    engine credentials no live lease accounts for, records an audit.rollback
    naming the lost range, starts a new journal segment and checkpoints.
    """
    with admin_client(addr, config) as client:
        answer = client.post("/v1/audit/reconcile")
    if wants_json(output, as_json):
        print_json(answer)
        return
    if not answer.get("reconciled"):
        stdout_console().print(
            "nothing to reconcile: the database agrees with the journal"
        )
        return
    reapplied = answer.get("reapplied", {})
    print_record(
        {
            "found": answer.get("problem"),
            "database head": answer.get("database_head"),
            "journal head": answer.get("journal_head"),
            "re-applied": reapplied,
            "reaped": answer.get("reaped", {}),
            "closed segments": [s.get("file") for s in answer.get("segments", [])],
        },
        title="reconciled; the broker issues again",
    )
