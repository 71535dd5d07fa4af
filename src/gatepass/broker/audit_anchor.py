"""
Anchoring the audit log: keyed checkpoints, the start-up comparison, and reconcile.

* **Checkpoints.** Before the broker signs a checkpoint it verifies the chain and
  the MAC of every record since the previous one; one that fails raises the
  integrity alarm (error log, metric, ``/readyz`` 503 ``audit_integrity``, an audit
  record) and nothing is signed, so a forged record never gets the audit key's
  signature. Checkpoints are written to the database and to the anchor journal.
* **Start-up.** The database is compared with the journal (``gatepass.audit.compare``);
  any disagreement seals the broker (``broker/seal.py``).
* **Reconcile.** ``gatepass audit reconcile`` (``broker/reconcile.py``) re-applies
  every ending the journal holds and the database lacks, and unseals.
"""

from __future__ import annotations

from typing import Any

import anyio

from gatepass.audit import (
    AnchorJournal,
    AuditEntry,
    AuditMac,
    AuditSigner,
    Checkpoint,
    Comparison,
    Outcome,
    compare,
    load_public_keys,
    read_journal,
    verify_checkpoint,
    verify_log,
)
from gatepass.broker.audit_migration import key_legacy_records
from gatepass.broker.context import BrokerContext
from gatepass.broker.reconcile import Reconciler
from gatepass.broker.revocations import RevocationWorker
from gatepass.broker.seal import Seal
from gatepass.errors import AuditIntegrityError
from gatepass.observability import get_logger
from gatepass.store import Connection, anchors, audit_log

__all__ = ["AuditAnchoring"]

_log = get_logger("gatepass.audit")


class AuditAnchoring:
    """
    Keep the audit log anchored outside the database.

    Args:
        context: the broker's collaborators (store, clock, seal, trail).
        signer: the audit key.
        mac: the record and journal MAC keys derived from it.
        journal: the anchor journal.
        revocations: drives revocations and reaps engine orphans.
    """

    def __init__(
        self,
        context: BrokerContext,
        *,
        signer: AuditSigner,
        mac: AuditMac,
        journal: AnchorJournal,
        revocations: RevocationWorker,
    ) -> None:
        """Keep the collaborators."""
        self.context = context
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
        return self.context.seal

    def entry(
        self, kind: str, outcome: Outcome, actor: str, data: dict[str, Any]
    ) -> AuditEntry:
        """Return an audit entry about the log itself, timed by the broker's clock."""
        return AuditEntry(
            at=self.context.clock.now(),
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
        key_legacy_records(
            self.context, signer=self.signer, mac=self.mac, seal=self.seal
        )
        try:
            self.journal.open()
        except OSError as error:
            self.seal.journal_failed(f"cannot open it: {type(error).__name__}")
        comparison = self.compare()
        if not comparison.agrees:
            self.seal.close(str(comparison.problem), ended=comparison.ended_live)
            self._record_sync(
                "audit.sealed", Outcome.ERROR, {"reason": comparison.problem}
            )
        try:
            with self.context.database.reading() as conn:
                self._verify_tail(conn, through=anchors.SqlChainView(conn).head()[0])
        except AuditIntegrityError as error:
            self.seal.raise_alarm(error.detail)
            self._record_sync(
                "audit.integrity", Outcome.ERROR, {"detail": error.detail}
            )
        return comparison

    def _record_sync(self, kind: str, outcome: Outcome, data: dict[str, Any]) -> None:
        entry = self.entry(kind, outcome, "system", data)
        with self.context.database.transaction() as conn:
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
            with self.context.database.reading() as conn:
                head = anchors.SqlChainView(conn).head()[0]
            return Comparison(
                problem=f"the anchor journal cannot be trusted: {detail}",
                database_head=head,
                journal_head=0,
            )
        if journal.missing is not None:
            _log.warning("anchor journal segment missing", segment=journal.missing)
        with self.context.database.reading() as conn:
            return compare(journal, anchors.SqlChainView(conn))

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
        seq, head = await self.context.database.read(audit_log.read_audit_head)
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
        seq, head = await self.context.database.read(audit_log.read_audit_head)
        if seq == 0:
            return None
        checkpoint, _ = await self._sign(seq, head)
        return checkpoint

    def _went_back(self, conn: Connection) -> bool:
        """Tell whether the record last checkpointed here is gone or different."""
        verified = self._verified
        if verified is None:
            return False
        return (
            anchors.SqlChainView(conn).hashes([verified[0]]).get(verified[0])
            != verified[1]
        )

    async def _seal_if_went_back(self) -> None:
        """
        Seal when the database went back in time under a running broker.

        A failover to a replica that lost recent commits, or a restore under a
        running broker, leaves the record this broker last checkpointed missing or
        different. The journal comparison then names what was lost.
        """
        if self.seal.sealed or not await self.context.database.read(self._went_back):
            return
        comparison = await anyio.to_thread.run_sync(self.compare)
        reason = comparison.problem or (
            f"the record at seq {self._verified and self._verified[0]} that this "
            "broker checkpointed is gone"
        )
        self.seal.close(f"{reason} (found while running)", ended=comparison.ended_live)
        self._verified = None
        await self.context.trail.append(
            self.entry("audit.sealed", Outcome.ERROR, "system", {"reason": reason})
        )

    async def _sign(self, seq: int, head: str) -> tuple[Checkpoint, bool]:
        database = self.context.database
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
            checkpoint = self.signer.sign(seq, head, self.context.clock.now())

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
            await self.context.trail.append(
                self.entry(
                    "audit.integrity", Outcome.ERROR, "system", {"detail": error.detail}
                )
            )

    # ------------------------------------------------------------ reconcile

    async def reconcile(self, actor: str) -> dict[str, Any]:
        """
        Bring the database back in line with the journal, then unseal.

        See :class:`gatepass.broker.reconcile.Reconciler`.

        Returns:
            What was found and done.
        """
        return await Reconciler(self, self._revocations).run(actor)
