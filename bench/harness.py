"""
What the HTTP benches share: server processes, DPoP proofs, wrk phases, the machine.

* :class:`Processes` starts servers on 127.0.0.1 and stops them by pid.
* :class:`ProofFactory` signs fresh DPoP proofs on every core before a phase.
* :func:`run_wrk` runs one wrk phase with ``wrk_token.lua`` and returns a
  :class:`Phase` (requests/s, latency percentiles, CPU of the server and of wrk,
  and why it is invalid, if it is).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import math
import multiprocessing
import os
import platform
import resource
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from gatepass.tokens import DPoPKey, load_private_key, private_jwk

BENCH = Path(__file__).resolve().parent
LUA = BENCH / "wrk_token.lua"
WRK_THREADS = 1
WRK_TIMEOUT = "10s"
START_TIMEOUT = 30.0


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
    """Signs DPoP proofs by one key on every core (each proof ~70 µs)."""

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
        chunk = max(math.ceil(count / (self.workers * 4)), 1)
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
    round: int = 0

    @property
    def rps(self) -> float:
        """Requests per second."""
        return float(self.result["requests"]) / (self.result["duration_us"] / 1e6)

    @property
    def cpu_us_per_request(self) -> float:
        """
        The server's CPU time per request.

        Load on the machine distorts it less than throughput: a busy machine gives
        the server less CPU, not more work per request.
        """
        return self.server_cpu_percent / 100 * 1e6 / self.rps if self.rps else 0.0

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
            "round": self.round,
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
            "server_cpu_us_per_request": round(self.cpu_us_per_request, 1),
            "wrk_cpu_percent": round(self.wrk_cpu_percent, 1),
            "valid": not self.problems,
            "problems": self.problems,
        }


@dataclass(frozen=True)
class Load:
    """One wrk phase's request: the body, the proofs' mode and any extra header."""

    requests_file: Path
    mode: str  # "once" (each proof sent at most once) or "cycle"
    proofs: int
    authorization: str = ""


def run_wrk(
    server: Server,
    load: Load,
    *,
    connections: int,
    seconds: int,
    workdir: Path,
    label: str | None = None,
) -> Phase:
    """Run wrk once against ``server``; return the phase."""
    out = workdir / f"wrk-{server.name}-{connections}.json"
    out.unlink(missing_ok=True)
    env = {
        **os.environ,
        "BENCH_REQUESTS": str(load.requests_file),
        "BENCH_THREADS": str(WRK_THREADS),
        "BENCH_MODE": load.mode,
        "BENCH_OUT": str(out),
        "BENCH_AUTHORIZATION": load.authorization,
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
    return Phase(
        label or server.name,
        connections,
        seconds,
        result,
        server_cpu,
        wrk_cpu * 100,
        load.proofs,
    )


# -------------------------------------------------------------------- machine


def load_average() -> list[float]:
    """Return the 1, 5 and 15 minute load averages (what ``uptime`` shows)."""
    return [round(value, 2) for value in os.getloadavg()]


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
