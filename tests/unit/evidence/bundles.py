"""A synthetic signed log and the bundle of one task in it, built without a broker."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gatepass.audit import AuditEntry, AuditRecord, AuditSigner, canonical_bytes, chain
from gatepass.evidence import SIGNING_PREFIX, assemble

START = dt.datetime(2026, 1, 6, 10, 0, tzinfo=dt.UTC)
TASK = "tsk_root"
LEASE = "lse_pg"
OTHER = "tsk_other"


def _entry(index: int, kind: str, subject: str, data: dict[str, Any]) -> AuditEntry:
    return AuditEntry(
        at=START + dt.timedelta(seconds=index),
        kind=kind,
        outcome="ok",
        actor="agt_demo",
        subject=subject,
        data=data,
    )


def story() -> list[AuditEntry]:
    """The task's life, with another task's records between its own."""
    return [
        _entry(0, "task.open", OTHER, {"intent": "payroll secrets"}),
        _entry(1, "task.open", TASK, {"intent": "reconcile", "policy_digest": "d1"}),
        _entry(2, "credential.issue", OTHER, {"target": "hr", "policy_digest": "d1"}),
        _entry(3, "credential.intent", LEASE, {"task_id": TASK, "target": "ledger"}),
        _entry(4, "credential.issue", TASK, {"lease_id": LEASE, "target": "ledger"}),
        _entry(5, "approval.request", "apr_other", {"task_id": OTHER, "é": "ü"}),
        _entry(6, "task.close", TASK, {"reason": "done", "revoked_leases": [LEASE]}),
        _entry(7, "proxy.call", OTHER, {"path": "/salaries", "status": 200}),
        _entry(8, "lease.revoked", LEASE, {"target": "ledger", "kind": "postgres"}),
        _entry(9, "task.close", OTHER, {"reason": "done", "revoked_leases": []}),
    ]


@dataclass
class Built:
    """A log, its signer, and the bundle of TASK as bytes."""

    records: list[AuditRecord]
    signer: AuditSigner
    raw: bytes

    @property
    def document(self) -> dict[str, Any]:
        """A fresh decoded copy of the bundle."""
        decoded: dict[str, Any] = json.loads(self.raw)
        return decoded

    @property
    def jwk(self) -> dict[str, str]:
        """The audit public key."""
        return self.signer.public_jwk


def sign(document: dict[str, Any], signer: AuditSigner) -> bytes:
    """Re-sign a bundle's evidence (what a forger holding a key would do)."""
    body = document["evidence"]
    value = signer.sign_statement(SIGNING_PREFIX, canonical_bytes(body))
    document["signature"] = {"alg": "EdDSA", "kid": signer.kid, "value": value}
    return json.dumps(document).encode()


def build(checkpoint_at: tuple[int, ...] = (5, 10)) -> Built:
    """Chain the story, checkpoint it, and bundle TASK."""
    signer = AuditSigner(Ed25519PrivateKey.generate())
    records: list[AuditRecord] = []
    previous = None
    for entry in story():
        previous = chain(previous, entry)
        records.append(previous)
    checkpoints = [
        signer.sign(r.seq, r.hash, START + dt.timedelta(minutes=1))
        for r in records
        if r.seq in checkpoint_at
    ]
    disclosed = [
        r
        for r in records
        if r.subject in {TASK, LEASE} or r.data.get("task_id") == TASK
    ]
    lease = {
        "id": LEASE,
        "task_id": TASK,
        "target": "ledger",
        "kind": "postgres",
        "state": "revoked",
        "issued_at": "2026-01-06T10:00:04.000000Z",
        "expires_at": "2026-01-06T10:10:04.000000Z",
        "revoked_at": "2026-01-06T10:00:08.000000Z",
        "attempts": 0,
        "last_error": None,
    }
    body = assemble(
        issuer="https://broker.example",
        task=TASK,
        tenant="acme",
        tasks=[{"id": TASK, "state": "closed"}],
        leases=[lease],
        disclosed=disclosed,
        checkpoints=checkpoints,
        read=lambda after, through: [r for r in records if after < r.seq <= through],
        audit_keys={"keys": [signer.public_jwk]},
        exported_at=START + dt.timedelta(minutes=2),
        receipts=True,
    )
    raw = sign({"evidence": body}, signer)
    return Built(records=records, signer=signer, raw=raw)
