"""
Schema 3's one-time step: MAC the audit records written before records had MACs.

A database upgraded in place from schema 2 holds records without a MAC. They are
MACed once, at the first start after the upgrade, and only after their hash chain
verified against the signed checkpoints: a record forged before the upgrade is
never blessed with the key. Records written without a MAC after the upgrade never
get one (``store.audit_log.unkeyed_through`` marks the boundary).
"""

from __future__ import annotations

from collections.abc import Iterator

from gatepass.audit import (
    AuditEntry,
    AuditMac,
    AuditRecord,
    AuditSigner,
    Outcome,
    verify_log,
)
from gatepass.broker.context import BrokerContext
from gatepass.broker.seal import Seal
from gatepass.errors import AuditIntegrityError
from gatepass.observability import get_logger
from gatepass.store import audit_log

__all__ = ["key_legacy_records"]

_log = get_logger("gatepass.audit")


def key_legacy_records(
    context: BrokerContext, *, signer: AuditSigner, mac: AuditMac, seal: Seal
) -> None:
    """
    MAC the records written before schema 3, once their chain verified.

    A chain that does not verify raises the integrity alarm instead (nothing is
    MACed).
    """
    database = context.database
    with database.reading() as conn:
        first = audit_log.first_unkeyed_seq(conn)
        through = audit_log.unkeyed_through(conn)
    if first is None or first > through:
        return
    keyed: list[tuple[int, str]] = []

    def collect(records: Iterator[AuditRecord]) -> Iterator[AuditRecord]:
        for record in records:
            if record.mac is None:
                keyed.append((record.seq, mac.record_mac(record.hash)))
            yield record

    try:
        with database.transaction() as conn:
            checkpoints = audit_log.list_checkpoints(conn, through=through)
            report = verify_log(
                collect(audit_log.iter_audit(conn, through=through)),
                checkpoints,
                signer.public_jwk,
                allow_unanchored=True,
            )
            audit_log.set_macs(conn, keyed)
            audit_log.append_audit(
                conn,
                AuditEntry(
                    at=context.clock.now(),
                    kind="audit.migrate",
                    outcome=Outcome.OK,
                    actor="system",
                    data={"keyed": len(keyed), "unanchored": report.unanchored_tail},
                ),
            )
    except AuditIntegrityError as error:
        seal.raise_alarm(f"schema 3 migration: {error.detail}")
        return
    _log.info(
        "audit records keyed", count=len(keyed), unanchored=report.unanchored_tail
    )
