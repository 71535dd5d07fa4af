"""
Evidence bundles: what a hash-only link costs to make and to check.

In process, no broker: a synthetic log of realistic records (about 590 bytes of
canonical JSON, like a ``credential.issue``), checkpointed every 1,000 records
(10 s of a broker writing 100 records/s), and one task with 20 records spread
over it. The bundle chains from each disclosed record to the next checkpoint, so
most of it is links through other tasks' records. Measured, median of 3:

1. building the bundle (``assemble``: the broker's pure-Python SHA-256 midstates)
   and signing it;
2. verifying it (``verify_bundle``).

Aims: at most 2 ms per link to build and 1 ms per link to verify, so a bundle
through one busy checkpoint interval (1,000 links) is exported in about 2 s and
verified in about 1 s. Writes ``bench/results/evidence.json``.
"""

from __future__ import annotations

import datetime as dt
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from rich.console import Console
from rich.table import Table

from gatepass.audit import AuditEntry, AuditRecord, AuditSigner, canonical_bytes, chain
from gatepass.evidence import SIGNING_PREFIX, assemble, verify_bundle

RESULTS = Path(__file__).resolve().parent / "results" / "evidence.json"
RECORDS = 10_000
CHECKPOINT_EVERY = 1_000
DISCLOSED_EVERY = 500
ROUNDS = 3
AIM_BUILD_US = 2_000
AIM_VERIFY_US = 1_000
START = dt.datetime(2026, 1, 6, 10, 0, tzinfo=dt.UTC)


def _log() -> list[AuditRecord]:
    records: list[AuditRecord] = []
    previous = None
    for index in range(RECORDS):
        subject = "tsk_bench" if index % DISCLOSED_EVERY == 7 else f"tsk_{index:026d}"
        entry = AuditEntry(
            at=START + dt.timedelta(milliseconds=10 * index),
            kind="credential.issue",
            outcome="allow",
            actor="agt_" + "a" * 26,
            subject=subject,
            data={
                "task_id": subject,
                "target": "tickets",
                "actions": ["read"],
                "policy_ids": ["tenant-read"],
                "policy_digest": "d" * 64,
                "lease_id": f"lse_{index:026d}",
                "ttl_seconds": 300,
            },
        )
        previous = chain(previous, entry)
        records.append(previous)
    return records


def _bundle(records: list[AuditRecord], signer: AuditSigner) -> bytes:
    checkpoints = [
        signer.sign(r.seq, r.hash, START)
        for r in records
        if r.seq % CHECKPOINT_EVERY == 0
    ]
    body = assemble(
        issuer="https://broker.example",
        task="tsk_bench",
        tenant="acme",
        tasks=[],
        leases=[],
        disclosed=[r for r in records if r.subject == "tsk_bench"],
        checkpoints=checkpoints,
        read=lambda after, through: records[after:through],
        audit_keys={"keys": [signer.public_jwk]},
        exported_at=START,
        receipts=False,
    )
    value = signer.sign_statement(SIGNING_PREFIX, canonical_bytes(body))
    document = {
        "evidence": body,
        "signature": {"alg": "EdDSA", "kid": signer.kid, "value": value},
    }
    return json.dumps(document).encode()


def main() -> int:
    """Measure, print the aims table, write the results."""
    console = Console()
    records = _log()
    signer = AuditSigner(Ed25519PrivateKey.generate())
    builds, verifies = [], []
    raw = b""
    for _ in range(ROUNDS):
        started = time.perf_counter()
        raw = _bundle(records, signer)
        builds.append(time.perf_counter() - started)
        started = time.perf_counter()
        report = verify_bundle(raw, public_jwk=signer.public_jwk)
        verifies.append(time.perf_counter() - started)
    links = report.links
    build_us = statistics.median(builds) / links * 1e6
    verify_us = statistics.median(verifies) / links * 1e6
    aims = [
        ("build, per link", build_us, AIM_BUILD_US),
        ("verify, per link", verify_us, AIM_VERIFY_US),
    ]
    size = len(raw) // 1024
    table = Table(title=f"bundle: {report.records} records, {links} links, {size} KiB")
    for column in ("measure", "µs", "aim µs", "verdict"):
        table.add_column(column)
    for name, measured, aim in aims:
        verdict = "PASS" if measured <= aim else "MISS"
        table.add_row(name, f"{measured:,.0f}", f"{aim:,}", verdict)
    console.print(table)
    console.print(
        f"whole bundle: build {statistics.median(builds):.2f} s, "
        f"verify {statistics.median(verifies):.2f} s (median of {ROUNDS})"
    )
    result: dict[str, Any] = {
        "machine": {"python": platform.python_version(), "cpus": 2},
        "records": report.records,
        "links": links,
        "bundle_bytes": len(raw),
        "build_seconds": builds,
        "verify_seconds": verifies,
        "aims": [
            {
                "name": n,
                "measured_us": round(m),
                "aim_us": a,
                "verdict": "PASS" if m <= a else "MISS",
            }
            for n, m, a in aims
        ],
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
