"""
Access-token issuance over HTTP: gatepass's full exchange, its ceiling and the peer.

``make bench`` runs this (about three minutes). In one run it starts three servers
on 127.0.0.1, each its own process, and measures them **interleaved** with wrk:

* **gatepass**: ``gatepass serve -c <generated toml>`` (a fresh SQLite store in a
  temporary directory; see ``broker_config.py``). One task is opened for the demo
  agent; the measured request is the access-token exchange (task token as
  ``subject_token``, ``resource`` = the tickets target, ``scope=read``, a fresh
  DPoP proof by the task key per request). Every check is done: task token, DPoP
  proof (and its single use, spent durably in the issuing transaction), policy,
  the lease and its HMAC'd audit record committed before the token leaves.
* **ceiling**: ``ceiling_app.py``, the same server stack signing one ES256 JWT per
  request and nothing else.
* **peer**: panva ``oidc-provider`` (pinned, installed from the npm registry by
  ``peer.py``), ``client_credentials`` with ``client_secret_basic``, DPoP, a
  resource indicator, ES256 ``at+jwt`` tokens, one Node process.

At 64 connections the three are measured in rounds (ceiling, gatepass, peer;
ceiling, gatepass, peer), then gatepass and the peer at one connection. The issue's
aims are checked in every round. Then ``stages.py`` measures where the time of one
request goes, in-process. Everything is written to ``bench/results/issuance.json``.

DPoP proofs are single-use, so they are signed right before each phase and handed
to wrk through ``wrk_token.lua``, which sends each at most once; a phase that runs
out of proofs, or sees a single non-200 answer or socket error, is INVALID. The
ceiling checks no proof and cycles a few.

Only 127.0.0.1 is contacted. Servers are stopped and temporary files deleted at the
end, also on Ctrl-C or an error.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
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
from gatepass.tokens import DPoPKey
from harness import (
    Load,
    Phase,
    Processes,
    ProofFactory,
    Server,
    free_port,
    load_average,
    machine,
    run_wrk,
    write_requests,
)
from peer import (
    ensure_installed,
    node_version,
    peer_authorization,
    peer_body,
    pinned_version,
    start_peer,
)
from stages import measure_stages

__all__ = ["Processes", "free_port"]  # bench/proxy.py imports these from here

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results" / "issuance.json"
TOP = 64
ROUNDS = 2
ONE_CLIENT_SECONDS = 10
PHASE_SECONDS = 10
WARMUP_SECONDS = 2
WARMUP_CONNECTIONS = 16
PROOF_MARGIN = 1.3
PROOF_SLACK = 500
CEILING_PROOFS = 256
STAGE_ITERATIONS = 3000
AIM_PEER_RATIO = 3.0
AIM_PEER_TAIL = 0.25
AIM_CEILING_SHARE = 0.40
QUIET_LOAD = 1.0

console = Console(highlight=False)
if not console.is_terminal:
    console = Console(highlight=False, width=150)


# ------------------------------------------------------------------- servers


@dataclass
class Target:
    """One measured server and how to load it."""

    server: Server
    body: bytes
    proofs: ProofFactory | None  # None: the ceiling, which checks no proof
    authorization: str = ""

    @property
    def name(self) -> str:
        """The server's name in the tables."""
        return self.server.name


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
    body = access_body(str(response.json()["access_token"]))
    check_once(endpoint, body, key.proof("POST", endpoint), "")
    return key, body


def check_once(endpoint: str, body: bytes, proof: str, authorization: str) -> None:
    """Send the measured request once by hand, to fail early and clearly."""
    headers = {"Content-Type": "application/x-www-form-urlencoded", "DPoP": proof}
    if authorization:
        headers["Authorization"] = authorization
    answer = httpx.post(endpoint, content=body, headers=headers, timeout=10)
    if answer.status_code != 200 or "access_token" not in answer.json():
        msg = f"{endpoint} refused the request: {answer.status_code} {answer.text}"
        raise RuntimeError(msg)


# -------------------------------------------------------------------- phases

_FILLER_PROOF = DPoPKey.generate("ES256").proof("POST", "http://127.0.0.1/token")


def measure(
    target: Target,
    *,
    connections: int,
    seconds: int,
    rate_bound: float,
    workdir: Path,
    round_number: int = 0,
) -> Phase:
    """Prepare the proofs, run one wrk phase and print its line."""
    requests_file = workdir / f"{target.name}-requests.txt"
    if target.proofs is None:
        count, mode = CEILING_PROOFS, "cycle"
        # The ceiling checks nothing: any well-formed proof keeps the request size.
        write_requests(requests_file, target.body, [_FILLER_PROOF] * count)
    else:
        count, mode = int(PROOF_MARGIN * rate_bound * seconds) + PROOF_SLACK, "once"
        write_requests(requests_file, target.body, target.proofs.sign(count))
    load = Load(requests_file, mode, count, target.authorization)
    phase = run_wrk(
        target.server,
        load,
        connections=connections,
        seconds=seconds,
        workdir=workdir,
    )
    phase.round = round_number
    report_phase(phase)
    return phase


def report_phase(phase: Phase) -> None:
    """Print one line as soon as a phase ends."""
    line = (
        f"  {phase.server:<9} c={phase.connections:<3} {phase.rps:8.0f} req/s  "
        f"p50 {phase.latency_ms('p50'):7.2f} ms  p99 {phase.latency_ms('p99'):7.2f} ms"
        f"  server CPU {phase.server_cpu_percent:3.0f}%  wrk CPU "
        f"{phase.wrk_cpu_percent:3.0f}%"
    )
    if phase.problems:
        console.print(f"[bold red]{line}  INVALID: {'; '.join(phase.problems)}")
    else:
        console.print(line)


# ---------------------------------------------------------------------- aims


def verdict(ok: bool, *, valid: bool) -> str:
    """Return PASS, MISS or INVALID (a phase the aim needs was invalid)."""
    if not valid:
        return "INVALID"
    return "PASS" if ok else "MISS"


def evaluate_aims(rounds: list[dict[str, Phase]]) -> list[dict[str, Any]]:
    """Check the issue's three aims in every round; each passes only if all do."""
    specs = [
        (
            f"gatepass tokens/s >= {AIM_PEER_RATIO:g} x the peer's ({TOP} connections)",
            lambda r: r["gatepass"].rps / r["peer"].rps,
            lambda value: value >= AIM_PEER_RATIO,
            lambda r, v: f"{v:.2f}x ({r['gatepass'].rps:,.0f} / {r['peer'].rps:,.0f})",
            ("gatepass", "peer"),
        ),
        (
            f"gatepass p99 <= 1/4 of the peer's ({TOP} connections)",
            lambda r: r["gatepass"].latency_ms("p99") / r["peer"].latency_ms("p99"),
            lambda value: value <= AIM_PEER_TAIL,
            lambda r, v: (
                f"{v:.2f} ({r['gatepass'].latency_ms('p99'):.1f} / "
                f"{r['peer'].latency_ms('p99'):.1f} ms)"
            ),
            ("gatepass", "peer"),
        ),
        (
            f"gatepass >= {AIM_CEILING_SHARE:.0%} of its bare ceiling ({TOP} conns)",
            lambda r: r["gatepass"].rps / r["ceiling"].rps,
            lambda value: value >= AIM_CEILING_SHARE,
            lambda r, v: (
                f"{v:.1%} ({r['gatepass'].rps:,.0f} / {r['ceiling'].rps:,.0f})"
            ),
            ("gatepass", "ceiling"),
        ),
    ]
    aims: list[dict[str, Any]] = []
    for aim, figure, passes, shown, needs in specs:
        values, texts, ok, valid = [], [], True, True
        for number, phases in enumerate(rounds, start=1):
            value = figure(phases)
            values.append(round(value, 4))
            texts.append(f"round {number}: {shown(phases, value)}")
            ok = ok and passes(value)
            valid = valid and not any(phases[name].problems for name in needs)
        aims.append(
            {
                "aim": aim,
                "measured": "; ".join(texts),
                "values": values,
                "verdict": verdict(ok, valid=valid),
            }
        )
    return aims


# -------------------------------------------------------------------- report


def print_phases(phases: list[Phase]) -> None:
    """Print every phase in one table."""
    table = Table(title="Access-token issuance over HTTP (wrk, 127.0.0.1)")
    for column in ("round", "server", "conns", "req/s", "p50 ms", "p90 ms", "p99 ms"):
        table.add_column(column, justify="right")
    for column in ("max ms", "requests", "non-200", "server CPU", "CPU µs/req"):
        table.add_column(column, justify="right")
    for column in ("wrk CPU", "valid"):
        table.add_column(column, justify="right")
    for phase in phases:
        table.add_row(
            str(phase.round or "-"),
            phase.server,
            str(phase.connections),
            f"{phase.rps:,.0f}",
            f"{phase.latency_ms('p50'):.2f}",
            f"{phase.latency_ms('p90'):.2f}",
            f"{phase.latency_ms('p99'):.2f}",
            f"{phase.latency_ms('max'):.2f}",
            f"{phase.result['requests']:,}",
            str(phase.result["non200"]),
            f"{phase.server_cpu_percent:.0f}%",
            f"{phase.cpu_us_per_request:,.0f}",
            f"{phase.wrk_cpu_percent:.0f}%",
            "yes" if not phase.problems else "[bold red]NO",
        )
    console.print(table)


def print_aims(aims: list[dict[str, Any]], loads: dict[str, list[float]]) -> None:
    """Print the aim table of issue 15 aim 1."""
    table = Table(title="Aim 1 (issue 15): issuance vs the peer, side by side")
    for column in ("aim", "measured", "verdict"):
        table.add_column(column)
    for aim in aims:
        style = {"PASS": "green", "MISS": "yellow"}.get(aim["verdict"], "bold red")
        table.add_row(
            aim["aim"], aim["measured"], f"[{style}]{aim['verdict']}[/{style}]"
        )
    console.print(table)
    before, after = loads["before"], loads["after"]
    note = (
        f"Load average (1/5/15 min) before {before}, after {after}"
        f" on {machine()['nproc']} cores."
    )
    if before[0] > QUIET_LOAD:
        note += " The machine was busy before the run: figures are noisy."
    console.print(note)


def print_stages(stages: dict[str, Any]) -> None:
    """Print the in-process breakdown and the profile."""
    served, inline = stages["served"], stages["inline"]
    table = Table(
        title="Where the time goes: one access-token request in-process (µs, mean)"
    )
    table.add_column("stage")
    table.add_column("as served", justify="right")
    table.add_column("share", justify="right")
    table.add_column("DB inline", justify="right")
    for name, value in served["stages_us"].items():
        table.add_row(
            name,
            f"{value:.0f}",
            f"{value / served['total_us']:.0%}",
            f"{inline['stages_us'].get(name, 0.0):.0f}",
        )
    for name, value in inline["db_parts_us"].items():
        table.add_row(name, "", "", f"{value:.0f}")
    table.add_row(
        "total", f"{served['total_us']:.0f}", "100%", f"{inline['total_us']:.0f}"
    )
    console.print(table)
    profile = Table(
        title=f"cProfile, top 15 by cumulative time ({stages['profile']['mode']})"
    )
    profile.add_column("function")
    for column in ("calls/req", "tottime µs/req", "cumtime µs/req"):
        profile.add_column(column, justify="right")
    for row in stages["profile"]["top_by_cumulative"][:15]:
        profile.add_row(
            row["function"],
            str(row["calls_per_request"]),
            str(row["tottime_us_per_request"]),
            str(row["cumtime_us_per_request"]),
        )
    console.print(profile)


def versions(peer_version: str) -> dict[str, str]:
    """Return the versions of the stack's packages, the peer, Node and wrk."""
    found: dict[str, str] = {}
    for name in (
        "gatepass",
        "uvicorn",
        "starlette",
        "sqlalchemy",
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
    found["oidc-provider"] = peer_version
    found["node"] = node_version() or "not installed"
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, check=False)
    found["wrk"] = (wrk.stdout or wrk.stderr).decode().split("[", 1)[0].strip()
    return found


# ---------------------------------------------------------------------- main


def _terminate(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def _start(workdir: Path, processes: Processes) -> tuple[Target, Target, Target]:
    state_dir = workdir / "broker" / "state"
    port = free_port()
    config = workdir / "gatepass.toml"
    config.write_text(render_config(state_dir, port), encoding="utf-8")
    gatepass_cli = Path(sys.executable).with_name("gatepass")
    console.print("Starting gatepass serve (SQLite, one process), ceiling, peer")
    broker = processes.start(
        "gatepass", [str(gatepass_cli), "serve", "-c", str(config)], port, workdir
    )
    key, body = open_task(broker, state_dir)
    ceiling_port = free_port()
    ceiling = processes.start(
        "ceiling",
        [sys.executable, str(BENCH / "ceiling_app.py"), str(ceiling_port)],
        ceiling_port,
        workdir,
    )
    peer = start_peer(processes, workdir, TARGET_URI)
    peer_key = DPoPKey.generate("ES256")
    peer_endpoint = f"{peer.url}/token"
    check_once(
        peer_endpoint,
        peer_body(TARGET_URI),
        peer_key.proof("POST", peer_endpoint),
        peer_authorization(),
    )
    return (
        Target(broker, body, ProofFactory(key, f"{broker.url}/token")),
        Target(ceiling, body, None),
        Target(
            peer,
            peer_body(TARGET_URI),
            ProofFactory(peer_key, peer_endpoint),
            peer_authorization(),
        ),
    )


def _measure_all(
    workdir: Path, targets: tuple[Target, Target, Target]
) -> tuple[list[dict[str, Phase]], list[Phase]]:
    gatepass, ceiling, peer = targets
    for target in (ceiling, gatepass, peer):
        measure(
            target,
            connections=WARMUP_CONNECTIONS,
            seconds=WARMUP_SECONDS,
            rate_bound=6000.0,
            workdir=workdir,
        )
    console.print(f"Interleaved at {TOP} connections, {ROUNDS} rounds:")
    rounds: list[dict[str, Phase]] = []
    bound = 6000.0
    for number in range(1, ROUNDS + 1):
        phases: dict[str, Phase] = {}
        for target in (ceiling, gatepass, peer):
            phase = measure(
                target,
                connections=TOP,
                seconds=PHASE_SECONDS,
                rate_bound=bound,
                workdir=workdir,
                round_number=number,
            )
            phases[target.name] = phase
            if target is ceiling:
                # Nothing that checks a proof is faster than the bare ceiling.
                bound = phase.rps
        rounds.append(phases)
    console.print("One connection (latency of a lone client):")
    single = [
        measure(
            target,
            connections=1,
            seconds=ONE_CLIENT_SECONDS,
            rate_bound=bound,
            workdir=workdir,
        )
        for target in (gatepass, peer)
    ]
    return rounds, single


def run(workdir: Path, processes: Processes) -> dict[str, Any]:
    """Run every measurement; return the JSON report."""
    started_at = SystemClock().now()
    loads = {"before": load_average()}
    console.print(f"Load average before the run: {loads['before']}")
    peer_version = ensure_installed()
    targets = _start(workdir, processes)
    try:
        rounds, single = _measure_all(workdir, targets)
    finally:
        for target in targets:
            if target.proofs is not None:
                target.proofs.close()
        processes.stop_all()
    loads["after"] = load_average()
    console.print(
        f"In-process breakdown: {STAGE_ITERATIONS} requests each way (~30 s) ..."
    )
    stages_dir = workdir / "in-process"
    stages_dir.mkdir()
    stages = measure_stages(stages_dir, STAGE_ITERATIONS)

    phases = [phase for r in rounds for phase in r.values()] + single
    aims = evaluate_aims(rounds)
    print_phases(phases)
    print_stages(stages)
    print_aims(aims, loads)
    invalid = [p for p in phases if p.problems]
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
        "load_average": loads,
        "versions": versions(peer_version),
        "servers": {
            "gatepass": "gatepass serve -c <generated toml>: one process, SQLite "
            "(WAL, synchronous=NORMAL) in a temp dir, background jobs on",
            "ceiling": "bench/ceiling_app.py: Starlette POST /token reading the body "
            "and signing one ES256 JWT with gatepass JWTIssuer",
            "peer": f"oidc-provider {pinned_version()} (bench/peers/oidc-provider/"
            "server.mjs): client_credentials, client_secret_basic, DPoP, resource "
            "indicator, ES256 at+jwt, one Node process, in-memory store",
            "uvicorn_options": {
                **{k: str(v) if v is None else v for k, v in UVICORN_OPTIONS.items()},
                "loop": "auto (uvloop)",
                "http": "auto (httptools)",
                "workers": 1,
            },
            "dpop_max_age_seconds": DPOP_MAX_AGE_SECONDS,
            "task_ttl_seconds": TASK_TTL_SECONDS,
        },
        "load": {
            "tool": "wrk with bench/wrk_token.lua",
            "order": f"warm-up {WARMUP_SECONDS} s each at {WARMUP_CONNECTIONS} "
            f"connections; {ROUNDS} rounds of ceiling, gatepass, peer at {TOP} "
            f"connections ({PHASE_SECONDS} s each); gatepass and peer at 1 "
            f"connection ({ONE_CLIENT_SECONDS} s each)",
            "gatepass_request": f"POST /token, token exchange of the task token, "
            f"resource={TARGET_URI}, scope=read, DPoP",
            "peer_request": f"POST /token, client_credentials, resource={TARGET_URI}"
            ", scope=read, client_secret_basic, DPoP",
            "proofs": "signed right before each phase (iat = signing time), "
            f"{PROOF_MARGIN}x the ceiling's rate x duration + {PROOF_SLACK}; each "
            f"sent at most once; the ceiling cycles {CEILING_PROOFS} (it checks none)",
        },
        "rounds": [{name: p.to_json() for name, p in r.items()} for r in rounds],
        "one_connection": [p.to_json() for p in single],
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
