"""
Access-token issuance over HTTP: the full DPoP-bound token exchange against its ceiling.

``make bench`` runs this. In one run (about two minutes) it

1. starts the broker as its own process (``gatepass serve -c <generated toml>``, a
   fresh SQLite store in a temporary directory; see ``broker_config.py``), opens one
   task for the demo agent, and measures the access-token request (task token as
   ``subject_token``, ``resource`` = the tickets target, ``scope=read``, a fresh DPoP
   proof by the task key per request) with wrk at 1, 16 and 64 connections;
2. measures the ceiling: ``ceiling_app.py``, the same server stack signing one ES256
   JWT per request and nothing else, with the same wrk settings and request;
3. prints the full exchange as a share of the ceiling and checks the aims;
4. measures where the time of one request goes, in-process (``stages.py``);
5. writes everything to ``bench/results/issuance.json``.

DPoP proofs are single-use, so they are signed before each phase (their ``iat`` is
the signing time; the bench broker accepts proofs up to 600 s old) and handed to wrk
through ``wrk_token.lua``, which sends each at most once; a phase that runs out of
proofs, or sees a single non-200 answer or socket error, is INVALID.

Only 127.0.0.1 is contacted. Servers are stopped and temporary files deleted at the
end, also on Ctrl-C or an error.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import datetime as dt
import importlib.metadata
import json
import math
import multiprocessing
import os
import platform
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlencode

import httpx
from rich.console import Console
from rich.table import Table

from broker_config import (
    DPOP_MAX_AGE_SECONDS,
    TARGET_URI,
    TASK_TTL_SECONDS,
    access_body,
    open_task_form,
    render_config,
)
from ceiling_app import UVICORN_OPTIONS
from gatepass.clock import SystemClock
from gatepass.tokens import DPoPKey, load_private_key, private_jwk
from stages import measure_stages

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results" / "issuance.json"
LUA = BENCH / "wrk_token.lua"
CONNECTIONS = (1, 16, 64)
PHASE_SECONDS = 10
WARMUP_SECONDS = 2
WARMUP_CONNECTIONS = 16
WRK_THREADS = 1
WRK_TIMEOUT = "10s"
PROOF_MARGIN = 1.3
PROOF_SLACK = 500
CEILING_PROOFS = 256
STAGE_ITERATIONS = 3000
START_TIMEOUT = 30.0
AIM_RATIO = 0.40
AIM_P50_MS = 2.0
AIM_TAIL = 3.0

console = Console(highlight=False)
if not console.is_terminal:
    console = Console(highlight=False, width=150)


# ------------------------------------------------------------------ processes


@dataclass
class Server:
    """A server process on 127.0.0.1 and its log file."""

    name: str
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def cpu_seconds(self) -> float:
        """Return the process's user + system CPU time so far (all its threads)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1]
        parts = fields.split()
        ticks = int(parts[11]) + int(parts[12])  # utime, stime (fields 14, 15)
        return ticks / os.sysconf("SC_CLK_TCK")

    def log_tail(self, lines: int = 30) -> str:
        """Return the end of the server's output."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class Processes:
    """Every server this run started, stopped by pid at the end."""

    servers: list[Server] = field(default_factory=list)

    def start(self, name: str, command: list[str], port: int, workdir: Path) -> Server:
        """Start a server and wait until ``/healthz`` answers 200."""
        log = workdir / f"{name}.log"
        with log.open("wb") as output:
            process = subprocess.Popen(
                command,
                cwd=workdir,
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        server = Server(name, process, f"http://127.0.0.1:{port}", log)
        self.servers.append(server)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                msg = f"{name} exited with {process.returncode}:\n{server.log_tail()}"
                raise RuntimeError(msg)
            try:
                if httpx.get(f"{server.url}/healthz", timeout=1.0).status_code == 200:
                    return server
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                msg = f"{name} did not start in {START_TIMEOUT} s:\n{server.log_tail()}"
                raise RuntimeError(msg)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=0.1)  # a pause that notices an early exit

    def stop(self, server: Server) -> None:
        """Terminate one server (SIGTERM, then SIGKILL after 10 s)."""
        process = server.process
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        if server in self.servers:
            self.servers.remove(server)

    def stop_all(self) -> None:
        """Terminate every server still running."""
        for server in list(self.servers):
            self.stop(server)


def free_port() -> int:
    """Return a port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------- proofs

_proof_key: DPoPKey | None = None


def _load_proof_key(jwk: dict[str, Any]) -> None:
    global _proof_key  # noqa: PLW0603 - one key per pool worker
    key, _, algorithm = load_private_key(jwk)
    _proof_key = DPoPKey(key, algorithm)


def _sign_proofs(url: str, count: int) -> list[str]:
    if _proof_key is None:  # pragma: no cover - set by the pool initializer
        raise RuntimeError("no proof key")
    return [_proof_key.proof("POST", url) for _ in range(count)]


class ProofFactory:
    """Signs DPoP proofs by the task key on every core (each proof ~70 µs)."""

    def __init__(self, key: DPoPKey, url: str) -> None:
        """Start a pool of worker processes holding the key."""
        self.url = url
        self.workers = max(os.cpu_count() or 1, 1)
        self._pool = concurrent.futures.ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context("fork"),
            initializer=_load_proof_key,
            initargs=(private_jwk(key.private_key),),
        )

    def sign(self, count: int) -> list[str]:
        """Return ``count`` fresh proofs with distinct ``jti``."""
        chunk = math.ceil(count / (self.workers * 4))
        sizes = [min(chunk, count - start) for start in range(0, count, chunk)]
        proofs: list[str] = []
        for batch in self._pool.map(_sign_proofs, [self.url] * len(sizes), sizes):
            proofs.extend(batch)
        return proofs

    def close(self) -> None:
        """Stop the pool."""
        self._pool.shutdown(wait=True, cancel_futures=True)


def write_requests(path: Path, body: bytes, proofs: list[str]) -> None:
    """Write the wrk input: the body on line 1, then one proof per line."""
    text = body.decode("ascii") + "\n" + "\n".join(proofs) + "\n"
    path.write_text(text, encoding="ascii")


# ------------------------------------------------------------------------ wrk


@dataclass
class Phase:
    """One wrk run and what it measured."""

    server: str
    connections: int
    seconds: int
    result: dict[str, Any]
    server_cpu_percent: float
    wrk_cpu_percent: float
    proofs_prepared: int

    @property
    def rps(self) -> float:
        """Requests per second."""
        return self.result["requests"] / (self.result["duration_us"] / 1e6)

    def latency_ms(self, name: str) -> float:
        """Return a latency figure in milliseconds."""
        return float(self.result["latency_us"][name]) / 1000.0

    @property
    def problems(self) -> list[str]:
        """Why the phase is invalid; empty when it is valid."""
        found: list[str] = []
        result = self.result
        if result["non200"]:
            found.append(f"{result['non200']} non-200 ({result['first_error'][:120]})")
        sockets = {k: v for k, v in result["socket_errors"].items() if v}
        if sockets:
            found.append(f"socket errors {sockets}")
        if result["exhausted_threads"]:
            found.append("ran out of DPoP proofs")
        if result["requests"] == 0:
            found.append("no requests completed")
        return found

    def to_json(self) -> dict[str, Any]:
        """Return the JSON record of the phase."""
        latency = self.result["latency_us"]
        return {
            "server": self.server,
            "connections": self.connections,
            "wrk_threads": WRK_THREADS,
            "seconds": self.seconds,
            "requests": self.result["requests"],
            "requests_per_second": round(self.rps, 1),
            "latency_ms": {k: round(v / 1000.0, 3) for k, v in latency.items()},
            "non200": self.result["non200"],
            "socket_errors": self.result["socket_errors"],
            "proofs_prepared": self.proofs_prepared,
            "proofs_sent": self.result["proofs_sent"],
            "server_cpu_percent": round(self.server_cpu_percent, 1),
            "wrk_cpu_percent": round(self.wrk_cpu_percent, 1),
            "valid": not self.problems,
            "problems": self.problems,
        }


def run_wrk(
    server: Server,
    *,
    connections: int,
    seconds: int,
    requests_file: Path,
    mode: str,
    workdir: Path,
) -> tuple[dict[str, Any], float, float]:
    """Run wrk once; return its JSON result, server CPU % and wrk CPU %."""
    out = workdir / f"wrk-{server.name}-{connections}.json"
    out.unlink(missing_ok=True)
    env = {
        **os.environ,
        "BENCH_REQUESTS": str(requests_file),
        "BENCH_THREADS": str(WRK_THREADS),
        "BENCH_MODE": mode,
        "BENCH_OUT": str(out),
    }
    command = [
        "wrk",
        "-t",
        str(WRK_THREADS),
        "-c",
        str(connections),
        "-d",
        f"{seconds}s",
        "--timeout",
        WRK_TIMEOUT,
        "-s",
        str(LUA),
        server.url,
    ]
    cpu_before = server.cpu_seconds()
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    completed = subprocess.run(
        command, env=env, capture_output=True, timeout=seconds + 60, check=False
    )
    wall = time.perf_counter() - started
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_cpu = (server.cpu_seconds() - cpu_before) / wall * 100
    wrk_cpu = (
        (children.ru_utime - children_before.ru_utime)
        + (children.ru_stime - children_before.ru_stime)
    ) / wall
    if completed.returncode != 0 or not out.exists():
        msg = f"wrk failed ({completed.returncode}): {completed.stderr.decode()[-500:]}"
        raise RuntimeError(msg)
    result: dict[str, Any] = json.loads(out.read_text())
    return result, server_cpu, wrk_cpu * 100


# ---------------------------------------------------------------------- phases


@dataclass
class Context:
    """What the phases share."""

    workdir: Path
    processes: Processes
    body: bytes
    proofs: ProofFactory


def measure_ceiling(context: Context) -> list[Phase]:
    """Start the ceiling app, measure it at every concurrency, stop it."""
    port = free_port()
    server = context.processes.start(
        "ceiling",
        [sys.executable, str(BENCH / "ceiling_app.py"), str(port)],
        port,
        context.workdir,
    )
    try:
        # The ceiling checks no proof: a few, cycled, keep the request the same size.
        requests_file = context.workdir / "ceiling-requests.txt"
        write_requests(requests_file, context.body, context.proofs.sign(CEILING_PROOFS))
        run_wrk(
            server,
            connections=WARMUP_CONNECTIONS,
            seconds=WARMUP_SECONDS,
            requests_file=requests_file,
            mode="cycle",
            workdir=context.workdir,
        )
        phases: list[Phase] = []
        for connections in CONNECTIONS:
            result, server_cpu, wrk_cpu = run_wrk(
                server,
                connections=connections,
                seconds=PHASE_SECONDS,
                requests_file=requests_file,
                mode="cycle",
                workdir=context.workdir,
            )
            phase = Phase(
                "ceiling",
                connections,
                PHASE_SECONDS,
                result,
                server_cpu,
                wrk_cpu,
                CEILING_PROOFS,
            )
            report_phase(phase)
            phases.append(phase)
    finally:
        context.processes.stop(server)
    return phases


def measure_broker(
    context: Context, broker: Server, ceiling: dict[int, float]
) -> list[Phase]:
    """Measure the full exchange at every concurrency; proofs signed per phase."""
    requests_file = context.workdir / "broker-requests.txt"
    top = max(ceiling.values(), default=5000.0)
    count = int(PROOF_MARGIN * top * WARMUP_SECONDS) + PROOF_SLACK
    write_requests(requests_file, context.body, context.proofs.sign(count))
    warmup, _, _ = run_wrk(
        broker,
        connections=WARMUP_CONNECTIONS,
        seconds=WARMUP_SECONDS,
        requests_file=requests_file,
        mode="once",
        workdir=context.workdir,
    )
    if warmup["non200"]:
        console.print(f"[bold red]warm-up saw non-200: {warmup['first_error']}")
    phases: list[Phase] = []
    for connections in CONNECTIONS:
        # Enough proofs for 1.3x the ceiling's rate at this concurrency.
        rate = ceiling.get(connections, top)
        count = int(PROOF_MARGIN * rate * PHASE_SECONDS) + PROOF_SLACK
        started = time.perf_counter()
        write_requests(requests_file, context.body, context.proofs.sign(count))
        console.print(
            f"  signed {count} proofs in {time.perf_counter() - started:.1f} s",
            style="dim",
        )
        result, server_cpu, wrk_cpu = run_wrk(
            broker,
            connections=connections,
            seconds=PHASE_SECONDS,
            requests_file=requests_file,
            mode="once",
            workdir=context.workdir,
        )
        phase = Phase(
            "full exchange",
            connections,
            PHASE_SECONDS,
            result,
            server_cpu,
            wrk_cpu,
            count,
        )
        report_phase(phase)
        phases.append(phase)
    return phases


def open_task(broker: Server, state_dir: Path) -> tuple[DPoPKey, bytes]:
    """Open one task for the demo agent over HTTP; return its key and the body."""
    identity = json.loads((state_dir / "demo-agent.json").read_text())
    key = DPoPKey.generate("ES256")
    endpoint = f"{broker.url}/token"
    form = open_task_form(identity, broker.url)
    response = httpx.post(
        endpoint,
        content=urlencode(form).encode("ascii"),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "DPoP": key.proof("POST", endpoint),
        },
        timeout=10,
    )
    if response.status_code != 200:
        msg = f"opening the task failed: {response.status_code} {response.text}"
        raise RuntimeError(msg)
    task_token = str(response.json()["access_token"])
    body = access_body(task_token)
    # One request by hand, to fail early and clearly if the exchange is refused.
    check = httpx.post(
        endpoint,
        content=body,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "DPoP": key.proof("POST", endpoint),
        },
        timeout=10,
    )
    if check.status_code != 200:
        msg = f"the access-token request failed: {check.status_code} {check.text}"
        raise RuntimeError(msg)
    return key, body


# -------------------------------------------------------------------- report


def report_phase(phase: Phase) -> None:
    """Print one line as soon as a phase ends."""
    line = (
        f"  {phase.server:<13} c={phase.connections:<3} {phase.rps:8.0f} req/s  "
        f"p50 {phase.latency_ms('p50'):6.2f} ms  p99 {phase.latency_ms('p99'):6.2f} ms"
        f"  server CPU {phase.server_cpu_percent:3.0f}%"
    )
    if phase.problems:
        console.print(f"[bold red]{line}  INVALID: {'; '.join(phase.problems)}")
    else:
        console.print(line)


def verdict(ok: bool, *, valid: bool) -> str:
    """Return PASS, MISS or INVALID (a phase the aim needs was invalid)."""
    if not valid:
        return "INVALID"
    return "PASS" if ok else "MISS"


def evaluate_aims(ceiling: list[Phase], full: list[Phase]) -> list[dict[str, Any]]:
    """Check the issue's three aims."""
    by_c = {p.connections: p for p in full}
    ceiling_by_c = {p.connections: p for p in ceiling}
    top = max(CONNECTIONS)
    aims: list[dict[str, Any]] = []
    f_top, c_top = by_c[top], ceiling_by_c[top]
    ratio = f_top.rps / c_top.rps if c_top.rps else 0.0
    aims.append(
        {
            "aim": f"full exchange >= {AIM_RATIO:.0%} of the ceiling's throughput "
            f"({top} connections)",
            "measured": f"{ratio:.1%} ({f_top.rps:.0f} / {c_top.rps:.0f} req/s)",
            "value": round(ratio, 4),
            "verdict": verdict(
                ratio >= AIM_RATIO, valid=not (f_top.problems or c_top.problems)
            ),
        }
    )
    one = by_c[1]
    p50 = one.latency_ms("p50")
    aims.append(
        {
            "aim": f"p50 <= {AIM_P50_MS} ms at 1 client",
            "measured": f"p50 {p50:.2f} ms",
            "value": round(p50, 3),
            "verdict": verdict(p50 <= AIM_P50_MS, valid=not one.problems),
        }
    )
    p50_top, p99_top = f_top.latency_ms("p50"), f_top.latency_ms("p99")
    tail = p99_top / p50_top if p50_top else math.inf
    aims.append(
        {
            "aim": f"p99 <= {AIM_TAIL:g} x p50 at {top} clients",
            "measured": f"p99 {p99_top:.2f} ms = {tail:.2f} x p50 {p50_top:.2f} ms",
            "value": round(tail, 3),
            "verdict": verdict(tail <= AIM_TAIL, valid=not f_top.problems),
        }
    )
    return aims


def print_results(
    phases: list[Phase],
    ratios: dict[int, float],
    aims: list[dict[str, Any]],
    stages: dict[str, Any],
) -> None:
    """Print the tables."""
    table = Table(title="Access-token issuance over HTTP (wrk, 127.0.0.1)")
    for column in ("server", "conns", "req/s", "p50 ms", "p90 ms", "p99 ms"):
        table.add_column(column, justify="right")
    for column in ("p99.9 ms", "max ms", "requests", "non-200", "server CPU", "valid"):
        table.add_column(column, justify="right")
    for phase in phases:
        table.add_row(
            phase.server,
            str(phase.connections),
            f"{phase.rps:,.0f}",
            f"{phase.latency_ms('p50'):.2f}",
            f"{phase.latency_ms('p90'):.2f}",
            f"{phase.latency_ms('p99'):.2f}",
            f"{phase.latency_ms('p99_9'):.2f}",
            f"{phase.latency_ms('max'):.2f}",
            f"{phase.result['requests']:,}",
            str(phase.result["non200"]),
            f"{phase.server_cpu_percent:.0f}%",
            "yes" if not phase.problems else "[bold red]NO",
        )
    console.print(table)
    shares = ", ".join(f"c={c}: {r:.1%}" for c, r in ratios.items())
    console.print(f"Full exchange as a share of the ceiling's throughput: {shares}")
    aim_table = Table(title="Aims")
    for column in ("aim", "measured", "verdict"):
        aim_table.add_column(column)
    for aim in aims:
        style = {"PASS": "green", "MISS": "yellow"}.get(aim["verdict"], "bold red")
        aim_table.add_row(
            aim["aim"], aim["measured"], f"[{style}]{aim['verdict']}[/{style}]"
        )
    console.print(aim_table)
    print_stages(stages)


def print_stages(stages: dict[str, Any]) -> None:
    """Print the in-process breakdown and the profile."""
    threaded, inline = stages["threaded"], stages["inline"]
    table = Table(
        title="Where the time goes: one access-token request in-process (µs, mean)"
    )
    table.add_column("stage")
    table.add_column("as served", justify="right")
    table.add_column("share", justify="right")
    table.add_column("DB inline", justify="right")
    for name, value in threaded["stages_us"].items():
        table.add_row(
            name,
            f"{value:.0f}",
            f"{value / threaded['total_us']:.0%}",
            f"{inline['stages_us'].get(name, 0.0):.0f}",
        )
    for name, value in inline["db_parts_us"].items():
        shown = threaded["db_parts_us"].get(name)
        table.add_row(name, "" if shown is None else f"{shown:.0f}", "", f"{value:.0f}")
    hop = threaded["stages_us"].get("DB write transaction (await)", 0.0) - inline[
        "stages_us"
    ].get("DB write transaction (await)", 0.0)
    table.add_row(
        "  group-commit hand-off, as served minus inline", f"{hop:.0f}", "", ""
    )
    table.add_row(
        "total", f"{threaded['total_us']:.0f}", "100%", f"{inline['total_us']:.0f}"
    )
    console.print(table)
    console.print(
        f"SQL statements per request: {threaded['sql_statements_per_request']}; "
        f"no-op thread hop {stages['thread_hop_noop_us']} µs; uncached task-token "
        f"verify {stages['task_token_verify_uncached_us']} µs"
    )
    profile = Table(
        title=f"cProfile, top 15 by cumulative time ({stages['profile']['mode']})"
    )
    profile.add_column("function")
    for column in ("calls/req", "tottime µs/req", "cumtime µs/req"):
        profile.add_column(column, justify="right")
    for row in stages["profile"]["top_by_cumulative"]:
        profile.add_row(
            row["function"],
            str(row["calls_per_request"]),
            str(row["tottime_us_per_request"]),
            str(row["cumtime_us_per_request"]),
        )
    console.print(profile)


def versions() -> dict[str, str]:
    """Return the versions of the stack's packages and of wrk."""
    found: dict[str, str] = {}
    for name in (
        "gatepass",
        "uvicorn",
        "starlette",
        "sqlalchemy",
        "PyJWT",
        "cryptography",
        "cedarpy",
        "uvloop",
        "httptools",
        "anyio",
    ):
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, check=False)
    found["wrk"] = (wrk.stdout or wrk.stderr).decode().split("[", 1)[0].strip()
    return found


def machine() -> dict[str, Any]:
    """Return what the machine is."""
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


# ------------------------------------------------------------------------ main


def _terminate(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def run(workdir: Path, processes: Processes) -> dict[str, Any]:
    """Run every measurement; return the JSON report."""
    started_at = SystemClock().now()
    state_dir = workdir / "broker" / "state"
    port = free_port()
    config = workdir / "gatepass.toml"
    config.write_text(render_config(state_dir, port), encoding="utf-8")
    gatepass_cli = Path(sys.executable).with_name("gatepass")
    broker_command = [str(gatepass_cli), "serve", "-c", str(config)]
    console.print("Starting the broker: gatepass serve (SQLite, one worker)")
    broker = processes.start("broker", broker_command, port, workdir)
    key, body = open_task(broker, state_dir)
    factory = ProofFactory(key, f"{broker.url}/token")
    try:
        context = Context(workdir, processes, body, factory)
        console.print("Ceiling: one ES256 JWT per request (the broker waits idle)")
        ceiling = measure_ceiling(context)
        ceiling_rps = {p.connections: p.rps for p in ceiling}
        console.print("Full exchange: POST /token, access token for tickets, DPoP")
        full = measure_broker(context, broker, ceiling_rps)
    finally:
        factory.close()
    processes.stop(broker)
    console.print(
        f"In-process breakdown: {STAGE_ITERATIONS} requests each way (~30 s) ..."
    )
    stages_dir = workdir / "in-process"
    stages_dir.mkdir()
    stages = measure_stages(stages_dir, STAGE_ITERATIONS)

    ratios = {
        f.connections: (f.rps / c.rps if c.rps else 0.0)
        for f, c in zip(full, ceiling, strict=True)
    }
    aims = evaluate_aims(ceiling, full)
    print_results([*ceiling, *full], ratios, aims, stages)
    invalid = [p for p in (*ceiling, *full) if p.problems]
    if invalid:
        console.print(
            f"[bold red]{len(invalid)} phase(s) INVALID: "
            + "; ".join(
                f"{p.server} c={p.connections}: {', '.join(p.problems)}"
                for p in invalid
            )
        )
    stages["profile"].pop("listing", None)
    return {
        "date": started_at.isoformat(timespec="seconds"),
        "machine": machine(),
        "versions": versions(),
        "server": {
            "uvicorn_options": {
                **{k: str(v) if v is None else v for k, v in UVICORN_OPTIONS.items()},
                "loop": "auto (uvloop)",
                "http": "auto (httptools)",
                "workers": 1,
            },
            "broker": "gatepass serve -c <generated toml> (its own process)",
            "ceiling": "bench/ceiling_app.py: Starlette POST /token reading the body "
            "and signing one ES256 JWT with gatepass JWTIssuer",
            "store": "SQLite (WAL, synchronous=NORMAL), fresh file in a temp dir",
            "dpop_max_age_seconds": DPOP_MAX_AGE_SECONDS,
            "task_ttl_seconds": TASK_TTL_SECONDS,
            "background_jobs": "on, as served (sweep 2 s, policy 5 s, checkpoint 10 s)",
        },
        "load": {
            "tool": "wrk with bench/wrk_token.lua",
            "wrk_threads": WRK_THREADS,
            "connections": list(CONNECTIONS),
            "phase_seconds": PHASE_SECONDS,
            "warmup": f"{WARMUP_SECONDS} s at {WARMUP_CONNECTIONS} connections",
            "timeout": WRK_TIMEOUT,
            "request": f"POST /token, task token, resource={TARGET_URI}, scope=read",
            "body_bytes": len(body),
            "proofs": "signed by the task key right before each phase (iat = signing "
            f"time), {PROOF_MARGIN}x the ceiling's rate x duration + {PROOF_SLACK}; "
            "each sent at most once; the ceiling cycles "
            f"{CEILING_PROOFS} (it checks none)",
        },
        "phases": {
            "ceiling": [p.to_json() for p in ceiling],
            "full_exchange": [p.to_json() for p in full],
        },
        "ratio_full_to_ceiling": {str(c): round(r, 4) for c, r in ratios.items()},
        "aims": aims,
        "valid": not invalid,
        "breakdown": stages,
        "duration_seconds": round(
            (SystemClock().now() - started_at) / dt.timedelta(seconds=1), 1
        ),
    }


def main() -> int:
    """Run the bench; exit 0 when every phase was valid, 1 otherwise."""
    if shutil.which("wrk") is None:
        console.print("[bold red]wrk is not installed: apt-get install -y wrk")
        return 2
    signal.signal(signal.SIGTERM, _terminate)
    workdir = Path(tempfile.mkdtemp(prefix="gatepass-bench-"))
    processes = Processes()
    try:
        report = run(workdir, processes)
    finally:
        processes.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    console.print(f"Wrote {RESULTS.relative_to(BENCH.parent)}")
    return 0 if report["valid"] else 1


if __name__ == "__main__":
    sys.exit(main())
