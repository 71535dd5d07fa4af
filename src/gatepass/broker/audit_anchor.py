"""
Anchoring the audit log: keyed checkpoints, the start-up comparison, and reconcile.

* **Checkpoints.** Before the broker signs a checkpoint it verifies the chain and
  the MAC of every record since the previous one; one that fails raises the
  integrity alarm (error log, metric, ``/readyz`` 503 ``audit_integrity``, an audit
  record) and nothing is signed, so a forged record never gets the audit key's
  signature. Checkpoints are written to the database and to the anchor journal.
* **Start-up.** The database is compared with the journal (``gatepass.audit.compare``);
  any disagreement seals the broker (``broker/seal.py``).
* **Reconcile.** ``gatepass audit reconcile`` re-applies every ending the journal
  holds and the database lacks, closes the journal segment (kept, renamed),
  records an ``audit.rollback`` naming the lost range and that segment's SHA-256,
  reaps engine credentials no live lease accounts for, checkpoints and unseals.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from typing import Any, Final

import anyio
from sqlalchemy import Connection

from gatepass.audit import (
    ROLLBACK_KIND,
    AnchorJournal,
    AuditEntry,
    AuditMac,
    AuditRecord,
    AuditSigner,
    Checkpoint,
    Comparison,
    compare,
    load_public_keys,
    read_journal,
    verify_checkpoint,
    verify_log,
)
from gatepass.broker.core import BrokerCore
from gatepass.broker.revocations import RevocationWorker
from gatepass.broker.seal import Seal
from gatepass.errors import AuditIntegrityError
from gatepass.models import AgentStatus
from gatepass.observability import get_logger
from gatepass.store import agents as agent_rows
from gatepass.store import audit_log, keys
from gatepass.store import leases as lease_rows
from gatepass.store import tasks as task_rows
from gatepass.store.anchors import SqlChainView
from gatepass.store.tables import UNKEYED_THROUGH

__all__ = ["AuditAnchoring"]

_log = get_logger("gatepass.audit")
_LISTED: Final = 100  # ids named in an audit record; the counts cover the rest


def _listed(ids: set[str]) -> list[str]:
    return sorted(ids)[:_LISTED]


_REASON: Final = "ended per the audit anchor journal (reconcile)"


def _end_task(conn: Connection, task_id: str, now: dt.datetime) -> bool:
    closed = task_rows.close_task(conn, task_id, now=now, reason=_REASON)
    # The journal says the task ended, so none of its leases may stay live.
    lease_rows.revoke_task_leases(conn, task_id, now)
    return closed


def _reapply_endings(
    conn: Connection, ended: Mapping[str, frozenset[str]], now: dt.datetime
) -> dict[str, list[str]]:
    """End, in one transaction, everything the journal ended and the rows lack."""
    done: dict[str, list[str]] = {"tasks": [], "leases": [], "agents": []}
    for agent_id in sorted(ended.get("agents", ())):
        if agent_rows.set_agent_status(conn, agent_id, AgentStatus.DISABLED, now):
            done["agents"].append(agent_id)
            for open_task in task_rows.open_task_ids_of_agent(conn, agent_id):
                _end_task(conn, open_task, now)
    done["tasks"] = [
        task_id
        for task_id in sorted(ended.get("tasks", ()))
        if _end_task(conn, task_id, now)
    ]
    done["leases"] = [
        lease_id
        for lease_id in sorted(ended.get("leases", ()))
        if lease_rows.revoke_lease(conn, lease_id, now)
    ]
    return done


class AuditAnchoring:
    """
    Keep the audit log anchored outside the database.

    Args:
        broker: the broker whose store, clock and seal these are.
        signer: the audit key.
        mac: the record and journal MAC keys derived from it.
        journal: the anchor journal.
        revocations: drives revocations and reaps engine orphans.
    """

    def __init__(
        self,
        broker: BrokerCore,
        *,
        signer: AuditSigner,
        mac: AuditMac,
        journal: AnchorJournal,
        revocations: RevocationWorker,
    ) -> None:
        """Keep the collaborators."""
        self.broker = broker
        self.signer = signer
        self.mac = mac
        self.journal = journal
        self._revocations = revocations
        self._keys = load_public_keys(signer.public_jwk)
        self._verified: tuple[int, str] | None = None
        self._lock = anyio.Lock()

    @property
    def seal(self) -> Seal:
        """The broker's seal."""
        return self.broker.seal

    def _entry(
        self, kind: str, outcome: str, actor: str, data: dict[str, Any]
    ) -> AuditEntry:
        return AuditEntry(
            at=self.broker.clock.now(),
            kind=kind,
            outcome=outcome,
            actor=actor,
            data=data,
        )

    # ------------------------------------------------------------- start-up

    def start(self) -> Comparison:
        """
        Run the start-up checks, sealing or alarming on what they find.

        MAC the records of a database upgraded from schema 2 (once, after their
        chain verified), open the journal, compare the database with it, and
        verify the MACs of the records since the last checkpoint.

        Returns:
            The comparison with the journal.
        """
        self._key_legacy_records()
        try:
            self.journal.open()
        except OSError as error:
            self.seal.journal_failed(f"cannot open it: {type(error).__name__}")
        comparison = self.compare()
        if not comparison.agrees:
            self.seal.close(str(comparison.problem), ended=comparison.ended_live)
            self._record_sync("audit.sealed", "error", {"reason": comparison.problem})
        try:
            with self.broker.database.reading() as conn:
                self._verify_tail(conn, through=SqlChainView(conn).head()[0])
        except AuditIntegrityError as error:
            self.seal.raise_alarm(error.detail)
            self._record_sync("audit.integrity", "error", {"detail": error.detail})
        return comparison

    def _record_sync(self, kind: str, outcome: str, data: dict[str, Any]) -> None:
        entry = self._entry(kind, outcome, "system", data)
        with self.broker.database.transaction() as conn:
            audit_log.append_audit(conn, entry)

    def compare(self) -> Comparison:
        """
        Compare the database with the journal now.

        Returns:
            The comparison; a journal that cannot be read or holds a forged line
            is reported as a disagreement.
        """
        try:
            journal = read_journal(self.journal.path, mac=self.mac)
        except (AuditIntegrityError, OSError) as error:
            detail = getattr(error, "detail", type(error).__name__)
            with self.broker.database.reading() as conn:
                head = SqlChainView(conn).head()[0]
            return Comparison(
                problem=f"the anchor journal cannot be trusted: {detail}",
                database_head=head,
                journal_head=0,
            )
        if journal.missing is not None:
            _log.warning("anchor journal segment missing", segment=journal.missing)
        with self.broker.database.reading() as conn:
            return compare(journal, SqlChainView(conn))

    def _key_legacy_records(self) -> None:
        """MAC the records written before schema 3, once their chain verified."""
        database = self.broker.database
        with database.reading() as conn:
            first = audit_log.first_unkeyed_seq(conn)
            raw = keys.read_setting(conn, UNKEYED_THROUGH)
        through = int(raw) if raw else 0
        if first is None or first > through:
            return
        keyed: list[tuple[int, str]] = []

        def collect(records: Iterator[AuditRecord]) -> Iterator[AuditRecord]:
            for record in records:
                if record.mac is None:
                    keyed.append((record.seq, self.mac.record_mac(record.hash)))
                yield record

        try:
            with database.transaction() as conn:
                checkpoints = audit_log.list_checkpoints(conn, through=through)
                report = verify_log(
                    collect(audit_log.iter_audit(conn, through=through)),
                    checkpoints,
                    self.signer.public_jwk,
                    allow_unanchored=True,
                )
                audit_log.set_macs(conn, keyed)
                audit_log.append_audit(
                    conn,
                    self._entry(
                        "audit.migrate",
                        "ok",
                        "system",
                        {"keyed": len(keyed), "unanchored": report.unanchored_tail},
                    ),
                )
        except AuditIntegrityError as error:
            self.seal.raise_alarm(f"schema 3 migration: {error.detail}")
            return
        _log.info(
            "audit records keyed", count=len(keyed), unanchored=report.unanchored_tail
        )

    # ---------------------------------------------------------- checkpoints

    def _verify_tail(self, conn: Connection, *, through: int) -> None:
        """Verify chain and MACs from the last trusted point up to ``through``."""
        start = self._verified
        if start is None:
            last = audit_log.last_checkpoint(conn)
            if last is not None:
                verify_checkpoint(last, self._keys)
                start = (last.seq, last.hash)
        if start is not None and start[0] > through:
            raise AuditIntegrityError(
                f"checkpoint at seq {start[0]} is beyond the chain head seq {through}: "
                "log truncated"
            )
        if start is not None and start[0] == through:
            return
        records = audit_log.iter_audit(
            conn, after=0 if start is None else start[0], through=through
        )
        verify_log(records, [], self.signer.public_jwk, start_after=start, mac=self.mac)

    async def checkpoint(self) -> Checkpoint | None:
        """
        Sign the chain head if it moved since the last checkpoint (background job).

        Returns:
            The new checkpoint, or None if nothing changed.

        Raises:
            AuditIntegrityError: a record since the last checkpoint failed its
                chain or MAC check; nothing was signed.
        """
        seq, head = await self.broker.database.read(audit_log.read_audit_head)
        if seq == 0 or (self._verified is not None and self._verified[0] == seq):
            return None
        checkpoint, created = await self._sign(seq, head)
        return checkpoint if created else None

    async def checkpoint_now(self) -> Checkpoint | None:
        """
        Return a checkpoint covering the current head, signing one if needed.

        Returns:
            The checkpoint at the head, or None for an empty log.

        Raises:
            AuditIntegrityError: as for :meth:`checkpoint`.
        """
        seq, head = await self.broker.database.read(audit_log.read_audit_head)
        if seq == 0:
            return None
        checkpoint, _ = await self._sign(seq, head)
        return checkpoint

    def _went_back(self, conn: Connection) -> bool:
        """Tell whether the record last checkpointed here is gone or different."""
        verified = self._verified
        if verified is None:
            return False
        return SqlChainView(conn).hashes([verified[0]]).get(verified[0]) != verified[1]

    async def _seal_if_went_back(self) -> None:
        """
        Seal when the database went back in time under a running broker.

        A failover to a replica that lost recent commits, or a restore under a
        running broker, leaves the record this broker last checkpointed missing or
        different. The journal comparison then names what was lost.
        """
        if self.seal.sealed or not await self.broker.database.read(self._went_back):
            return
        comparison = await anyio.to_thread.run_sync(self.compare)
        reason = comparison.problem or (
            f"the record at seq {self._verified and self._verified[0]} that this "
            "broker checkpointed is gone"
        )
        self.seal.close(f"{reason} (found while running)", ended=comparison.ended_live)
        self._verified = None
        await self.broker.audit(
            self._entry("audit.sealed", "error", "system", {"reason": reason})
        )

    async def _sign(self, seq: int, head: str) -> tuple[Checkpoint, bool]:
        database = self.broker.database
        async with self._lock:
            await self._seal_if_went_back()
            existing = await database.read(lambda c: audit_log.get_checkpoint(c, seq))
            if existing is not None and existing.hash == head:
                self._verified = (seq, head)
                return existing, False
            try:
                if existing is not None:
                    raise AuditIntegrityError(  # noqa: TRY301 - refused just below
                        f"checkpoint at seq {seq} in the database does not match the "
                        "chain head: chain rewritten"
                    )
                await database.read(lambda c: self._verify_tail(c, through=seq))
            except AuditIntegrityError as error:
                await self._refuse(error)
                raise
            checkpoint = self.signer.sign(seq, head, self.broker.clock.now())

            def record(conn: Connection) -> bool:
                if audit_log.has_checkpoint(conn, seq):
                    return False
                audit_log.insert_checkpoint(conn, checkpoint)
                return True

            created = await database.write(record)
            if created:
                self.journal.append_checkpoint(checkpoint)
            self._verified = (seq, head)
            self.seal.clear_alarm()
            return checkpoint, created

    async def _refuse(self, error: AuditIntegrityError) -> None:
        first = self.seal.alarm != error.detail
        self.seal.raise_alarm(error.detail)
        if first:
            # One record per distinct failure, not one every checkpoint interval.
            await self.broker.audit(
                self._entry(
                    "audit.integrity", "error", "system", {"detail": error.detail}
                )
            )

    # ------------------------------------------------------------ reconcile

    async def reconcile(self, actor: str) -> dict[str, Any]:
        """
        Bring the database back in line with the journal, then unseal.

        Returns:
            What was found and done: ``reconciled``, the problem, the lost range,
            the re-applied ids, the reaped credentials and the new checkpoint.

        Raises:
            AuditIntegrityError: the database still disagrees afterwards (the
                broker stays sealed).
            OSError: the journal cannot be rotated (the broker stays sealed).
        """
        comparison = await anyio.to_thread.run_sync(self.compare)
        if comparison.agrees:
            return await self._reopen_journal(comparison)
        forked = comparison.current is not None or bool(comparison.unacknowledged)
        segments: list[dict[str, Any]] = []
        if forked:
            reference = self.journal.start_segment()
            if comparison.current is not None:
                closed = comparison.current.to_json()
                closed.update(file=reference.file, sha256=reference.sha256)
                segments.append(closed)
            segments.extend(item.to_json() for item in comparison.unacknowledged)
        reapplied = await self._reapply(comparison, actor, segments, forked=forked)
        self.broker.notify_revocations()
        await self.broker.run_revocations()
        reaped = await self._revocations.reap()
        checkpoint = await self.checkpoint_now()
        after = await anyio.to_thread.run_sync(self.compare)
        if not after.agrees:
            raise AuditIntegrityError(
                f"still disagrees after reconcile: {after.problem}"
            )
        self.seal.open()
        return {
            "reconciled": True,
            "problem": comparison.problem,
            "database_head": comparison.database_head,
            "journal_head": comparison.journal_head,
            "segments": segments,
            "reapplied": reapplied,
            "reaped": {target: len(names) for target, names in reaped.items()},
            "checkpoint": None if checkpoint is None else checkpoint.to_json(),
        }

    async def _reopen_journal(self, comparison: Comparison) -> dict[str, Any]:
        was = self.seal.reason
        if self.seal.sealed:
            await anyio.to_thread.run_sync(self.journal.open)
            await self.broker.audit(
                self._entry("audit.unseal", "ok", "system", {"was": was or ""})
            )
            self.seal.open()
        return {
            "reconciled": was is not None,
            "problem": was,
            "database_head": comparison.database_head,
            "journal_head": comparison.journal_head,
            "segments": [],
            "reapplied": {},
            "reaped": {},
            "checkpoint": None,
        }

    async def _reapply(
        self,
        comparison: Comparison,
        actor: str,
        segments: list[dict[str, Any]],
        *,
        forked: bool,
    ) -> dict[str, Any]:
        ended: Mapping[str, frozenset[str]] = comparison.ended_live
        now = self.broker.clock.now()

        def apply(conn: Connection) -> dict[str, list[str]]:
            done = _reapply_endings(conn, ended, now)
            data: dict[str, Any] = {
                "problem": comparison.problem,
                "database_head": comparison.database_head,
                "journal_head": comparison.journal_head,
                "reapplied_count": {kind: len(ids) for kind, ids in done.items()},
                "reapplied": {kind: _listed(set(ids)) for kind, ids in done.items()},
            }
            if forked:
                data["segments"] = segments
            kind = ROLLBACK_KIND if forked else "audit.reconcile"
            audit_log.append_audit(conn, self._entry(kind, "ok", actor, data))
            return done

        done = await self.broker.database.write(apply)
        for task_id in done["tasks"]:
            self.broker.forget_task(task_id)
        for agent_id in done["agents"]:
            self.broker.forget_agent(agent_id)
        _log.warning(
            "audit reconciled",
            forked=forked,
            database_head=comparison.database_head,
            journal_head=comparison.journal_head,
            **{kind: len(ids) for kind, ids in done.items()},
        )
        return {kind: len(ids) for kind, ids in done.items()}
