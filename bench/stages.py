"""
Where the time of one access-token request goes, measured in-process.

A broker is built with ``build_runtime`` (its own temporary SQLite database, the
bench configuration), a task is opened, and ``runtime.broker.token(body,
dpop_proof=...)`` is called a few thousand times under anyio, three ways:

1. ``threaded``: as in the server (the write transaction runs on the store's writer
   thread), with ``time.perf_counter`` wrapped around each stage of the use case.
   The wrappers replace collaborators on this bench-only runtime (and module-level
   functions of ``gatepass.broker.service`` / ``gatepass.store``); nothing in the
   source tree is changed.
2. ``inline``: the same with the write transaction run on the event loop's thread,
   which splits the store's cost into begin, statements and commit and shows what
   the thread hop costs.
3. ``profile``: as 2, under cProfile (the store's worker thread would be invisible
   to cProfile, hence inline); the top functions by cumulative time.
"""

from __future__ import annotations

import contextlib
import cProfile
import io
import json
import pstats
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

import anyio
import anyio.to_thread
from sqlalchemy import event

import gatepass.broker.service as service_module
from broker_config import access_body, open_task_form, render_config
from gatepass.broker import build_runtime
from gatepass.broker.bootstrap import Runtime
from gatepass.config import load_settings
from gatepass.store import audit_log
from gatepass.store import leases as lease_rows
from gatepass.tokens import DPoPKey

T = TypeVar("T")

# Stage names, in the order the use case runs them.
PARSE = "parse form"
TASK_TOKEN = "task-token verify (cached by hash)"  # noqa: S105 - a label
TASK = "task lookup (cache)"
DPOP = "DPoP proof verify"
AGENT = "agent lookup (cache, DB read every 5 s)"
POLICY = "policy decide (cedar)"
SIGN = "access-token sign (ES256)"
DB_WRITE = "DB write transaction (await)"
TOP_LEVEL = (PARSE, TASK_TOKEN, TASK, DPOP, AGENT, POLICY, SIGN, DB_WRITE)
# Parts of the DB write.
DB_BEGIN = "  begin (connection, BEGIN IMMEDIATE)"
DB_LEASE = "  INSERT lease if task open"
DB_AUDIT = "  audit append (hash, UPDATE head, INSERT)"
DB_COMMIT = "  commit (WAL, no fsync)"
DB_HOP = "  hand-off to the group committer"
DB_DRIVER = "  of which sqlite3 cursor.execute"
TOTAL = "total use case (broker.token)"
_NOT_PROFILED = ("/bench/", "asyncio", "anyio")


@dataclass
class StageClock:
    """Sums of seconds per stage, and the number of requests measured."""

    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    statements: int = 0
    requests: int = 0

    def add(self, name: str, seconds: float) -> None:
        """Add one measurement."""
        self.seconds[name] += seconds

    @contextlib.contextmanager
    def timing(self, name: str) -> Iterator[None]:
        """Time the block into ``name``."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - started

    def per_request_us(self) -> dict[str, float]:
        """Return the mean microseconds per request of every stage."""
        count = max(self.requests, 1)
        return {name: value / count * 1e6 for name, value in self.seconds.items()}


class _Proxy:
    """Forward everything to ``target`` except the attributes given as overrides."""

    def __init__(self, target: object, **overrides: object) -> None:
        self._target = target
        self.__dict__.update(overrides)

    def __getattr__(self, name: str) -> Any:  # noqa: ANN401
        return getattr(self._target, name)


def _timed_sync(
    clock: StageClock, name: str, function: Callable[..., T]
) -> Callable[..., T]:
    def wrapper(*args: Any, **kwargs: Any) -> T:  # noqa: ANN401
        with clock.timing(name):
            return function(*args, **kwargs)

    return wrapper


def _timed_async(
    clock: StageClock, name: str, function: Callable[..., Awaitable[T]]
) -> Callable[..., Awaitable[T]]:
    async def wrapper(*args: Any, **kwargs: Any) -> T:  # noqa: ANN401
        with clock.timing(name):
            return await function(*args, **kwargs)

    return wrapper


class _Patcher:
    """Replace attributes for a measurement and put them back afterwards."""

    def __init__(self) -> None:
        self._undo: list[Callable[[], None]] = []

    def patch(self, owner: object, name: str, value: object) -> None:
        """Replace ``owner.name``."""
        original = getattr(owner, name)
        setattr(owner, name, value)
        self._undo.append(lambda: setattr(owner, name, original))

    def shadow(self, owner: object, name: str, value: object) -> None:
        """Shadow a method by an instance attribute; undo deletes it."""
        setattr(owner, name, value)
        self._undo.append(lambda: delattr(owner, name))

    def on_undo(self, action: Callable[[], None]) -> None:
        """Run ``action`` when undoing."""
        self._undo.append(action)

    def undo(self) -> None:
        """Put everything back, last change first."""
        while self._undo:
            self._undo.pop()()


def _instrument_broker(patcher: _Patcher, runtime: Runtime, clock: StageClock) -> None:
    broker = runtime.broker
    parse_form = service_module.parse_form
    parse_exchange = service_module.parse_token_exchange
    patcher.patch(service_module, "parse_form", _timed_sync(clock, PARSE, parse_form))
    patcher.patch(
        service_module,
        "parse_token_exchange",
        _timed_sync(clock, PARSE, parse_exchange),
    )
    patcher.shadow(
        broker,
        "verify_task_token",
        _timed_async(clock, TASK_TOKEN, broker.verify_task_token),
    )
    patcher.shadow(broker, "task", _timed_async(clock, TASK, broker.task))
    patcher.shadow(broker, "agent", _timed_async(clock, AGENT, broker.agent))
    patcher.shadow(broker, "decide", _timed_sync(clock, POLICY, broker.decide))
    dpop = broker.dpop
    patcher.patch(
        broker, "dpop", _Proxy(dpop, verify=_timed_sync(clock, DPOP, dpop.verify))
    )
    issuer = broker.issuer
    patcher.patch(
        broker, "issuer", _Proxy(issuer, sign=_timed_sync(clock, SIGN, issuer.sign))
    )


def _instrument_store(
    patcher: _Patcher, runtime: Runtime, clock: StageClock, *, inline: bool
) -> None:
    database = runtime.database
    patcher.patch(
        lease_rows,
        "insert_lease_if_task_open",
        _timed_sync(clock, DB_LEASE, lease_rows.insert_lease_if_task_open),
    )
    patcher.patch(
        audit_log, "append_audit", _timed_sync(clock, DB_AUDIT, audit_log.append_audit)
    )
    if not inline:
        patcher.shadow(database, "write", _timed_async(clock, DB_WRITE, database.write))
    else:

        async def write(work: Callable[[Any], T]) -> T:
            with clock.timing(DB_WRITE):
                started = time.perf_counter()
                manager = database.transaction()
                conn = manager.__enter__()
                clock.add(DB_BEGIN, time.perf_counter() - started)
                try:
                    result = work(conn)
                except BaseException as error:
                    manager.__exit__(type(error), error, error.__traceback__)
                    raise
                done = time.perf_counter()
                manager.__exit__(None, None, None)
                clock.add(DB_COMMIT, time.perf_counter() - done)
                return result

        async def read(work: Callable[[Any], T]) -> T:
            with database.reading() as conn:
                return work(conn)

        patcher.shadow(database, "write", write)
        patcher.shadow(database, "read", read)

    engine = database._write_engine  # noqa: SLF001 - bench-only look inside
    starts: list[float] = []

    def before(*_args: object) -> None:
        starts.append(time.perf_counter())

    def after(*_args: object) -> None:
        clock.add(DB_DRIVER, time.perf_counter() - starts.pop())
        clock.statements += 1

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    patcher.on_undo(lambda: event.remove(engine, "before_cursor_execute", before))
    patcher.on_undo(lambda: event.remove(engine, "after_cursor_execute", after))


async def _requests(
    runtime: Runtime, body: bytes, proofs: Iterator[str], count: int, clock: StageClock
) -> None:
    token = runtime.broker.token
    for _ in range(count):
        started = time.perf_counter()
        response = await token(body, dpop_proof=next(proofs))
        clock.add(TOTAL, time.perf_counter() - started)
        clock.requests += 1
        if "access_token" not in response.body:
            raise RuntimeError("the broker answered without an access token")


async def _measure(
    runtime: Runtime, body: bytes, proofs: Iterator[str], count: int, *, inline: bool
) -> StageClock:
    clock = StageClock()
    patcher = _Patcher()
    _instrument_broker(patcher, runtime, clock)
    _instrument_store(patcher, runtime, clock, inline=inline)
    try:
        await _requests(runtime, body, proofs, count, clock)
    finally:
        patcher.undo()
    return clock


async def _profile(
    runtime: Runtime, body: bytes, proofs: Iterator[str], count: int
) -> tuple[str, list[dict[str, Any]]]:
    database = runtime.database

    async def write(work: Callable[[Any], T]) -> T:
        with database.transaction() as conn:
            return work(conn)

    database.write = write  # type: ignore[method-assign]
    profiler = cProfile.Profile()
    try:
        profiler.enable()
        token = runtime.broker.token
        for _ in range(count):
            await token(body, dpop_proof=next(proofs))
        profiler.disable()
    finally:
        del database.write
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats(pstats.SortKey.CUMULATIVE).print_stats(18)
    rows: list[dict[str, Any]] = []
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    ordered = sorted(raw.items(), key=lambda item: item[1][3], reverse=True)
    for (path, line, name), (_cc, calls, tottime, cumtime, _callers) in ordered:
        # Leave out the bench's own frames and the event loop's, which wrap it all.
        if calls < count or any(part in path for part in _NOT_PROFILED):
            continue
        rows.append(
            {
                "function": f"{Path(path).name}:{line}({name})",
                "calls_per_request": round(calls / count, 2),
                "tottime_us_per_request": round(tottime / count * 1e6, 1),
                "cumtime_us_per_request": round(cumtime / count * 1e6, 1),
            }
        )
        if len(rows) == 40:
            break
    return text.getvalue(), rows


async def _hop_cost(count: int) -> float:
    limiter = anyio.CapacityLimiter(1)
    started = time.perf_counter()
    for _ in range(count):
        await anyio.to_thread.run_sync(lambda: None, limiter=limiter)
    return (time.perf_counter() - started) / count * 1e6


def _micro(function: Callable[[], object], count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        function()
    return (time.perf_counter() - started) / count * 1e6


def _summarise(clock: StageClock) -> dict[str, Any]:
    per = clock.per_request_us()
    total = per.get(TOTAL, 0.0)
    stages = {name: round(per.get(name, 0.0), 1) for name in TOP_LEVEL}
    stages["other (metrics, audit entry, dataclasses, awaits)"] = round(
        total - sum(per.get(name, 0.0) for name in TOP_LEVEL), 1
    )
    parts = {
        name: round(per[name], 1)
        for name in (DB_BEGIN, DB_LEASE, DB_AUDIT, DB_COMMIT, DB_DRIVER)
        if name in per
    }
    return {
        "requests": clock.requests,
        "total_us": round(total, 1),
        "stages_us": stages,
        "db_parts_us": parts,
        "sql_statements_per_request": round(
            clock.statements / max(clock.requests, 1), 2
        ),
    }


async def _run(
    runtime: Runtime, identity: dict[str, Any], iterations: int
) -> dict[str, Any]:
    broker = runtime.broker
    settings = runtime.settings
    endpoint = settings.token_endpoint
    key = DPoPKey.generate("ES256")
    form = open_task_form(identity, settings.server.issuer)
    opened = await broker.token(
        urlencode(form).encode("ascii"), dpop_proof=key.proof("POST", endpoint)
    )
    task_token = str(opened.body["access_token"])
    body = access_body(task_token)
    warmup, profiled = 300, max(iterations // 2, 500)
    needed = warmup + 2 * iterations + profiled + 10
    proofs = iter([key.proof("POST", endpoint) for _ in range(needed)])

    await _requests(runtime, body, proofs, warmup, StageClock())
    threaded = await _measure(runtime, body, proofs, iterations, inline=False)
    inline = await _measure(runtime, body, proofs, iterations, inline=True)
    listing, rows = await _profile(runtime, body, proofs, profiled)

    hop_us = await _hop_cost(iterations)
    uncached_us = _micro(
        lambda: broker.verifier.verify(
            task_token, typ="txntoken+jwt", audience=settings.server.issuer
        ),
        1000,
    )
    summary_threaded = _summarise(threaded)
    summary_inline = _summarise(inline)
    return {
        "method": (
            "in-process runtime.broker.token(body, dpop_proof=...) under anyio, "
            "perf_counter wrappers around each stage; threaded = as served (write on "
            "the store's writer thread), inline = write on the loop thread"
        ),
        "threaded": summary_threaded,
        "inline": summary_inline,
        "thread_hop_noop_us": round(hop_us, 1),
        "task_token_verify_uncached_us": round(uncached_us, 1),
        "profile": {
            "requests": profiled,
            "mode": "inline DB write under cProfile (profiling inflates times ~2x)",
            "top_by_cumulative": rows[:15],
            "listing": listing,
        },
    }


def measure_stages(workdir: Path, iterations: int = 3000) -> dict[str, Any]:
    """
    Build an in-process broker in ``workdir`` and measure one request's stages.

    Args:
        workdir: an empty temporary directory; the caller deletes it.
        iterations: requests per measured way.

    Returns:
        The breakdowns and the profile, JSON-ready.
    """
    config = workdir / "gatepass.toml"
    config.write_text(render_config(workdir / "state", 8400), encoding="utf-8")
    runtime = build_runtime(load_settings(config))
    try:
        identity = json.loads((workdir / "state" / "demo-agent.json").read_text())
        return anyio.run(_run, runtime, identity, iterations)
    finally:
        runtime.database.dispose()
