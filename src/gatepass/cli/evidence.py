"""
``gatepass evidence``: export a task's signed evidence bundle, verify one offline.

``verify`` never talks to a broker: it reads the file (and, better, the broker's
audit public key, ``--public-key``) and checks it with :mod:`gatepass.evidence`,
naming every problem it finds. Exit 65 when anything was removed, edited,
reordered, truncated or forged.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import typer
from rich.markup import escape

from gatepass.audit import load_public_keys
from gatepass.cli.client import admin_client
from gatepass.cli.options import ADDR_OPTION, CONFIG_OPTION
from gatepass.cli.output import stderr_console, stdout_console, terminal_safe
from gatepass.errors import AuditIntegrityError, InvalidRequestError, NotFoundError
from gatepass.evidence import inspect_bundle

__all__ = ["app"]

app = typer.Typer(
    help="Export and verify per-task evidence bundles.", no_args_is_help=True
)


def _write_atomically(output: Path, text: str) -> None:
    """Write beside ``output`` and rename, so a failed export leaves no file."""
    partial = output.with_name(output.name + ".partial")
    try:
        partial.write_text(text, encoding="utf-8")
        partial.replace(output)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


@app.command("export")
def export(
    task: str = typer.Argument(..., help="the task id (tsk_…); descendants included"),
    out: Path = typer.Option(
        ..., "--out", "-o", dir_okay=False, help="the bundle file to write"
    ),
    addr: str | None = ADDR_OPTION,
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Write the signed evidence bundle of a task and every task delegated from it."""
    with admin_client(addr, config) as client:
        bundle = client.get(f"/v1/admin/tasks/{quote(task, safe='')}/evidence")
    body = bundle.get("evidence", {})
    _write_atomically(out, json.dumps(bundle, ensure_ascii=False, indent=1) + "\n")
    stderr_console().print(
        escape(
            terminal_safe(
                f"wrote {out}: {len(body.get('tasks', []))} tasks, "
                f"{len(body.get('disclosed', []))} records, "
                f"{len(body.get('receipts', []))} revocation receipts"
            )
        )
    )


def _public_key(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidRequestError(f"{path}: cannot read a JWK") from exc
    if not isinstance(document, dict):
        raise InvalidRequestError(f"{path}: a JWK must be a JSON object")
    try:
        load_public_keys(document)
    except AuditIntegrityError as exc:
        raise InvalidRequestError(
            f"{path}: not an audit public key: {exc.detail}"
        ) from exc
    return document


@app.command("verify")
def verify(
    file: Path = typer.Argument(..., dir_okay=False, help="the bundle file"),
    public_key: Path | None = typer.Option(
        None,
        "--public-key",
        dir_okay=False,
        help="the broker's audit public key (JWK or JWK set) to trust instead of "
        "the bundle's own",
    ),
) -> None:
    """Verify a bundle offline; name every problem; exit 65 if there is any."""
    pinned = None if public_key is None else _public_key(public_key)
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise NotFoundError(f"{file}: cannot read the bundle") from exc
    report = inspect_bundle(raw, public_jwk=pinned)
    errors = stderr_console()
    if not report.pinned:
        errors.print(
            "note: trusting the key inside the bundle, which proves only that it is "
            "self-consistent; pass --public-key with the broker's audit key"
        )
    if report.problems:
        for problem in report.problems:
            errors.print(escape(terminal_safe(f"problem: {problem}")), soft_wrap=True)
        raise AuditIntegrityError(
            f"bundle failed verification: {len(report.problems)} problems"
        )
    out = stdout_console()
    out.print(
        escape(
            terminal_safe(
                f"bundle of task {report.task} verifies: {report.tasks} tasks, "
                f"{report.records} records, {report.links} hash-only links, "
                f"{report.checkpoints} signed checkpoints, signed by {report.kid}"
            )
        ),
        soft_wrap=True,
    )
    for target, status in report.receipts:
        out.print(
            escape(terminal_safe(f"revocation receipt {target}: {status}")),
            soft_wrap=True,
        )
