"""
Several broker processes on one PostgreSQL: throughput and revocation reach.

Needs PostgreSQL at 127.0.0.1:5432 and wrk. Two measurements, each on a scratch
database:

1. **throughput** at 1, 2 and 4 workers: ``gatepass serve --workers N`` on
   PostgreSQL, the access-token exchange loaded by wrk at 64 connections (a fresh
   DPoP proof per request, each sent once, as in ``bench/issuance.py``).
2. **revocation reach**: three replicas (three ``gatepass serve`` processes, one
   issuer, one database) and, following each replica's revocation stream, the
   resource-server library's :class:`gatepass.verify.RevocationFeed`. Each trial
   opens a task at one replica, takes an access token for it, closes the task at
   the next replica, and times until the token is seen revoked by the follower of
   every replica. Aim: p99 <= 500 ms over 1,000 trials.

``--quick``: 5 s phases and 200 trials. Prints a table per aim and writes
``bench/results/replicas.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import psycopg
from rich.console import Console
from rich.table import Table

import harness
from broker_config import access_body, open_task_form, render_config
from gatepass.clock import SystemClock
from gatepass.tokens import DPoPKey
from gatepass.verify import RevocationFeed
from harness import (
    Load,
    Processes,
    ProofFactory,
    free_port,
    machine,
    run_wrk,
    write_requests,
)

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results" / "replicas.json"
POSTGRES = os.environ.get(
    "GATEPASS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
GATEPASS = str(Path(sys.executable).with_name("gatepass"))
CONNECTIONS = 64
WARMUP_SECONDS = 3
# Four workers each import gatepass and build a broker: slow on a busy machine.
harness.START_TIMEOUT = 180.0
console = Console(width=120)


def scratch_database() -> tuple[str, str]:
    """Create a database; return its SQLAlchemy URL and name."""
    name = f"gatepass_replicas_{secrets.token_hex(6)}"
    with psycopg.connect(POSTGRES, autocommit=True, connect_timeout=3) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES.rsplit("/", 1)[0].replace(
        "postgresql://", "postgresql+psycopg://", 1
    )
    return f"{base}/{name}", name


def drop_database(name: str) -> None:
    """Drop a scratch database."""
    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def write_config(
    path: Path, *, state: Path, port: int, issuer_port: int, store: str
) -> None:
    """Write a bench broker's configuration on PostgreSQL."""
    text = render_config(state, port).replace(
        f'issuer = "http://127.0.0.1:{port}"',
        f'issuer = "http://127.0.0.1:{issuer_port}"',
    )
    text += f'\n[store]\nurl = "{store}"\npool_size = 8\n'
    path.write_text(text, encoding="utf-8")


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    claims: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return claims


def open_task(url: str, issuer: str, state: Path) -> tuple[DPoPKey, str]:
    """Open a task at ``url``; return its key and task token."""
    identity = json.loads((state / "demo-agent.json").read_text())
    key = DPoPKey.generate("ES256")
    answer = httpx.post(
        f"{url}/token",
        content=urlencode(open_task_form(identity, issuer)).encode("ascii"),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "DPoP": key.proof("POST", f"{issuer}/token"),
        },
        timeout=30,
    )
    answer.raise_for_status()
    return key, str(answer.json()["access_token"])


def throughput(workdir: Path, store: str, workers: int, seconds: int) -> dict[str, Any]:
    """Serve with ``workers`` processes; load the exchange with wrk."""
    port = free_port()
    state = workdir / "state"
    config = workdir / f"workers{workers}.toml"
    write_config(config, state=state, port=port, issuer_port=port, store=store)
    processes = Processes()
    try:
        server = processes.start(
            f"broker-{workers}",
            [GATEPASS, "serve", "-c", str(config), "--workers", str(workers)],
            port,
            workdir,
        )
        key, task_token = open_task(server.url, server.url, state)
        body = access_body(task_token)
        factory = ProofFactory(key, f"{server.url}/token")
        try:
            count = int(1.5 * 1500 * workers * seconds) + 2000
            requests_file = workdir / f"requests-{workers}.txt"
            write_requests(requests_file, body, factory.sign(count))
            warm = int(1.5 * 1500 * workers * WARMUP_SECONDS) + 500
            warmup_file = workdir / f"warmup-{workers}.txt"
            write_requests(warmup_file, body, factory.sign(warm))
        finally:
            factory.close()
        # Every worker is up once it takes connections: a short phase first.
        run_wrk(
            server,
            Load(warmup_file, "once", warm),
            connections=CONNECTIONS,
            seconds=WARMUP_SECONDS,
            workdir=workdir,
        )
        phase = run_wrk(
            server,
            Load(requests_file, "once", count),
            connections=CONNECTIONS,
            seconds=seconds,
            workdir=workdir,
        )
    finally:
        processes.stop_all()
    record = phase.to_json()
    return {
        "workers": workers,
        "requests_per_second": record["requests_per_second"],
        "latency_ms": record["latency_ms"],
        "valid": record["valid"],
        "problems": record["problems"],
    }


async def _trials(
    urls: list[str], issuer: str, state: Path, trials: int
) -> dict[str, Any]:
    admin = (state / "admin.token").read_text().strip()
    introspect = (state / "introspect.token").read_text().strip()
    feeds = [RevocationFeed(url, lambda: introspect) for url in urls]
    for feed in feeds:
        await feed.start()
    try:
        for feed in feeds:
            if not await feed.wait_connected(30):
                raise RuntimeError("a revocation stream did not connect")
        identity = json.loads((state / "demo-agent.json").read_text())
        every: list[float] = []
        remote: list[float] = []
        async with httpx.AsyncClient(timeout=30) as http:
            for trial in range(trials):
                at, closer = urls[trial % 3], urls[(trial + 1) % 3]
                key = DPoPKey.generate("ES256")
                opened = await http.post(
                    f"{at}/token",
                    content=urlencode(open_task_form(identity, issuer)).encode(),
                    headers={
                        "Content-Type": "application/x-www-form-urlencoded",
                        "DPoP": key.proof("POST", f"{issuer}/token"),
                    },
                )
                task_token = str(opened.json()["access_token"])
                granted = await http.post(
                    f"{at}/token",
                    content=access_body(task_token),
                    headers={
                        "Content-Type": "application/x-www-form-urlencoded",
                        "DPoP": key.proof("POST", f"{issuer}/token"),
                    },
                )
                jti = str(_claims(str(granted.json()["access_token"]))["jti"])
                task_id = _claims(task_token)["txn"]
                started = time.perf_counter()
                closed = await http.post(
                    f"{closer}/v1/tasks/{task_id}/close",
                    headers={"Authorization": f"Bearer {admin}"},
                    json={"reason": "bench"},
                )
                if closed.status_code != 200:
                    raise RuntimeError(f"close failed: {closed.text}")

                async def seen(
                    feed: RevocationFeed, jti: str = jti, started: float = started
                ) -> float:
                    if not await feed.wait_revoked(jti, 10.0):
                        raise RuntimeError("a follower never saw the revocation")
                    return time.perf_counter() - started

                times = await asyncio.gather(*(seen(feed) for feed in feeds))
                every.append(max(times))
                remote.extend(
                    t for url, t in zip(urls, times, strict=True) if url != closer
                )
    finally:
        for feed in feeds:
            await feed.aclose()
    return {
        "trials": trials,
        "measured_from": "the close request being sent, at one replica",
        "every_replica": _percentiles(every),
        "other_replicas": _percentiles(remote),
    }


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 1),
        "p99_ms": round(ordered[max(0, int(len(ordered) * 0.99) - 1)] * 1000, 1),
        "max_ms": round(ordered[-1] * 1000, 1),
    }


def revocation_reach(workdir: Path, store: str, trials: int) -> dict[str, Any]:
    """Three replicas and a follower of each; time revocations across them."""
    ports = [free_port() for _ in range(3)]
    issuer = f"http://127.0.0.1:{ports[0]}"
    state = workdir / "state"
    processes = Processes()
    try:
        urls = []
        for index, port in enumerate(ports):
            config = workdir / f"replica{index}.toml"
            write_config(
                config, state=state, port=port, issuer_port=ports[0], store=store
            )
            server = processes.start(
                f"replica-{index}",
                [GATEPASS, "serve", "-c", str(config)],
                port,
                workdir,
            )
            urls.append(server.url)
        return asyncio.run(_trials(urls, issuer, state, trials))
    finally:
        processes.stop_all()


def main() -> int:
    """Run the bench; print and write the results."""
    parser = argparse.ArgumentParser(description="broker replicas on PostgreSQL")
    parser.add_argument("--quick", action="store_true", help="5 s phases, 200 trials")
    args = parser.parse_args()
    seconds, trials = (5, 200) if args.quick else (8, 1000)
    if shutil.which("wrk") is None:
        console.print("[bold red]wrk is not installed: apt-get install -y wrk")
        return 2
    try:
        store, name = scratch_database()
    except psycopg.Error as error:
        console.print(f"[bold red]PostgreSQL is not reachable: {type(error).__name__}")
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="gatepass-replicas-"))
    try:
        loads = [throughput(workdir, store, workers, seconds) for workers in (1, 2, 4)]
        reach = revocation_reach(workdir, store, trials)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        drop_database(name)
    table = Table(
        title=f"access-token exchange on PostgreSQL, wrk {CONNECTIONS} connections"
    )
    for column in ("workers", "req/s", "p50 ms", "p99 ms", "valid"):
        table.add_column(column, justify="right")
    for row in loads:
        table.add_row(
            str(row["workers"]),
            str(row["requests_per_second"]),
            str(row["latency_ms"]["p50"]),
            str(row["latency_ms"]["p99"]),
            "yes" if row["valid"] else "; ".join(row["problems"]),
        )
    console.print(table)
    ok = reach["every_replica"]["p99_ms"] <= 500
    table = Table(
        title=f"revocation reach, 3 replicas, {reach['trials']} trials "
        "(aim: p99 <= 500 ms)"
    )
    for column in ("seen by", "p50 ms", "p99 ms", "max ms", "verdict"):
        table.add_column(column, justify="right")
    for label, key in (
        ("every replica's follower", "every_replica"),
        ("the other replicas' followers", "other_replicas"),
    ):
        figures = reach[key]
        table.add_row(
            label,
            str(figures["p50_ms"]),
            str(figures["p99_ms"]),
            str(figures["max_ms"]),
            ("[green]PASS" if ok else "[red]MISS") if key == "every_replica" else "",
        )
    console.print(table)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "date": SystemClock().now().isoformat(timespec="seconds"),
                "machine": machine(),
                "quick": args.quick,
                "throughput": loads,
                "revocation_reach": reach,
            },
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )
    console.print(f"Wrote {RESULTS.relative_to(BENCH.parent)}")
    return 0 if ok and all(row["valid"] for row in loads) else 1


if __name__ == "__main__":
    sys.exit(main())
