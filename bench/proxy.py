"""
The proxy's cost and its revocation speed, measured in one run.

Starts three processes on 127.0.0.1 (the broker, a small upstream that requires an
API key, and ``gatepass proxy`` in front of it), then measures:

1. **revoke-to-reject**: over 200 trials, the time from asking the broker to close a
   task until the proxy refuses that task's access token (the proxy learns of it
   through the broker's revocation stream);
2. **added latency**: sequential GETs straight to the upstream and through the
   proxy (p50, p99);
3. **throughput**: wrk at 16 connections against the upstream and through the
   proxy (one DPoP proof per request, signed before the run).

Prints a table and writes ``bench/results/proxy.json``.
"""

from __future__ import annotations

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

import httpx
from rich.console import Console
from rich.table import Table

from broker_config import render_config
from gatepass.clock import SystemClock
from gatepass.sdk import AgentIdentity, GatepassClient
from issuance import Processes, free_port

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results" / "proxy.json"
TRIALS = 200
SEQUENTIAL = 500
WRK_SECONDS = 10
WRK_CONNECTIONS = 16
PROOFS = 60_000
AIM_RPS = 3000
AIM_ADDED_MS = 1.0
console = Console(width=120)


def percentiles(samples: list[float]) -> dict[str, float]:
    """Return p50 and p99 in milliseconds."""
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 3),
        "p99_ms": round(ordered[max(0, int(len(ordered) * 0.99) - 1)] * 1000, 3),
    }


def broker_config(state: Path, port: int, target: str) -> str:
    """Return the bench broker's TOML with one http target served by the proxy."""
    text = render_config(state, port)
    return text + (
        "\n[[targets]]\n"
        'name = "tickets-saas"\n'
        f'uri = "{target}"\n'
        'environment = "dev"\n'
        'tenant = "acme"\n'
        'risk = "low"\n'
        'actions = ["read"]\n'
        "max_ttl_seconds = 600\n"
    )


def proxy_config(
    port: int, broker: str, upstream: str, *, token_file: Path, secret: Path
) -> str:
    """Return the proxy's TOML: one route to the upstream with an API key."""
    return f"""\
[proxy]
host = "127.0.0.1"
port = {port}
public_url = "http://127.0.0.1:{port}"
broker = "{broker}"
api_token_file = "{token_file}"
revocation = "stream"

[[routes]]
name = "tickets-saas"
prefix = "/tickets-saas/"
upstream = "{upstream}/api"
allow_plain_http = true
rate_per_lease = 100000
burst_per_lease = 100000
rate_per_route = 100000
burst_per_route = 100000

[routes.auth]
method = "header"
name = "X-Api-Key"
secret_file = "{secret}"

[routes.rules]
read = ["GET /v1/tickets"]
"""


def run_wrk(
    url: str, workdir: Path, *, script: Path | None, header: str | None
) -> dict[str, Any]:
    """Run wrk once and return its JSON result."""
    out = workdir / "wrk.json"
    out.unlink(missing_ok=True)
    command = ["wrk", "-t", "1", "-c", str(WRK_CONNECTIONS), "-d", f"{WRK_SECONDS}s"]
    env = {**os.environ, "BENCH_OUT": str(out), "BENCH_THREADS": "1"}
    if script is not None:
        command += ["-s", str(script)]
        env["BENCH_REQUESTS"] = str(workdir / "proxy-requests.txt")
    else:
        command += ["-s", str(BENCH / "wrk_proxy_direct.lua")]
    if header is not None:
        command += ["-H", header]
    command.append(url)
    subprocess.run(
        command, env=env, check=True, capture_output=True, timeout=WRK_SECONDS + 60
    )
    result: dict[str, Any] = json.loads(out.read_text())
    result["per_second"] = round(result["requests"] / result["seconds"], 1)
    return result


def measure(workdir: Path, processes: Processes) -> dict[str, Any]:
    """Start the three servers and take every measurement."""
    broker_port, upstream_port, proxy_port = free_port(), free_port(), free_port()
    state = workdir / "state"
    target = f"http://127.0.0.1:{proxy_port}/tickets-saas/"
    (workdir / "broker.toml").write_text(broker_config(state, broker_port, target))
    gatepass = str(Path(sys.executable).with_name("gatepass"))
    broker = processes.start(
        "broker",
        [gatepass, "serve", "-c", str(workdir / "broker.toml")],
        broker_port,
        workdir,
    )
    key = secrets.token_urlsafe(24)
    secret_file = workdir / "upstream.key"
    secret_file.write_text(key)
    secret_file.chmod(0o600)
    os.environ["BENCH_UPSTREAM_KEY"] = key
    upstream = processes.start(
        "upstream",
        [
            sys.executable,
            "-m",
            "uvicorn",
            "proxy_upstream:app",
            "--app-dir",
            str(BENCH),
            "--host",
            "127.0.0.1",
            "--port",
            str(upstream_port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        upstream_port,
        workdir,
    )
    (workdir / "proxy.toml").write_text(
        proxy_config(
            proxy_port,
            broker.url,
            upstream.url,
            token_file=state / "proxy.token",
            secret=secret_file,
        )
    )
    proxy = processes.start(
        "proxy",
        [gatepass, "proxy", "-c", str(workdir / "proxy.toml")],
        proxy_port,
        workdir,
    )
    client = GatepassClient(AgentIdentity.load(state / "demo-agent.json"))
    via_proxy = f"{proxy.url}/tickets-saas/v1/tickets"
    direct = f"{upstream.url}/api/v1/tickets"
    with (
        client.open_task(
            intent="bench the proxy",
            purpose="bench",
            environment="dev",
            targets=[target],
            ttl=None,
        ) as task,
        httpx.Client(timeout=10) as http,
    ):
        token = task.access_token(target, "read")
        direct_latency: list[float] = []
        proxy_latency: list[float] = []
        for _ in range(SEQUENTIAL):
            started = time.perf_counter()
            assert http.get(direct, headers={"X-Api-Key": key}).status_code == 200
            direct_latency.append(time.perf_counter() - started)
            headers = token.headers("GET", via_proxy)
            started = time.perf_counter()
            response = http.get(via_proxy, headers=headers)
            proxy_latency.append(time.perf_counter() - started)
            assert response.status_code == 200, response.text
        console.print(f"  signing {PROOFS} proofs ...", style="dim")
        lines = [token.headers("GET", via_proxy) for _ in range(PROOFS)]
        requests_file = workdir / "proxy-requests.txt"
        requests_file.write_text(
            "/tickets-saas/v1/tickets\n"
            + lines[0]["Authorization"]
            + "\n"
            + "\n".join(line["DPoP"] for line in lines)
            + "\n"
        )
        direct_wrk = run_wrk(
            upstream.url + "/api/v1/tickets",
            workdir,
            script=None,
            header=f"X-Api-Key: {key}",
        )
        cpu_before = proxy.cpu_seconds()
        proxy_wrk = run_wrk(
            proxy.url, workdir, script=BENCH / "wrk_proxy.lua", header=None
        )
        proxy_cpu = proxy.cpu_seconds() - cpu_before
        proxy_wrk["proxy_cpu_percent"] = round(proxy_cpu / proxy_wrk["seconds"] * 100)
        proxy_wrk["proxy_cpu_us_per_request"] = round(
            proxy_cpu / max(proxy_wrk["requests"], 1) * 1e6
        )
    try:
        revoke = revoke_to_reject(client, target, via_proxy)
    finally:
        client.close()
    return {
        "sequential": {
            "requests": SEQUENTIAL,
            "direct": percentiles(direct_latency),
            "proxy": percentiles(proxy_latency),
            "added_p50_ms": round(
                (statistics.median(proxy_latency) - statistics.median(direct_latency))
                * 1000,
                3,
            ),
        },
        "throughput": {
            "connections": WRK_CONNECTIONS,
            "seconds": WRK_SECONDS,
            "direct": direct_wrk,
            "proxy": proxy_wrk,
        },
        "revoke_to_reject": revoke,
    }


def revoke_to_reject(client: GatepassClient, target: str, url: str) -> dict[str, Any]:
    """Close a task, then call until the proxy refuses its token; 200 times."""
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
                    msg = "the proxy kept accepting a revoked token for 10 s"
                    raise RuntimeError(msg)
    return {
        "trials": TRIALS,
        "measured_from": "the close request being sent",
        **percentiles(samples),
    }


def main() -> int:
    """Run the bench; print and write the results."""
    if shutil.which("wrk") is None:
        console.print("[bold red]wrk is not installed: apt-get install -y wrk")
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="gatepass-proxy-bench-"))
    processes = Processes()
    try:
        results = measure(workdir, processes)
    finally:
        processes.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)
    table = Table(title="gatepass proxy: cost and revocation")
    table.add_column("measure")
    table.add_column("direct", justify="right")
    table.add_column("through the proxy", justify="right")
    seq = results["sequential"]
    table.add_row(
        "sequential p50 ms", str(seq["direct"]["p50_ms"]), str(seq["proxy"]["p50_ms"])
    )
    table.add_row(
        "sequential p99 ms", str(seq["direct"]["p99_ms"]), str(seq["proxy"]["p99_ms"])
    )
    thr = results["throughput"]
    table.add_row(
        f"throughput req/s ({WRK_CONNECTIONS} conns)",
        str(thr["direct"]["per_second"]),
        str(thr["proxy"]["per_second"]),
    )
    rev = results["revoke_to_reject"]
    table.add_row(
        "revoke-to-reject p50 / p99 ms", "", f"{rev['p50_ms']} / {rev['p99_ms']}"
    )
    console.print(table)
    aims = [
        (
            "throughput through one proxy process >= 3,000 req/s",
            thr["proxy"]["per_second"],
            thr["proxy"]["per_second"] >= AIM_RPS,
        ),
        (
            "added latency p50 <= 1 ms",
            seq["added_p50_ms"],
            seq["added_p50_ms"] <= AIM_ADDED_MS,
        ),
    ]
    table = Table(title="gatepass proxy: aims (issue 16)")
    for column in ("aim", "measured", "verdict"):
        table.add_column(column)
    for name, figure, ok in aims:
        table.add_row(name, str(figure), "[green]PASS" if ok else "[red]MISS")
    table.add_row(
        "proxy CPU per request (wrk phase)",
        f"{thr['proxy']['proxy_cpu_us_per_request']} µs at "
        f"{thr['proxy']['proxy_cpu_percent']}% CPU",
        "",
    )
    console.print(table)
    report = {
        "aims": [{"aim": n, "measured": f, "pass": ok} for n, f, ok in aims],
        "date": SystemClock().now().isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        **results,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    console.print(f"Wrote {RESULTS.relative_to(BENCH.parent)}")
    bad = thr["proxy"]["non200"] + thr["direct"]["non200"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
