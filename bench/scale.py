"""
The lease store at scale: a million live leases, on SQLite and PostgreSQL.

For each store (PostgreSQL only when it answers at 127.0.0.1:5432), in-process:

1. **issuance**: access-token exchanges (``broker.tokens.exchange``, a fresh DPoP
   proof each, the sweeper running every 2 s beside them as in the server) with
   1,000 live leases, then again after bulk-loading the store to 1,000,000 live
   leases (batched inserts of 10,000 rows). Aim: the second rate >= 0.8 x the first.
2. **close**: closing one task that holds 1,000 live leases (one transaction,
   every lease revoked, one audit record). Aim ≤ 1 s.
3. **start-up**: ``build_runtime`` on the loaded store in a fresh process; its peak
   memory against a start-up on an empty store. Aim: the leases are not loaded
   (peak memory within 50 MB of the empty start).
4. **sweeper**: 10,000 leases past their expiry, swept as the broker's job does
   (``broker.sweeper.sweep`` every 2 s, at most 1,000 leases each). Aim: the
   sweep capacity (leases expired per minute at that interval) ≥ 10,000.

``EXPLAIN`` of the hot queries on the loaded store is printed and kept, to show
they use indexes. ``--quick`` loads 100,000 leases instead of 1,000,000 and
measures fewer requests. Prints one table per aim and writes
``bench/results/scale.json``.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import os
import platform
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import anyio
from rich.console import Console
from rich.table import Table
from sqlalchemy import bindparam, text

from broker_config import access_body, open_task_form, render_config
from gatepass.api.forms import parse_form, parse_token_exchange
from gatepass.broker import Runtime, build_runtime
from gatepass.clock import SystemClock
from gatepass.config import load_settings
from gatepass.store.tables import UTCDateTime
from gatepass.tokens import DPoPKey

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results" / "scale.json"
POSTGRES = os.environ.get(
    "GATEPASS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
BATCH = 100_000
SWEEP_INTERVAL = 2.0
console = Console(width=120)


_COLUMNS = (
    "id, task_id, agent_id, target, kind, actions, handle, state, issued_at, "
    "expires_at, revoked_at, policy_ids, attempts"
)


def _load_statement(dialect: str, *, one_task: bool) -> Any:  # noqa: ANN401
    """Return an INSERT ... SELECT that makes ``:count`` lease rows in the database."""
    task = ":task" if one_task else "'tsk_bench' || (i / 1000)"
    if dialect == "postgresql":
        actions, policies = "CAST('[\"read\"]' AS JSON)", "CAST('[\"bench\"]' AS JSON)"
    else:
        actions, policies = "'[\"read\"]'", "'[\"bench\"]'"
    select = (
        f"SELECT 'lse_' || :tag || '_' || i, {task}, 'agt_bench', 'tickets', "
        f"'access_token', {actions}, 'jti_' || :tag || '_' || i, "
        f"'active', :issued, :expires, NULL, {policies}, 0"
    )
    if dialect == "postgresql":
        sql = (
            f"INSERT INTO gp_leases ({_COLUMNS}) {select} "
            "FROM generate_series(0, CAST(:count AS integer) - 1) AS i"
        )
    else:
        sql = (
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n "  # noqa: S608 - constants
            f"WHERE i < :count - 1) INSERT INTO gp_leases ({_COLUMNS}) {select} FROM n"
        )
    # Built from constants only; the values are bound parameters.
    return text(sql).bindparams(
        bindparam("issued", type_=UTCDateTime), bindparam("expires", type_=UTCDateTime)
    )


def bulk_load(
    runtime: Runtime,
    count: int,
    *,
    expires_in: dt.timedelta,
    task_id: str | None = None,
) -> float:
    """Insert ``count`` live leases, 100,000 a statement; return the seconds taken."""
    now = SystemClock().now()
    statement = _load_statement(runtime.database.dialect, one_task=task_id is not None)
    started = time.perf_counter()
    remaining = count
    while remaining > 0:
        size = min(remaining, BATCH)
        params = {
            "tag": secrets.token_hex(6),
            "count": size,
            "issued": now,
            "expires": now + expires_in,
        }
        if task_id is not None:
            params["task"] = task_id
        with runtime.database.transaction() as conn:
            conn.execute(statement, params)
        remaining -= size
    if runtime.database.dialect == "postgresql":
        # What autovacuum does after a large load: fresh statistics for the planner.
        with runtime.database.transaction() as conn:
            conn.execute(text("ANALYZE gp_leases"))
    else:
        # What SQLite's automatic checkpoints do over time: the load's write-ahead
        # log folded into the database (a next process would read the whole log).
        with runtime.database.reading() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    return time.perf_counter() - started


def explain(runtime: Runtime, task_id: str) -> dict[str, list[str]]:
    """Return the query plans of the hot queries on the loaded store."""
    now = SystemClock().now().isoformat()
    postgres = runtime.database.dialect == "postgresql"
    prefix = "EXPLAIN " if postgres else "EXPLAIN QUERY PLAN "
    # As store/leases.py's revoked_since spells it on each dialect.
    feed_state = "state" if postgres else "state || ''"
    queries = {
        "close a task (leases of one task)": (
            "SELECT id FROM gp_leases WHERE task_id = :task "
            "AND state IN ('pending', 'active')"
        ),
        "sweep (live leases past expiry)": (
            "SELECT id FROM gp_leases WHERE state IN ('pending', 'active') "
            "AND expires_at <= :now LIMIT 1000"
        ),
        "revocation feed (revoked since)": (
            "SELECT id FROM gp_leases WHERE kind = 'access_token' "  # noqa: S608 - constants
            f"AND {feed_state} = 'revoked' AND revoked_at > :now "
            "ORDER BY revoked_at, id LIMIT 500"
        ),
        "lease by handle (introspection)": (
            "SELECT id FROM gp_leases WHERE handle = :task"
        ),
        "live lease gauge (count)": (
            "SELECT count(*) FROM gp_leases WHERE state IN ('pending', 'active')"
        ),
    }
    plans: dict[str, list[str]] = {}
    with runtime.database.reading() as conn:
        for name, sql in queries.items():
            rows = conn.execute(text(prefix + sql), {"task": task_id, "now": now})
            plans[name] = [" ".join(str(v) for v in row) for row in rows]
    return plans


def _task_id(task_token: str) -> str:
    payload = task_token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return str(claims["txn"])


async def _open(runtime: Runtime, key: DPoPKey) -> str:
    settings = runtime.settings
    identity = json.loads((settings.server.state_dir / "demo-agent.json").read_text())
    form = open_task_form(identity, settings.server.issuer)
    opened = await runtime.broker.tokens.exchange(
        parse_token_exchange(parse_form(urlencode(form).encode("ascii"))),
        dpop_proof=key.proof("POST", settings.token_endpoint),
    )
    return str(opened.body["access_token"])


async def issuance_rate(runtime: Runtime, requests: int) -> dict[str, float]:
    """Exchange ``requests`` access tokens one at a time, the sweeper beside them."""
    key = DPoPKey.generate("ES256")
    task_token = await _open(runtime, key)
    body = access_body(task_token)
    endpoint = runtime.settings.token_endpoint
    proofs = [key.proof("POST", endpoint) for _ in range(requests + 50)]
    sweeps: list[float] = []

    async def one(proof: str) -> None:
        exchange = parse_token_exchange(parse_form(body))
        answer = await runtime.broker.tokens.exchange(exchange, dpop_proof=proof)
        if "access_token" not in answer.body:
            raise RuntimeError("no access token")

    for proof in proofs[:50]:
        await one(proof)
    done = anyio.Event()

    async def sweeper() -> None:
        wait = 0.25  # the first sweep early, so that every round has some
        while not done.is_set():
            with anyio.move_on_after(wait):
                await done.wait()
            wait = SWEEP_INTERVAL
            if done.is_set():
                return
            started = time.perf_counter()
            await runtime.broker.sweeper.sweep()
            sweeps.append(time.perf_counter() - started)

    async with anyio.create_task_group() as group:
        group.start_soon(sweeper)
        started = time.perf_counter()
        for proof in proofs[50:]:
            await one(proof)
        wall = time.perf_counter() - started
        done.set()
    return {
        "requests": requests,
        "per_second": round(requests / wall, 1),
        "sweeps": len(sweeps),
        "sweep_max_ms": round(max(sweeps, default=0.0) * 1000, 1),
    }


async def close_with_leases(runtime: Runtime, count: int) -> dict[str, float]:
    """Open a task, give it ``count`` live leases, and time closing it."""
    task_token = await _open(runtime, DPoPKey.generate("ES256"))
    task_id = _task_id(task_token)
    bulk_load(runtime, count, expires_in=dt.timedelta(minutes=10), task_id=task_id)
    started = time.perf_counter()
    await runtime.broker.closing.close_task(task_id, actor="bench", reason="bench")
    seconds = time.perf_counter() - started
    with runtime.database.reading() as conn:
        left = conn.execute(
            text(
                "SELECT count(*) FROM gp_leases WHERE task_id = :t AND state = 'active'"
            ),
            {"t": task_id},
        ).scalar_one()
    if left:
        raise RuntimeError(f"{left} leases still active after the close")
    return {"leases": count, "seconds": round(seconds, 3)}


async def sweep_expiries(runtime: Runtime, count: int) -> dict[str, float]:
    """Expire ``count`` overdue leases with the broker's sweep; time it."""
    bulk_load(runtime, count, expires_in=dt.timedelta(seconds=-1))
    started = time.perf_counter()
    sweeps, expired, slowest = 0, 0, 0.0
    while expired < count:
        one = time.perf_counter()
        _, ended = await runtime.broker.sweeper.sweep()
        slowest = max(slowest, time.perf_counter() - one)
        sweeps += 1
        expired += ended
        if ended == 0:
            raise RuntimeError("the sweep stopped before every lease expired")
    work = time.perf_counter() - started
    per_sweep = expired / sweeps
    return {
        "leases": count,
        "sweeps": sweeps,
        "work_seconds": round(work, 2),
        "slowest_sweep_ms": round(slowest * 1000, 1),
        # At the job's interval, a sweep of at most 1,000 leases every 2 s (plus
        # the sweep's own time) is the rate the broker can expire leases at.
        "capacity_per_minute": round(60 / (SWEEP_INTERVAL + work / sweeps) * per_sweep),
    }


_STARTUP = """
import json, resource, sys, time
from pathlib import Path
from gatepass.broker import build_runtime
from gatepass.config import load_settings
settings = load_settings(Path(sys.argv[1]))
started = time.perf_counter()
runtime = build_runtime(settings)
seconds = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
runtime.database.dispose()
print(json.dumps({"seconds": round(seconds, 2), "peak_mb": round(peak, 1)}))
"""


def startup(config: Path) -> dict[str, float]:
    """Start a broker on ``config`` in a fresh process; its time and peak memory."""
    done = subprocess.run(
        [sys.executable, "-c", _STARTUP, str(config)],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _config(workdir: Path, store: str | None) -> Path:
    config = workdir / "gatepass.toml"
    text_ = render_config(workdir / "state", 8400)
    if store is not None:
        text_ += f'\n[store]\nurl = "{store}"\npool_size = 4\n'
    config.write_text(text_, encoding="utf-8")
    return config


def _interleaved(
    small: Runtime, large: Runtime, requests: int, rounds: int = 4
) -> dict[str, Any]:
    """Measure both stores in alternating rounds (the machine's load drifts)."""
    per_round = max(requests // rounds, 50)
    runs: dict[str, list[dict[str, float]]] = {"small": [], "large": []}
    for _ in range(rounds):
        runs["small"].append(anyio.run(issuance_rate, small, per_round))
        runs["large"].append(anyio.run(issuance_rate, large, per_round))

    def median(side: str) -> float:
        return round(statistics.median(run["per_second"] for run in runs[side]), 1)

    return {
        "rounds": rounds,
        "requests_per_round": per_round,
        "with_1000": {
            "per_second": median("small"),
            "sweep_max_ms": max(r["sweep_max_ms"] for r in runs["small"]),
            "rounds": [r["per_second"] for r in runs["small"]],
        },
        "with_many": {
            "per_second": median("large"),
            "sweep_max_ms": max(r["sweep_max_ms"] for r in runs["large"]),
            "rounds": [r["per_second"] for r in runs["large"]],
        },
        "ratio": round(median("large") / median("small"), 2),
    }


def measure_store(
    name: str, stores: tuple[str | None, str | None], *, live: int, requests: int
) -> dict[str, Any]:
    """Take every measurement on one kind of store (two databases of it)."""
    workdirs = [
        Path(tempfile.mkdtemp(prefix=f"gatepass-scale-{name}-{side}-"))
        for side in ("small", "large")
    ]
    try:
        configs = [
            _config(workdir, store)
            for workdir, store in zip(workdirs, stores, strict=True)
        ]
        empty_start = startup(configs[1])
        small = build_runtime(load_settings(configs[0]))
        large = build_runtime(load_settings(configs[1]))
        try:
            bulk_load(small, 1000, expires_in=dt.timedelta(hours=6))
            console.print(f"  {name}: loading {live:,} live leases ...", style="dim")
            load_seconds = bulk_load(large, live, expires_in=dt.timedelta(hours=6))
            issuance = _interleaved(small, large, requests)
            close = anyio.run(close_with_leases, large, 1000)
            sweep = anyio.run(sweep_expiries, large, 10_000)
            plans = explain(large, "tsk_bench1")
        finally:
            small.database.dispose()
            large.database.dispose()
        loaded_start = startup(configs[1])
    finally:
        for workdir in workdirs:
            shutil.rmtree(workdir, ignore_errors=True)
    return {
        "store": name,
        "live_leases": live,
        "bulk_load": {
            "rows": live,
            "seconds": round(load_seconds, 1),
            "rows_per_second": round(live / load_seconds),
        },
        "issuance": issuance,
        "close": close,
        "startup": {"empty": empty_start, "loaded": loaded_start},
        "sweeper": sweep,
        "explain": plans,
    }


def _postgres_database() -> tuple[str, str] | None:
    """Create a scratch database; return (SQLAlchemy URL, name), or None."""
    try:
        import psycopg  # noqa: PLC0415

        name = f"gatepass_scale_{secrets.token_hex(6)}"
        with psycopg.connect(POSTGRES, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except Exception:  # noqa: BLE001 - no PostgreSQL: measure SQLite only
        return None
    base = POSTGRES.rsplit("/", 1)[0].replace(
        "postgresql://", "postgresql+psycopg://", 1
    )
    return f"{base}/{name}", name


def _drop(name: str) -> None:
    import psycopg  # noqa: PLC0415

    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _verdict(ok: bool) -> str:
    return "[green]PASS" if ok else "[red]MISS"


def _table(title: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    table = Table(title=title)
    for column in (*columns, "verdict"):
        table.add_column(column, justify="right")
    for row in rows:
        *cells, ok = row
        table.add_row(*(str(cell) for cell in cells), _verdict(ok))
    console.print(table)


def report(results: list[dict[str, Any]]) -> bool:
    """Print one table per aim; return whether every aim passed."""
    issuance = [
        (
            r["store"],
            r["issuance"]["with_1000"]["per_second"],
            r["issuance"]["with_many"]["per_second"],
            f"{r['live_leases']:,}",
            r["issuance"]["ratio"],
            r["issuance"]["with_many"]["sweep_max_ms"],
            r["issuance"]["ratio"] >= 0.8,
        )
        for r in results
    ]
    _table(
        "issuance with N live leases (aim: >= 0.8 x the rate with 1,000)",
        ("store", "1,000: req/s", "N: req/s", "N", "ratio", "slowest sweep ms"),
        issuance,
    )
    close = [
        (r["store"], r["close"]["seconds"], r["close"]["seconds"] <= 1) for r in results
    ]
    _table("closing a task with 1,000 leases (aim: <= 1 s)", ("store", "s"), close)
    startup_rows = [
        (
            r["store"],
            r["startup"]["empty"]["seconds"],
            r["startup"]["empty"]["peak_mb"],
            r["startup"]["loaded"]["seconds"],
            r["startup"]["loaded"]["peak_mb"],
            r["startup"]["loaded"]["peak_mb"] - r["startup"]["empty"]["peak_mb"] <= 50,
        )
        for r in results
    ]
    _table(
        "start-up with N live leases (aim: not loaded, peak <= empty + 50 MB)",
        ("store", "empty s", "empty MB", "loaded s", "loaded MB"),
        startup_rows,
    )
    sweeps = [
        (
            r["store"],
            r["sweeper"]["sweeps"],
            r["sweeper"]["work_seconds"],
            r["sweeper"]["slowest_sweep_ms"],
            f"{r['sweeper']['capacity_per_minute']:,}",
            r["sweeper"]["capacity_per_minute"] >= 10_000,
        )
        for r in results
    ]
    _table(
        "sweeper: 10,000 expiries (aim: capacity >= 10,000 a minute)",
        ("store", "sweeps", "work s", "slowest sweep ms", "capacity / min"),
        sweeps,
    )
    for r in results:
        console.print(f"[bold]{r['store']}[/bold] query plans on the loaded store:")
        for name, lines in r["explain"].items():
            console.print(f"  {name}: " + " | ".join(lines))
    return all(
        row[-1] for table in (issuance, close, startup_rows, sweeps) for row in table
    )


def main() -> int:
    """Run the bench; print and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument(
        "--quick", action="store_true", help="100,000 leases, fewer requests"
    )
    args = parser.parse_args()
    live = 100_000 if args.quick else 1_000_000
    requests = 600 if args.quick else 2000
    results = [measure_store("sqlite", (None, None), live=live, requests=requests)]
    scratch = [_postgres_database(), _postgres_database()]
    if scratch[0] is None or scratch[1] is None:
        console.print("[yellow]PostgreSQL is not reachable: SQLite only")
    else:
        try:
            urls = (scratch[0][0], scratch[1][0])
            results.append(
                measure_store("postgresql", urls, live=live, requests=requests)
            )
        finally:
            for found in scratch:
                _drop(found[1])
    passed = report(results)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "date": SystemClock().now().isoformat(timespec="seconds"),
                "machine": {
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                    "load": os.getloadavg(),
                },
                "quick": args.quick,
                "stores": results,
            },
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )
    console.print(f"Wrote {RESULTS.relative_to(BENCH.parent)}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
