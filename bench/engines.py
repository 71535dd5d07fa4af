"""
Issue and revoke rates of each secret engine at 1 and 16 concurrent clients.

Runs the engines directly (no HTTP) against the real PostgreSQL and Redis on
127.0.0.1 and a throwaway SSH CA, prints a table and writes
``bench/results/engines.json``. Every credential it creates is revoked; the
PostgreSQL database it creates is dropped at the end.

    .venv/bin/python bench/engines.py
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import psycopg
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from rich.console import Console
from rich.table import Table

from gatepass.clock import SystemClock
from gatepass.engines import (
    EngineContext,
    IssueRequest,
    SecretEngine,
    credential_name,
    new_installation_id,
)
from gatepass.engines.postgres import PostgresEngine
from gatepass.engines.redis import RedisEngine
from gatepass.engines.ssh import SSHEngine
from gatepass.ids import new_lease_id
from gatepass.models import Target
from gatepass.sealing import Sealer

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results" / "engines.json"
POSTGRES_URL = os.environ.get(
    "GATEPASS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("GATEPASS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
CONCURRENCY = (1, 16)
OPERATIONS = 200
console = Console()


def target(name: str, kind: str, uri: str) -> Target:
    """Build a target of one engine kind."""
    return Target(
        name=name,
        uri=uri,
        kind=kind,
        environment="bench",
        tenant="bench",
        risk="low",
        actions=("read",),
        max_ttl=dt.timedelta(minutes=15),
    )


def ssh_public_key() -> str:
    """Return a fresh Ed25519 public key in OpenSSH format."""
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    return key.public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode()


async def run_phase(
    engine: SecretEngine, concurrency: int, public_key: str | None
) -> dict[str, Any]:
    """Issue OPERATIONS credentials, then revoke them, ``concurrency`` at a time."""
    clock = SystemClock()
    handles: list[str] = []
    issue_latency: list[float] = []
    revoke_latency: list[float] = []

    async def timed(sink: list[float], call: Callable[[], Awaitable[Any]]) -> Any:  # noqa: ANN401
        started = time.perf_counter()
        result = await call()
        sink.append(time.perf_counter() - started)
        return result

    async def issue_one() -> None:
        lease_id = new_lease_id()
        request = IssueRequest(
            lease_id=lease_id,
            name=credential_name(lease_id),
            actions=("read",),
            principal="agt_bench",
            expires_at=clock.now() + dt.timedelta(minutes=10),
            public_key=public_key,
        )
        issued = await timed(issue_latency, lambda: engine.issue(request))
        handles.append(issued.handle)

    async def in_waves(jobs: list[Callable[[], Awaitable[None]]]) -> float:
        limiter = anyio.CapacityLimiter(concurrency)
        started = time.perf_counter()

        async def guarded(job: Callable[[], Awaitable[None]]) -> None:
            async with limiter:
                await job()

        async with anyio.create_task_group() as group:
            for job in jobs:
                group.start_soon(guarded, job)
        return time.perf_counter() - started

    issue_wall = await in_waves([issue_one] * OPERATIONS)
    revoke_jobs = [
        (lambda handle=handle: timed(revoke_latency, lambda: engine.revoke(handle)))
        for handle in list(handles)
    ]
    revoke_wall = await in_waves(revoke_jobs)  # type: ignore[arg-type]

    def summary(samples: list[float], wall: float) -> dict[str, float]:
        ordered = sorted(samples)
        return {
            "per_second": round(len(samples) / wall, 1),
            "p50_ms": round(statistics.median(ordered) * 1000, 2),
            "p99_ms": round(ordered[int(len(ordered) * 0.99) - 1] * 1000, 2),
        }

    return {
        "concurrency": concurrency,
        "operations": OPERATIONS,
        "issue": summary(issue_latency, issue_wall),
        "revoke": summary(revoke_latency, revoke_wall),
    }


async def bench(workdir: Path, database: str) -> dict[str, Any]:
    """Measure every engine; return the results by engine kind."""
    context = EngineContext(
        state_dir=workdir,
        sealer=Sealer([Fernet.generate_key()]),
        clock=SystemClock(),
        installation_id=new_installation_id(),
    )
    admin_url = POSTGRES_URL.rsplit("/", 1)[0] + f"/{database}"
    engines: dict[str, tuple[SecretEngine, str | None]] = {
        "postgres": (
            PostgresEngine.from_target(
                target("bench-pg", "postgres", f"postgresql://127.0.0.1/{database}"),
                {
                    "admin_url": admin_url,
                    "grants": {
                        "read": [
                            {"schema": "app", "privileges": ["SELECT"], "tables": ["*"]}
                        ]
                    },
                },
                context,
            ),
            None,
        ),
        "redis": (
            RedisEngine.from_target(
                target("bench-redis", "redis", "redis://127.0.0.1:6379/"),
                {
                    "admin_url": REDIS_URL,
                    "grants": {"read": {"keys": ["bench:*"], "categories": ["+@read"]}},
                },
                context,
            ),
            None,
        ),
        "ssh": (
            SSHEngine.from_target(
                target("bench-ssh", "ssh", "ssh://bench/"),
                {"principals": {"read": ["bench"]}},
                context,
            ),
            ssh_public_key(),
        ),
    }
    results: dict[str, Any] = {}
    for kind, (engine, public_key) in engines.items():
        await engine.check()
        results[kind] = [
            await run_phase(engine, concurrency, public_key)
            for concurrency in CONCURRENCY
        ]
        await engine.aclose()
    return results


def main() -> None:
    """Run the bench, print the table, write the JSON."""
    database = f"gatepass_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    try:
        admin_url = POSTGRES_URL.rsplit("/", 1)[0] + f"/{database}"
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute("CREATE SCHEMA app")
            conn.execute("CREATE TABLE app.t (id int)")
        with tempfile.TemporaryDirectory(prefix="gatepass-engines-") as workdir:
            results = anyio.run(bench, Path(workdir), database)
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    table = Table(title="Secret engines: issue and revoke (direct, no HTTP)")
    console.width = max(console.width, 120)
    for column in ("engine", "clients", "issue/s", "issue p50 ms", "issue p99 ms"):
        table.add_column(column, justify="right")
    for column in ("revoke/s", "revoke p50 ms", "revoke p99 ms"):
        table.add_column(column, justify="right")
    for kind, phases in results.items():
        for phase in phases:
            table.add_row(
                kind,
                str(phase["concurrency"]),
                str(phase["issue"]["per_second"]),
                str(phase["issue"]["p50_ms"]),
                str(phase["issue"]["p99_ms"]),
                str(phase["revoke"]["per_second"]),
                str(phase["revoke"]["p50_ms"]),
                str(phase["revoke"]["p99_ms"]),
            )
    console.print(table)
    report = {
        "date": SystemClock().now().isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "operations_per_phase": OPERATIONS,
        "results": results,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    console.print(f"Wrote {RESULTS.relative_to(BENCH.parent)}")


if __name__ == "__main__":
    main()
