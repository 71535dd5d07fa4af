"""
What gatepass.verify costs a resource server, and how fast a revocation reaches it.

Starts on 127.0.0.1 a broker and two copies of a trivial resource server
(``bench/verify_server.py``): one serving ``GET /ping`` openly, one behind
:class:`~gatepass.verify.GatepassMiddleware` with the verifier of
:meth:`~gatepass.verify.ResourceVerifier.for_broker`. Then measures:

1. **added latency**: sequential GETs to each (p50, p99; a fresh DPoP proof per
   protected request, signed before the clock starts);
2. **throughput**: wrk at 16 connections against each (one pre-signed proof per
   request, cycled by ``wrk_proxy.lua``);
3. **revoke-to-reject**: over 200 trials, the time from sending the task's close to
   the broker until the protected server refuses that task's token, learned by the
   broker's push stream (the server introspects only while the stream is down).

Prints a table and writes ``bench/results/verify.json``.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from broker_config import render_config
from gatepass.clock import SystemClock
from gatepass.sdk import AccessToken, AgentIdentity, GatepassClient

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results" / "verify.json"
TRIALS = 200
SEQUENTIAL = 500
PROOFS = 40_000
WRK_SECONDS = 10
WRK_CONNECTIONS = 16
START_TIMEOUT = 30.0
console = Console(width=120)


def free_port() -> int:
    """Return a port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentiles(samples: list[float]) -> dict[str, float]:
    """Return p50 and p99 in milliseconds."""
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 3),
        "p99_ms": round(ordered[max(0, int(len(ordered) * 0.99) - 1)] * 1000, 3),
    }


@dataclass
class Processes:
    """Every server this run started, stopped by pid at the end."""

    started: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(
        self,
        name: str,
        command: list[str],
        port: int,
        workdir: Path,
        env: dict[str, str],
    ) -> str:
        """Start a server, wait until ``/healthz`` answers 200, return its URL."""
        log = workdir / f"{name}.log"
        with log.open("wb") as output:
            process = subprocess.Popen(
                command,
                cwd=workdir,
                env={**os.environ, **env},
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        self.started.append(process)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + START_TIMEOUT
        while process.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200:
                    return url
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=0.1)  # a pause that notices an early exit
        tail = log.read_text(errors="replace")[-3000:]
        msg = f"{name} did not start:\n{tail}"
        raise RuntimeError(msg)

    def stop_all(self) -> None:
        """Terminate every server (SIGTERM, then SIGKILL after 10 s)."""
        for process in self.started:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=10)
        self.started.clear()


def run_wrk(url: str, workdir: Path, *, requests: Path | None) -> dict[str, Any]:
    """Run wrk once (cycling pre-signed proofs when given) and return its result."""
    out = workdir / "wrk.json"
    out.unlink(missing_ok=True)
    script = "wrk_proxy.lua" if requests is not None else "wrk_proxy_direct.lua"
    command = ["wrk", "-t", "1", "-c", str(WRK_CONNECTIONS), "-d", f"{WRK_SECONDS}s"]
    command += ["-s", str(BENCH / script), url]
    env = {**os.environ, "BENCH_OUT": str(out), "BENCH_THREADS": "1"}
    if requests is not None:
        env["BENCH_REQUESTS"] = str(requests)
    subprocess.run(
        command, env=env, check=True, capture_output=True, timeout=WRK_SECONDS + 60
    )
    result: dict[str, Any] = json.loads(out.read_text())
    result["per_second"] = round(result["requests"] / result["seconds"], 1)
    return result


def broker_config(state: Path, port: int, target: str) -> str:
    """Return the bench broker's TOML with the protected server as a target."""
    return render_config(state, port) + (
        "\n[[targets]]\n"
        'name = "bench-api"\n'
        f'uri = "{target}"\n'
        'environment = "dev"\n'
        'tenant = "acme"\n'
        'risk = "low"\n'
        'actions = ["read"]\n'
        "max_ttl_seconds = 600\n"
    )


def start_resource(
    processes: Processes, name: str, port: int, workdir: Path, env: dict[str, str]
) -> str:
    """Start one copy of the trivial resource server; return its URL."""
    return processes.start(
        name,
        [
            sys.executable,
            "-m",
            "uvicorn",
            "verify_server:app",
            "--app-dir",
            str(BENCH),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        port,
        workdir,
        env,
    )


def sequential(http: httpx.Client, url: str, token: AccessToken | None) -> list[float]:
    """Time SEQUENTIAL GETs of one URL; proofs are signed outside the timing."""
    samples: list[float] = []
    for _ in range(SEQUENTIAL):
        headers = token.headers("GET", url) if token is not None else {}
        started = time.perf_counter()
        response = http.get(url, headers=headers)
        samples.append(time.perf_counter() - started)
        assert response.status_code == 200, response.text
    return samples


def revoke_to_reject(client: GatepassClient, target: str, url: str) -> dict[str, Any]:
    """Close a task, then call until the resource refuses its token; 200 times."""
    samples: list[float] = []
    with httpx.Client(timeout=10) as http:
        for _ in range(TRIALS):
            task = client.open_task(
                intent="revoke trial",
                purpose="bench",
                environment="dev",
                targets=[target],
            )
            token = task.access_token(target, "read")
            assert http.get(url, headers=token.headers("GET", url)).status_code == 200
            started = time.perf_counter()
            task.close()
            deadline = started + 10
            while True:
                status = http.get(url, headers=token.headers("GET", url)).status_code
                if status == 401:
                    samples.append(time.perf_counter() - started)
                    break
                if time.perf_counter() > deadline:
                    msg = "the resource kept accepting a revoked token for 10 s"
                    raise RuntimeError(msg)
    return {
        "trials": TRIALS,
        "measured_from": "the close request being sent",
        **percentiles(samples),
    }


def measure(workdir: Path, processes: Processes) -> dict[str, Any]:
    """Start the servers and take every measurement."""
    broker_port, open_port, protected_port = free_port(), free_port(), free_port()
    state = workdir / "state"
    target = f"http://127.0.0.1:{protected_port}/"
    (workdir / "broker.toml").write_text(broker_config(state, broker_port, target))
    gatepass = str(Path(sys.executable).with_name("gatepass"))
    broker_url = processes.start(
        "broker",
        [gatepass, "serve", "-c", str(workdir / "broker.toml")],
        broker_port,
        workdir,
        {},
    )
    open_url = start_resource(
        processes, "open", open_port, workdir, {"BENCH_MODE": "open"}
    )
    protected_url = start_resource(
        processes,
        "protected",
        protected_port,
        workdir,
        {
            "BENCH_MODE": "protected",
            "BENCH_ISSUER": broker_url,
            "BENCH_AUDIENCE": target,
            "BENCH_TOKEN_FILE": str(state / "introspect.token"),
        },
    )
    client = GatepassClient(AgentIdentity.load(state / "demo-agent.json"))
    ping_open, ping_protected = f"{open_url}/ping", f"{protected_url}/ping"
    with (
        client.open_task(
            intent="bench the verifier",
            purpose="bench",
            environment="dev",
            targets=[target],
        ) as task,
        httpx.Client(timeout=10) as http,
    ):
        token = task.access_token(target, "read")
        open_latency = sequential(http, ping_open, None)
        protected_latency = sequential(http, ping_protected, token)
        open_wrk = run_wrk(ping_open, workdir, requests=None)
        console.print(f"  signing {PROOFS} proofs ...", style="dim")
        lines = [token.headers("GET", ping_protected) for _ in range(PROOFS)]
        requests = workdir / "requests.txt"
        requests.write_text(
            "/ping\n"
            + lines[0]["Authorization"]
            + "\n"
            + "\n".join(line["DPoP"] for line in lines)
            + "\n"
        )
        protected_wrk = run_wrk(protected_url, workdir, requests=requests)
    try:
        revoke = revoke_to_reject(client, target, ping_protected)
    finally:
        client.close()
    return {
        "sequential": {
            "requests": SEQUENTIAL,
            "open": percentiles(open_latency),
            "protected": percentiles(protected_latency),
            "added_p50_ms": round(
                (statistics.median(protected_latency) - statistics.median(open_latency))
                * 1000,
                3,
            ),
        },
        "throughput": {
            "connections": WRK_CONNECTIONS,
            "seconds": WRK_SECONDS,
            "open": open_wrk,
            "protected": protected_wrk,
        },
        "revoke_to_reject": revoke,
    }


def load() -> str:
    """Return the machine's load averages, to judge how noisy the run was."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def main() -> int:
    """Run the bench; print and write the results."""
    if shutil.which("wrk") is None:
        console.print("[bold red]wrk is not installed: apt-get install -y wrk")
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="gatepass-verify-bench-"))
    processes = Processes()
    load_before = load()
    try:
        results = measure(workdir, processes)
    finally:
        processes.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)
    table = Table(title="gatepass.verify: cost and revocation")
    table.add_column("measure")
    table.add_column("unprotected", justify="right")
    table.add_column("GatepassMiddleware", justify="right")
    seq = results["sequential"]
    for name in ("p50_ms", "p99_ms"):
        table.add_row(
            f"sequential {name.replace('_', ' ')}",
            str(seq["open"][name]),
            str(seq["protected"][name]),
        )
    thr = results["throughput"]
    table.add_row(
        f"throughput req/s ({WRK_CONNECTIONS} conns)",
        str(thr["open"]["per_second"]),
        str(thr["protected"]["per_second"]),
    )
    rev = results["revoke_to_reject"]
    table.add_row(
        "revoke-to-reject p50 / p99 ms", "", f"{rev['p50_ms']} / {rev['p99_ms']}"
    )
    console.print(table)
    report = {
        "date": SystemClock().now().isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_before": load_before,
            "load_after": load(),
        },
        **results,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    console.print(f"Wrote {RESULTS.relative_to(BENCH.parent)}")
    bad = thr["open"]["non200"] + thr["protected"]["non200"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
