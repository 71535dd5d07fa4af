"""
The proxy's upstream client, chosen by numbers: httpx, httpcore and aiohttp.

Starts the bench upstream (``proxy_upstream.py``: a small JSON answer behind an
API key) and, in this process on uvloop, sends the same GET through each library
from 16 concurrent tasks, reading each body to the end as the proxy's relay does
(aiohttp with automatic decompression off). Three interleaved rounds; the table
shows each library's median requests per second and CPU time per request of this
process. Writes ``bench/results/upstream_clients.json``.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import httpcore
import httpx
import uvloop
from rich.console import Console
from rich.table import Table

from gatepass.clock import SystemClock
from harness import Processes, free_port, machine

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results" / "upstream_clients.json"
REQUESTS = 3000
CONCURRENCY = 16
ROUNDS = 3
console = Console(width=120)


async def _measure(get: Callable[[], Awaitable[None]]) -> dict[str, float]:
    async def worker(count: int) -> None:
        for _ in range(count):
            await get()

    await worker(50)
    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker(REQUESTS // CONCURRENCY) for _ in range(CONCURRENCY)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"per_second": REQUESTS / wall, "cpu_us": cpu / REQUESTS * 1e6}


async def _round(url: str, key: str) -> dict[str, dict[str, float]]:
    results: dict[str, dict[str, float]] = {}
    async with httpx.AsyncClient(trust_env=False) as client:

        async def via_httpx() -> None:
            async with client.stream("GET", url, headers={"X-Api-Key": key}) as answer:
                async for _ in answer.aiter_raw():
                    pass

        results["httpx"] = await _measure(via_httpx)
    async with httpcore.AsyncConnectionPool() as pool:

        async def via_httpcore() -> None:
            headers = [(b"x-api-key", key.encode())]
            async with pool.stream("GET", url, headers=headers) as answer:
                async for _ in answer.aiter_stream():
                    pass

        results["httpcore"] = await _measure(via_httpcore)
    async with aiohttp.ClientSession(auto_decompress=False) as session:

        async def via_aiohttp() -> None:
            async with session.get(url, headers={"X-Api-Key": key}) as answer:
                async for _ in answer.content.iter_any():
                    pass

        results["aiohttp"] = await _measure(via_aiohttp)
    return results


def main() -> int:
    """Run the comparison; print and write it."""
    key = secrets.token_urlsafe(24)
    os.environ["BENCH_UPSTREAM_KEY"] = key
    workdir = Path(tempfile.mkdtemp(prefix="gatepass-clients-"))
    processes = Processes()
    port = free_port()
    try:
        upstream = processes.start(
            "upstream",
            [sys.executable, "-m", "uvicorn", "proxy_upstream:app", "--app-dir",
             str(BENCH), "--port", str(port), "--log-level", "warning",
             "--no-access-log"],
            port,
            workdir,
        )  # fmt: skip
        url = f"{upstream.url}/api/v1/tickets"
        rounds = [uvloop.run(_round(url, key)) for _ in range(ROUNDS)]
    finally:
        processes.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)
    summary = {
        name: {
            "per_second": round(
                statistics.median(r[name]["per_second"] for r in rounds)
            ),
            "cpu_us_per_request": round(
                statistics.median(r[name]["cpu_us"] for r in rounds)
            ),
        }
        for name in ("httpx", "httpcore", "aiohttp")
    }
    table = Table(title=f"upstream client, {CONCURRENCY} in flight, {ROUNDS} rounds")
    for column in ("library", "req/s", "CPU µs / request"):
        table.add_column(column, justify="right")
    for name, figures in summary.items():
        table.add_row(
            name, str(figures["per_second"]), str(figures["cpu_us_per_request"])
        )
    console.print(table)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "date": SystemClock().now().isoformat(timespec="seconds"),
                "machine": machine(),
                "requests_per_round": REQUESTS,
                "concurrency": CONCURRENCY,
                "summary": summary,
                "rounds": rounds,
            },
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )
    console.print(f"Wrote {RESULTS.relative_to(BENCH.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
