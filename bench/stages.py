"""
Where the time of one access-token request goes, measured in-process.

A broker is built with ``build_runtime`` (its own temporary SQLite database, the
bench configuration), a task is opened, and the token request is run a few thousand
times under anyio exactly as the ``/token`` route runs it (``api.forms`` parses the
body, then ``broker.tokens.exchange``), three ways:

1. ``served``: as in the server, with ``time.perf_counter`` wrapped around each
   stage. The wrappers replace methods on the classes of this process only (and
   are removed afterwards); nothing in the source tree is changed.
2. ``inline``: the same, with the write transaction run directly rather than
   through the group committer, which splits the store's cost into begin, the
   statements (proof, lease, audit) and commit.
3. ``profile``: as 2, under cProfile; the top functions by cumulative time.
"""

from __future__ import annotations

import contextlib
import cProfile
import io
import json
import pstats
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

import anyio

from broker_config import access_body, open_task_form, render_config
from gatepass.api.forms import parse_form, parse_token_exchange
from gatepass.broker import build_runtime
from gatepass.broker.authority import Authority
from gatepass.broker.bootstrap import Runtime
from gatepass.broker.directory import Directory
from gatepass.broker.task_access import TaskAccess
from gatepass.config import load_settings
from gatepass.store import Database, audit_log
from gatepass.store import leases as lease_rows
from gatepass.store import replay as replay_rows
from gatepass.tokens import DPoPKey, DPoPVerifier, JWTIssuer

T = TypeVar("T")

# Stage names, in the order the use case runs them.
PARSE = "parse form (api.forms)"
TASK_TOKEN = "task token + task (cached)"  # noqa: S105 - a label
DPOP = "DPoP proof verify"
AGENT = "agent lookup (cached)"
POLICY = "policy decide (cedar)"
SIGN = "access-token sign (ES256)"
DB_WRITE = "DB write transaction (await)"
TOP_LEVEL = (PARSE, TASK_TOKEN, DPOP, AGENT, POLICY, SIGN, DB_WRITE)
OTHER = "other (audit entry, metrics, ids, dataclasses, awaits)"
# Parts of the DB write, measured inline.
DB_BEGIN = "  begin (BEGIN IMMEDIATE)"
DB_PROOF = "  spend the DPoP proof (upsert)"
DB_LEASE = "  insert lease if task open"
DB_AUDIT = "  audit append (MAC, advance head, insert)"
DB_COMMIT = "  commit (WAL, no fsync)"
DB_PARTS = (DB_BEGIN, DB_PROOF, DB_LEASE, DB_AUDIT, DB_COMMIT)
TOTAL = "total (parse + broker.tokens.exchange)"
_NOT_PROFILED = ("/bench/", "asyncio", "anyio")


@dataclass
class StageClock:
    """Sums of seconds per stage, and the number of requests measured."""

    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
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


class _Patcher:
    """Replace attributes for a measurement and put them back afterwards."""

    def __init__(self) -> None:
        self._undo: list[Callable[[], None]] = []

    def patch(self, owner: object, name: str, value: object) -> None:
        """Replace ``owner.name``."""
        original = owner.__dict__[name] if isinstance(owner, type) else None
        if original is None:
            original = getattr(owner, name)
        setattr(owner, name, value)
        self._undo.append(lambda: setattr(owner, name, original))

    def undo(self) -> None:
        """Put everything back, last change first."""
        while self._undo:
            self._undo.pop()()


def _timed(clock: StageClock, name: str, function: Callable[..., T]) -> Any:  # noqa: ANN401
    def wrapper(*args: Any, **kwargs: Any) -> T:  # noqa: ANN401
        with clock.timing(name):
            return function(*args, **kwargs)

    return wrapper


def _timed_async(clock: StageClock, name: str, function: Callable[..., Any]) -> Any:  # noqa: ANN401
    async def wrapper(*args: Any, **kwargs: Any) -> Any:  # noqa: ANN401
        with clock.timing(name):
            return await function(*args, **kwargs)

    return wrapper


def _instrument(patcher: _Patcher, clock: StageClock, *, inline: bool) -> None:
    patcher.patch(
        TaskAccess,
        "subject_task",
        _timed_async(clock, TASK_TOKEN, TaskAccess.subject_task),
    )
    patcher.patch(DPoPVerifier, "verify", _timed(clock, DPOP, DPoPVerifier.verify))
    patcher.patch(
        Directory, "active_agent", _timed_async(clock, AGENT, Directory.active_agent)
    )
    patcher.patch(Authority, "authorize", _timed(clock, POLICY, Authority.authorize))
    patcher.patch(JWTIssuer, "sign", _timed(clock, SIGN, JWTIssuer.sign))
    if not inline:
        patcher.patch(Database, "write", _timed_async(clock, DB_WRITE, Database.write))
        return
    patcher.patch(
        replay_rows,
        "claim_single_use",
        _timed(clock, DB_PROOF, replay_rows.claim_single_use),
    )
    patcher.patch(
        lease_rows,
        "insert_lease_if_task_open",
        _timed(clock, DB_LEASE, lease_rows.insert_lease_if_task_open),
    )
    patcher.patch(
        audit_log, "append_audit", _timed(clock, DB_AUDIT, audit_log.append_audit)
    )

    async def write(database: Database, work: Callable[[Any], T]) -> T:
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

    patcher.patch(Database, "write", write)


async def _request(runtime: Runtime, body: bytes, proof: str) -> dict[str, Any]:
    # What the /token route does after reading the body and the DPoP header.
    exchange = parse_token_exchange(parse_form(body))
    answer = await runtime.broker.tokens.exchange(exchange, dpop_proof=proof)
    return answer.body


async def _requests(
    runtime: Runtime, body: bytes, proofs: Iterator[str], count: int, clock: StageClock
) -> None:
    for _ in range(count):
        proof = next(proofs)
        started = time.perf_counter()
        with clock.timing(PARSE):
            exchange = parse_token_exchange(parse_form(body))
        answer = await runtime.broker.tokens.exchange(exchange, dpop_proof=proof)
        clock.add(TOTAL, time.perf_counter() - started)
        clock.requests += 1
        if "access_token" not in answer.body:
            raise RuntimeError("the broker answered without an access token")


async def _measure(
    runtime: Runtime, body: bytes, proofs: Iterator[str], count: int, *, inline: bool
) -> StageClock:
    clock = StageClock()
    patcher = _Patcher()
    _instrument(patcher, clock, inline=inline)
    try:
        await _requests(runtime, body, proofs, count, clock)
    finally:
        patcher.undo()
    return clock


async def _profile(
    runtime: Runtime, body: bytes, proofs: Iterator[str], count: int
) -> tuple[str, list[dict[str, Any]]]:
    async def write(database: Database, work: Callable[[Any], T]) -> T:
        with database.transaction() as conn:
            return work(conn)

    patcher = _Patcher()
    patcher.patch(Database, "write", write)
    profiler = cProfile.Profile()
    try:
        profiler.enable()
        for _ in range(count):
            await _request(runtime, body, next(proofs))
        profiler.disable()
    finally:
        patcher.undo()
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats(pstats.SortKey.CUMULATIVE).print_stats(25)
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


def _summarise(clock: StageClock) -> dict[str, Any]:
    per = clock.per_request_us()
    total = per.get(TOTAL, 0.0)
    stages = {name: round(per.get(name, 0.0), 1) for name in TOP_LEVEL}
    stages[OTHER] = round(total - sum(per.get(name, 0.0) for name in TOP_LEVEL), 1)
    parts = {name: round(per[name], 1) for name in DB_PARTS if name in per}
    return {
        "requests": clock.requests,
        "total_us": round(total, 1),
        "stages_us": stages,
        "db_parts_us": parts,
    }


async def _run(
    runtime: Runtime, identity: dict[str, Any], iterations: int
) -> dict[str, Any]:
    broker = runtime.broker
    settings = runtime.settings
    endpoint = settings.token_endpoint
    key = DPoPKey.generate("ES256")
    form = open_task_form(identity, settings.server.issuer)
    opened = await broker.tokens.exchange(
        parse_token_exchange(parse_form(urlencode(form).encode("ascii"))),
        dpop_proof=key.proof("POST", endpoint),
    )
    task_token = str(opened.body["access_token"])
    body = access_body(task_token)
    warmup, profiled = 300, max(iterations // 2, 500)
    needed = warmup + 2 * iterations + profiled + 10
    proofs = iter([key.proof("POST", endpoint) for _ in range(needed)])

    await _requests(runtime, body, proofs, warmup, StageClock())
    served = await _measure(runtime, body, proofs, iterations, inline=False)
    inline = await _measure(runtime, body, proofs, iterations, inline=True)
    listing, rows = await _profile(runtime, body, proofs, profiled)
    return {
        "method": (
            "in-process api.forms parse + runtime.broker.tokens.exchange(...) under "
            "anyio, one request at a time, perf_counter wrappers around each stage; "
            "served = the write through the group committer as in the server, "
            "inline = the write transaction run directly, split into its parts"
        ),
        "served": _summarise(served),
        "inline": _summarise(inline),
        "profile": {
            "requests": profiled,
            "mode": "inline DB write under cProfile (profiling inflates times ~2x)",
            "top_by_cumulative": rows[:20],
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


def main() -> None:
    """Print the breakdown (``python bench/stages.py``)."""
    import tempfile  # noqa: PLC0415 - only for running this file alone

    with tempfile.TemporaryDirectory(prefix="gatepass-stages-") as directory:
        result = measure_stages(Path(directory), 2000)
    print(result["profile"].pop("listing"))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
