"""Factories for audit entries, signed logs and keys."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from gatepass.audit import AuditEntry, AuditRecord, AuditSigner, Checkpoint, chain
from gatepass.clock import FrozenClock
from gatepass.sealing import Sealer

from .brokers import Brokers

START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)

MakeEntries = Callable[..., list[AuditEntry]]
ChainAll = Callable[..., list[AuditRecord]]


@dataclasses.dataclass
class SignedLog:
    """A chained log, its checkpoints and the signer that made them."""

    records: list[AuditRecord]
    checkpoints: list[Checkpoint]
    signer: AuditSigner

    @property
    def jwk(self) -> dict[str, str]:
        """The signer's public JWK."""
        return self.signer.public_jwk


def _make_entries(count: int, *, start: dt.datetime = START) -> list[AuditEntry]:
    """Return ``count`` distinct entries one second apart."""
    clock = FrozenClock(start)
    entries = []
    for index in range(count):
        entries.append(
            AuditEntry(
                at=clock.now(),
                kind="credential.issue",
                outcome="allow" if index % 3 else "deny",
                actor=f"agt_{index % 4}",
                subject=f"lse_{index}",
                data={
                    "target": "orders-db",
                    "reasons": [f"policy-{index}"],
                    "n": index,
                },
            )
        )
        clock.advance(1)
    return entries


def _chain_all(
    entries: Iterable[AuditEntry], previous: AuditRecord | None = None
) -> list[AuditRecord]:
    """Chain ``entries`` after ``previous``."""
    records = []
    for entry in entries:
        previous = chain(previous, entry)
        records.append(previous)
    return records


def _checkpoint_at(
    signer: AuditSigner, records: list[AuditRecord], seq: int
) -> Checkpoint:
    """Sign a checkpoint over the record at ``seq``."""
    record = records[seq - 1]
    return signer.sign(record.seq, record.hash, record.at + dt.timedelta(seconds=1))


MakeLog = Callable[..., SignedLog]


@pytest.fixture
def sealer() -> Sealer:
    """A sealer with a fresh master key."""
    return Sealer([Fernet.generate_key()])


@pytest.fixture
def signer(sealer: Sealer) -> AuditSigner:
    """A freshly generated audit signer."""
    created, _ = AuditSigner.generate(sealer)
    return created


@pytest.fixture
def make_log(signer: AuditSigner) -> MakeLog:
    """Build a log of ``count`` records with checkpoints at the given seqs."""

    def build(count: int = 10, checkpoints: Iterable[int] = (5, 8)) -> SignedLog:
        records = _chain_all(_make_entries(count))
        signed = [_checkpoint_at(signer, records, seq) for seq in checkpoints]
        return SignedLog(records=records, checkpoints=signed, signer=signer)

    return build


@pytest.fixture
def make_entries() -> MakeEntries:
    """Return ``count`` distinct entries one second apart."""
    return _make_entries


@pytest.fixture
def chain_all() -> ChainAll:
    """Chain entries after an optional previous record."""
    return _chain_all


@pytest.fixture
def checkpoint_at() -> Callable[[AuditSigner, list[AuditRecord], int], Checkpoint]:
    """Sign a checkpoint over the record at a seq."""
    return _checkpoint_at


@pytest.fixture
def brokers(tmp_path: Path) -> Iterator[Brokers]:
    """A state directory to start (and restart) real brokers on."""
    found = Brokers(tmp_path / "state")
    try:
        yield found
    finally:
        found.stop()
