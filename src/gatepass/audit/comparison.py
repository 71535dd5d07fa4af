"""
Compare a database's audit chain with the anchor journal: was it rolled back?

The rules, for a journal whose current segment is S0 and whose older segments
S1, S2, ... were closed by ``gatepass audit reconcile`` after earlier forks:

1. the database's head is not behind the newest seq S0 anchors;
2. every ``(seq, hash)`` S0 anchors is in the database with that hash;
3. every older segment is acknowledged by an ``audit.rollback`` record in the
   database naming its SHA-256 and the seq where the fork happened, and its
   anchors up to that seq match the database (what came after is the history the
   rollback lost, which that record names);
4. nothing any segment says ended is live in the database (checked when the
   caller can see rows, that is by the broker, not by an offline verifier).

A failure is a rollback (a restored snapshot), a deletion or a rewrite: the
broker then seals itself until it is reconciled.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from gatepass.audit.journal import Journal, Segment

__all__ = ["ROLLBACK_KIND", "ChainView", "Comparison", "ForkedSegment", "compare"]

ROLLBACK_KIND = "audit.rollback"


class ChainView(Protocol):
    """What the comparison needs to see of the database."""

    def head(self) -> tuple[int, str]:
        """Return the chain head's ``(seq, hash)``."""
        ...

    def hashes(self, seqs: Collection[int]) -> Mapping[int, str]:
        """Return the hash of each record among ``seqs`` that exists."""
        ...

    def rollbacks(self) -> Sequence[Mapping[str, Any]]:
        """Return the data of every ``audit.rollback`` record."""
        ...

    def still_live(self, kind: str, ids: Collection[str]) -> Collection[str]:
        """Return the ids of ``kind`` that the database shows not ended."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class ForkedSegment:
    """
    A journal segment that disagrees with the database, and where.

    Args:
        file: its file name (the current file's name for the current segment).
        sha256: its digest when it was read.
        fork_seq: the newest seq it anchors that the database still agrees with,
            before the first one it does not.
        head_seq: the newest seq it anchors: ``fork_seq + 1 .. head_seq`` is the
            history the database lost.
    """

    file: str
    sha256: str
    fork_seq: int
    head_seq: int

    def to_json(self) -> dict[str, Any]:
        """Return the segment as the ``audit.rollback`` record names it."""
        return {
            "file": self.file,
            "sha256": self.sha256,
            "fork_seq": self.fork_seq,
            "head_seq": self.head_seq,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Comparison:
    """
    The outcome of :func:`compare`.

    Args:
        problem: the first disagreement, one lower-case line; None when the
            database agrees with the journal.
        database_head: the database's head seq.
        journal_head: the newest seq the current segment anchors.
        current: the current segment's fork, when it disagrees.
        unacknowledged: older segments no ``audit.rollback`` record acknowledges.
        ended_live: ids the journal says ended that the database shows live.
    """

    problem: str | None
    database_head: int
    journal_head: int
    current: ForkedSegment | None = None
    unacknowledged: tuple[ForkedSegment, ...] = ()
    ended_live: Mapping[str, frozenset[str]] = field(default_factory=dict)

    @property
    def agrees(self) -> bool:
        """Tell whether the database agrees with the journal."""
        return self.problem is None


def _fork_seq(segment: Segment, observed: Mapping[int, str], database_head: int) -> int:
    agreed = 0
    for seq, digest in segment.anchored():
        if seq > database_head or observed.get(seq) != digest:
            break
        agreed = seq
    return agreed


def _first_disagreement(
    pairs: Sequence[tuple[int, str]], observed: Mapping[int, str]
) -> str | None:
    for seq, digest in pairs:
        found = observed.get(seq)
        if found is None:
            return (
                f"seq {seq}, which the anchor journal names, is missing from the "
                "database: records deleted"
            )
        if found != digest:
            return (
                f"the database's record at seq {seq} is not the one the anchor "
                "journal names: chain rewritten"
            )
    return None


def _acknowledged(view: ChainView) -> dict[str, int]:
    """Map each segment digest an ``audit.rollback`` record names to its fork."""
    forks: dict[str, int] = {}
    for data in view.rollbacks():
        segments = data.get("segments")
        if not isinstance(segments, list):
            continue
        for item in segments:
            if not isinstance(item, dict):
                continue
            digest, fork = item.get("sha256"), item.get("fork_seq")
            if isinstance(digest, str) and isinstance(fork, int):
                forks[digest] = fork
    return forks


def _forked(segment: Segment, observed: Mapping[int, str], head: int) -> ForkedSegment:
    return ForkedSegment(
        file=segment.path.name,
        sha256=segment.digest,
        fork_seq=_fork_seq(segment, observed, head),
        head_seq=segment.head_seq(),
    )


def _ended_live(journal: Journal, view: ChainView) -> dict[str, frozenset[str]]:
    ended: dict[str, set[str]] = {}
    for segment in journal.segments:
        for kind, ids in segment.ended().items():
            ended.setdefault(kind, set()).update(ids)
    live = {kind: frozenset(view.still_live(kind, ids)) for kind, ids in ended.items()}
    return {kind: ids for kind, ids in live.items() if ids}


def compare(
    journal: Journal,
    view: ChainView,
    *,
    require_segments: bool = False,
    as_of: dt.datetime | None = None,
) -> Comparison:
    """
    Compare the database behind ``view`` with ``journal``.

    Args:
        journal: the journal, from :func:`~gatepass.audit.journal.read_journal`.
        view: the database as the caller sees it.
        require_segments: treat an older segment that cannot be found as a
            disagreement (the offline verifier follows every fork; the broker
            only needs the current segment to detect a rollback).
        as_of: compare only with journal lines written at or before this time:
            the time of the checkpoint that ends a verified log or export, which
            is the head the log is compared as of.

    Returns:
        The comparison; check :attr:`Comparison.problem`.
    """
    head_seq, _ = view.head()
    if not journal.segments:
        return Comparison(problem=None, database_head=head_seq, journal_head=0)
    current, older = journal.segments[0], journal.segments[1:]
    forks = _acknowledged(view)
    anchored = current.anchored(as_of=as_of)
    wanted = {seq for seq, _ in anchored}
    for segment in older:
        limit = forks.get(segment.digest, head_seq)
        wanted.update(seq for seq, _ in segment.anchored() if seq <= limit)
    observed = view.hashes(wanted)
    journal_head = anchored[-1][0] if anchored else 0
    problems: list[str] = []
    if head_seq < journal_head:
        problems.append(
            f"the database (head seq {head_seq}) is behind the anchor journal "
            f"(seq {journal_head}): restored from an older snapshot, or records "
            "deleted"
        )
    disagreement = _first_disagreement(anchored, observed)
    if disagreement is not None:
        problems.append(disagreement)
    forked = _forked(current, observed, head_seq) if problems else None
    unacknowledged: list[ForkedSegment] = []
    for segment in older:
        fork = forks.get(segment.digest)
        if fork is None:
            unacknowledged.append(_forked(segment, observed, head_seq))
            problems.append(
                f"anchor journal segment {segment.path.name} forked from the "
                "database but no audit.rollback record acknowledges it"
            )
            continue
        pairs = [(s, h) for s, h in segment.anchored() if s <= fork]
        disagreement = _first_disagreement(pairs, observed)
        if disagreement is not None:
            problems.append(f"{disagreement} (segment {segment.path.name})")
    if require_segments and journal.missing is not None:
        problems.append(f"anchor journal segment {journal.missing} is missing")
    ended_live = _ended_live(journal, view)
    if ended_live:
        counts = ", ".join(
            f"{len(ids)} {kind}" for kind, ids in sorted(ended_live.items())
        )
        problems.append(
            f"the anchor journal says {counts} ended that the database shows live"
        )
    return Comparison(
        problem=problems[0] if problems else None,
        database_head=head_seq,
        journal_head=journal_head,
        current=forked,
        unacknowledged=tuple(unacknowledged),
        ended_live=ended_live,
    )
