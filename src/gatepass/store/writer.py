"""
Group commit: one thread runs every write transaction of the process.

Requests on the token path each need one short write transaction (a lease and its
audit record). Committing them one by one costs a thread hop and a commit each;
here a single writer thread takes every job waiting in its queue, runs them in ONE
transaction and commits once, then wakes each caller with its own result. A caller
still returns only after its data is durable, so "the lease commits before the
token leaves" holds, and on SQLite there is never more than one writer.

If any job of a batch raises, the batch is rolled back and each job is run again in
a transaction of its own, so one failing job never takes its neighbours down. Jobs
must therefore be safe to run twice: they only touch the database (and, at most,
set the same values on their own objects again).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection

__all__ = ["GroupCommitWriter", "LoopGroupCommit"]

_MAX_BATCH = 128


@dataclass(slots=True)
class _Job:
    work: Callable[[Connection], Any]
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop
    outcome: tuple[bool, Any] = field(default=(False, None))


def _settle(job: _Job) -> None:
    # Runs on the event loop; a caller that went away (cancelled) is skipped.
    if job.future.done():
        return
    ok, value = job.outcome
    if ok:
        job.future.set_result(value)
    else:
        job.future.set_exception(value)


class GroupCommitWriter:
    """
    Run write jobs on one thread, many per commit.

    Args:
        transaction: opens a write transaction (``Database.transaction``).
        name: the thread's name, for debugging.
    """

    def __init__(
        self,
        transaction: Callable[[], contextlib.AbstractContextManager[Connection]],
        *,
        name: str = "gatepass-writer",
    ) -> None:
        """Prepare the queue; the thread starts on first use."""
        self._transaction = transaction
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._name = name
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.batches = 0
        self.jobs = 0

    async def submit(self, work: Callable[[Connection], Any]) -> Any:  # noqa: ANN401
        """
        Run ``work`` in a committed write transaction and return its result.

        Raises:
            Exception: whatever ``work`` raised, or StoreError if the commit failed.
        """
        loop = asyncio.get_running_loop()
        job = _Job(work=work, future=loop.create_future(), loop=loop)
        self._ensure_thread()
        self._queue.put(job)
        return await job.future

    def _ensure_thread(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name=self._name, daemon=True
                )
                self._thread.start()

    def close(self) -> None:
        """Finish queued jobs and stop the thread."""
        thread = self._thread
        if thread is None:
            return
        self._queue.put(None)
        thread.join(timeout=10)
        self._thread = None

    def _drain(self, first: _Job) -> tuple[list[_Job], bool]:
        batch = [first]
        stop = False
        while len(batch) < _MAX_BATCH:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is None:
                stop = True
                break
            batch.append(job)
        return batch, stop

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch, stop = self._drain(first)
            self._run_batch(batch)
            self.batches += 1
            self.jobs += len(batch)
            for job in batch:
                job.loop.call_soon_threadsafe(_settle, job)
            if stop:
                return

    def _run_batch(self, batch: list[_Job]) -> None:
        if len(batch) > 1 and self._run_together(batch):
            return
        for job in batch:
            job.outcome = self._run_alone(job)

    def _run_together(self, batch: list[_Job]) -> bool:
        try:
            with self._transaction() as conn:
                results = [job.work(conn) for job in batch]
        except Exception:  # noqa: BLE001 - the caller reruns each job alone
            return False
        for job, result in zip(batch, results, strict=True):
            job.outcome = (True, result)
        return True

    def _run_alone(self, job: _Job) -> tuple[bool, Any]:
        try:
            with self._transaction() as conn:
                return True, job.work(conn)
        except Exception as error:  # noqa: BLE001 - handed to the caller
            return False, error


class LoopGroupCommit:
    """
    Group commit on the event loop's own thread, for SQLite.

    A SQLite write is a local, CPU-bound operation of about a tenth of a
    millisecond: handing it to another thread costs more (a wake-up and contention
    for the GIL) than running it. Jobs that reach the store in the same turn of the
    event loop are run together in one transaction at the end of that turn. This
    needs one broker process per SQLite database (which gatepass requires anyway),
    so that the write lock is never held by someone else while the loop waits.

    Args:
        transaction: opens a write transaction (``Database.transaction``).
    """

    def __init__(
        self, transaction: Callable[[], contextlib.AbstractContextManager[Connection]]
    ) -> None:
        """Start with nothing pending."""
        self._runner = GroupCommitWriter(transaction, name="unused")
        # Per event loop: a job is always settled on the loop that awaits it.
        self._pending: dict[asyncio.AbstractEventLoop, list[_Job]] = {}
        self.batches = 0
        self.jobs = 0

    async def submit(self, work: Callable[[Connection], Any]) -> Any:  # noqa: ANN401
        """
        Run ``work`` in a committed write transaction and return its result.

        Raises:
            Exception: whatever ``work`` raised, or StoreError if the commit failed.
        """
        loop = asyncio.get_running_loop()
        job = _Job(work=work, future=loop.create_future(), loop=loop)
        pending = self._pending.setdefault(loop, [])
        pending.append(job)
        if len(pending) == 1:
            # call_soon runs after the callbacks already ready in this turn, so
            # requests that reach the store together share one commit.
            loop.call_soon(self._flush, loop)
        return await job.future

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        pending = self._pending.pop(loop, [])
        batch, rest = pending[:_MAX_BATCH], pending[_MAX_BATCH:]
        if rest:
            self._pending[loop] = rest
            loop.call_soon(self._flush, loop)
        self._runner._run_batch(batch)  # noqa: SLF001 - same module family
        self.batches += 1
        self.jobs += len(batch)
        for job in batch:
            _settle(job)

    def close(self) -> None:
        """Nothing to stop: the loop runs the jobs."""
