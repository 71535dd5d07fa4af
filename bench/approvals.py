"""
The latency the step-up approval path adds, excluding human time, over HTTP.

    .venv/bin/python bench/approvals.py

For each store (SQLite, the embedded default; PostgreSQL 15 on 127.0.0.1, in a
database of its own, dropped at the end) it starts the broker as its own process
(``approvals_broker.py``: ``gatepass serve``, its approve route timed), adds an
approver operator through the admin API, opens one task for the demo agent, and then,
one request at a time, repeats ``ROUNDS`` x ``ITERATIONS`` times:

* **reference** - the same access-token request (``write``, 60 s token) on a target
  whose permit needs no approval;
* **(a) ask** - the request on the target that needs one approval: the broker
  decides, writes the approval and its audit record, answers
  ``authorization_pending``;
* **poll** - the same request with ``approval_id`` while it still waits (what every
  waiting agent sends every ``interval`` seconds);
* **(b) vote** - an approver's vote that makes it redeemable: the client-observed
  time of ``POST /v1/admin/approvals/{id}/approve`` (the approver's operator token)
  and, inside the broker, the app's own time for it (its ``Server-Timing``);
* **(c) redeem** - the repeated request that returns the token (spends the approval
  in the lease's transaction).

Every request carries a fresh DPoP proof, signed before the timer starts. The
machine's load average is recorded before and after; each round's p50/p99 is kept
and the table shows the median over rounds. There is no aim (issue 9 gives none):
the table shows the figures and the overhead against the reference. Results go to
``bench/results/approvals.json``. Only 127.0.0.1 is contacted; the broker process is
stopped by its pid and temporary files are deleted at the end.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
from rich.console import Console
from rich.table import Table

from approvals_broker import APPROVER_GROUP
from broker_config import JWT_TYPE, TOKEN_EXCHANGE, TXN_TYPE
from gatepass.clock import SystemClock
from gatepass.tokens import DPoPKey, create_assertion, load_private_key
from harness import Processes, free_port

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS = BENCH / "results" / "approvals.json"
QUICKSTART_POLICIES = REPO / "examples" / "quickstart" / "policies"
POSTGRES_URL = os.environ.get(
    "GATEPASS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
ROUNDS = 3
ITERATIONS = 200
WARMUP = 30
TASK_TTL_SECONDS = 3600
APPROVED = "ledger-approval"
OPEN = "ledger-open"
ACCESS_TYPE = "urn:ietf:params:oauth:token-type:access_token"

BENCH_POLICY = f"""
// The bench's two targets differ only in the approval their write needs.
@id("bench-writes-need-approval")
@ttl("60")
@approval("{APPROVER_GROUP}")
@quorum("1")
@approval_ttl("900")
@max_uses("1")
permit (principal, action == Gatepass::Action::"write", resource)
when {{ resource == Gatepass::Target::"{APPROVED}" }};

@id("bench-writes-open")
@ttl("60")
permit (principal, action == Gatepass::Action::"write", resource)
when {{ resource == Gatepass::Target::"{OPEN}" }};
"""

console = Console(highlight=False)
if not console.is_terminal:
    console = Console(highlight=False, width=150)


def render_config(state_dir: Path, policies: Path, port: int, store: str | None) -> str:
    """Return the bench broker's TOML: the quickstart's, two bench targets."""
    store_section = "" if store is None else f'[store]\nurl = "{store}"\n'
    targets = "".join(
        f"""
[[targets]]
name = "{name}"
uri = "https://{name}.example.internal/"
environment = "bench"
tenant = "acme"
risk = "high"
actions = ["read", "write"]
max_ttl_seconds = 300
"""
        for name in (APPROVED, OPEN)
    )
    return f"""\
[server]
issuer = "http://127.0.0.1:{port}"
host = "127.0.0.1"
port = {port}
state_dir = "{state_dir}"
log_level = "warning"

{store_section}
[tokens]
algorithm = "ES256"
task_max_ttl_seconds = {TASK_TTL_SECONDS}

[policy]
directory = "{policies}"

[approvals]
poll_interval_seconds = 5

[[targets]]
name = "tickets"
uri = "http://127.0.0.1:8401/"
environment = "dev"
tenant = "acme"
risk = "low"
actions = ["read", "write"]
max_ttl_seconds = 600
{targets}
[demo]
enabled = true
agent_name = "demo-agent"
tenant = "acme"
labels = {{ team = "support" }}
resource_port = {free_port()}
resource_target = "tickets"
"""


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A PostgreSQL database of this run alone, dropped afterwards."""
    name = f"gatepass_bench_approvals_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def running_broker(workdir: Path, store: str | None) -> Iterator[str]:
    """Start the bench broker as its own process; stop it (by pid) at the end."""
    policies = workdir / "policies"
    shutil.copytree(
        QUICKSTART_POLICIES, policies, ignore=shutil.ignore_patterns("tests")
    )
    (policies / "bench.cedar").write_text(BENCH_POLICY)
    port = free_port()
    config = workdir / "gatepass.toml"
    config.write_text(render_config(workdir / "state", policies, port, store))
    processes = Processes()
    try:
        broker = processes.start(
            "broker",
            [sys.executable, str(BENCH / "approvals_broker.py"), str(config)],
            port,
            workdir,
        )
        yield broker.url
    finally:
        processes.stop_all()


@dataclass
class Agent:
    """The demo agent's task, and the requests the bench times."""

    url: str
    http: httpx.Client
    key: DPoPKey
    task_token: str = ""
    approver_token: str = ""

    @property
    def token_endpoint(self) -> str:
        """The broker's token endpoint."""
        return f"{self.url}/token"

    def open_task(self, identity: dict[str, Any]) -> None:
        """Open the task on both bench targets, for an hour."""
        private_key, _, algorithm = load_private_key(identity["private_jwk"])
        clock = SystemClock()
        assertion = create_assertion(
            private_key,
            algorithm=algorithm,
            agent_id=identity["agent_id"],
            audience=self.url,
            now=clock.now(),
        )
        details = {
            "type": "agent_task",
            "intent": "benchmark the approval path",
            "purpose": "support-triage",
            "environment": "bench",
            "targets": [APPROVED, OPEN],
            "max_ttl_seconds": TASK_TTL_SECONDS,
        }
        form = {
            "grant_type": TOKEN_EXCHANGE,
            "subject_token": assertion,
            "subject_token_type": JWT_TYPE,
            "requested_token_type": TXN_TYPE,
            "authorization_details": json.dumps([details]),
        }
        answer = self.http.post(
            self.token_endpoint, data=form, headers={"DPoP": self.proof()}
        )
        answer.raise_for_status()
        self.task_token = str(answer.json()["access_token"])

    def proof(self, url: str | None = None) -> str:
        """A fresh DPoP proof for a POST to the token endpoint."""
        return self.key.proof(
            "POST", url or self.token_endpoint, now=SystemClock().now()
        )

    def token_request(self, target: str, approval_id: str | None = None) -> Request:
        """The access-token request for ``write`` on ``target``, ready to send."""
        form = {
            "grant_type": TOKEN_EXCHANGE,
            "subject_token": self.task_token,
            "subject_token_type": TXN_TYPE,
            "requested_token_type": ACCESS_TYPE,
            "resource": target,
            "scope": "write",
        }
        if approval_id is not None:
            form["approval_id"] = approval_id
        request = self.http.build_request(
            "POST", self.token_endpoint, data=form, headers={"DPoP": self.proof()}
        )
        return Request(self.http, request)

    def add_approver(self, admin_token: str) -> None:
        """Add the bench's approver operator (admin API); keep their token."""
        answer = self.http.post(
            f"{self.url}/v1/admin/operators",
            json={
                "name": "bench-approver",
                "roles": ["approver"],
                "groups": [APPROVER_GROUP],
                "tenants": ["acme"],
            },
            headers={"Authorization": f"Bearer {admin_token}"},
        )
        answer.raise_for_status()
        self.approver_token = str(answer.json()["token"])

    def vote_request(self, approval_id: str) -> Request:
        """The approver's approving vote, through the admin API."""
        request = self.http.build_request(
            "POST",
            f"{self.url}/v1/admin/approvals/{approval_id}/approve",
            json={"reason": "bench"},
            headers={"Authorization": f"Bearer {self.approver_token}"},
        )
        return Request(self.http, request)


@dataclass
class Request:
    """One prepared request; sending it is what is timed."""

    http: httpx.Client
    request: httpx.Request

    def timed(self, expect: int) -> tuple[float, dict[str, Any]]:
        """Send it; return the seconds it took and the JSON answer."""
        took, body, _ = self.timed_with_headers(expect)
        return took, body

    def timed_with_headers(
        self, expect: int
    ) -> tuple[float, dict[str, Any], httpx.Headers]:
        """Send it; return the seconds it took, the JSON answer and the headers."""
        started = time.perf_counter()
        response = self.http.send(self.request)
        took = time.perf_counter() - started
        if response.status_code != expect:
            msg = f"expected {expect}, got {response.status_code}: {response.text}"
            raise RuntimeError(msg)
        body: dict[str, Any] = response.json()
        return took, body, response.headers


@dataclass
class Samples:
    """Latencies of each step, in seconds."""

    steps: dict[str, list[float]] = field(default_factory=dict)

    def add(self, step: str, seconds: float) -> None:
        """Record one latency."""
        self.steps.setdefault(step, []).append(seconds)


STEPS = ("reference", "ask", "poll", "vote", "vote_use_case", "redeem")


def cycle(agent: Agent, samples: Samples) -> None:
    """One reference request and one whole approval, each step timed."""
    took, _ = agent.token_request(OPEN).timed(200)
    samples.add("reference", took)
    took, pending = agent.token_request(APPROVED).timed(400)
    if pending.get("error") != "authorization_pending":
        msg = f"expected authorization_pending, got {pending}"
        raise RuntimeError(msg)
    samples.add("ask", took)
    approval_id = str(pending["approval_id"])
    took, _ = agent.token_request(APPROVED, approval_id).timed(400)
    samples.add("poll", took)
    took, voted, headers = agent.vote_request(approval_id).timed_with_headers(200)
    if voted["state"] != "approved":
        msg = f"expected approved, got {voted}"
        raise RuntimeError(msg)
    samples.add("vote", took)
    samples.add("vote_use_case", server_seconds(headers))
    took, granted = agent.token_request(APPROVED, approval_id).timed(200)
    if not 0 < int(granted["expires_in"]) <= 60:
        msg = f"unexpected token lifetime {granted['expires_in']}"
        raise RuntimeError(msg)
    samples.add("redeem", took)


def server_seconds(headers: httpx.Headers) -> float:
    """The app's own time from ``Server-Timing: app;dur=<ms>``."""
    timing = headers.get("server-timing", "")
    name, _, duration = timing.partition(";dur=")
    if name != "app" or not duration:
        msg = f"no Server-Timing on the approve answer: {timing!r}"
        raise RuntimeError(msg)
    return float(duration) / 1000


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile of ``values``."""
    ordered = sorted(values)
    rank = max(1, round(share * len(ordered)))
    return ordered[rank - 1]


def summary(values: list[float]) -> dict[str, float]:
    """p50, p99 and mean in milliseconds."""
    return {
        "p50_ms": round(percentile(values, 0.50) * 1000, 3),
        "p99_ms": round(percentile(values, 0.99) * 1000, 3),
        "mean_ms": round(statistics.fmean(values) * 1000, 3),
    }


def measure_store(name: str, store: str | None) -> dict[str, Any]:
    """Run the rounds against one broker; return each round and the medians."""
    with (
        tempfile.TemporaryDirectory(prefix=f"gp-bench-approvals-{name}-") as tmp,
        running_broker(Path(tmp), store) as url,
        httpx.Client(timeout=10) as http,
    ):
        state = Path(tmp) / "state"
        identity = json.loads((state / "demo-agent.json").read_text())
        agent = Agent(url, http, DPoPKey.generate())
        agent.add_approver((state / "admin.token").read_text().strip())
        agent.open_task(identity)
        for _ in range(WARMUP):
            cycle(agent, Samples())
        rounds: list[dict[str, dict[str, float]]] = []
        for number in range(ROUNDS):
            samples = Samples()
            for _ in range(ITERATIONS):
                cycle(agent, samples)
            rounds.append({step: summary(samples.steps[step]) for step in STEPS})
            console.print(
                f"  {name} round {number + 1}: ask p50 "
                f"{rounds[-1]['ask']['p50_ms']} ms, reference p50 "
                f"{rounds[-1]['reference']['p50_ms']} ms"
            )
    medians = {
        step: {
            key: round(statistics.median(r[step][key] for r in rounds), 3)
            for key in ("p50_ms", "p99_ms", "mean_ms")
        }
        for step in STEPS
    }
    return {"rounds": rounds, "median_of_rounds": medians}


ROWS: tuple[tuple[str, str], ...] = (
    ("reference", "reference: the same token, no approval needed"),
    ("ask", "(a) first ask -> authorization_pending (writes the approval)"),
    ("poll", "poll while pending (every `interval` s per waiting agent)"),
    ("vote", "(b) vote -> redeemable: POST /v1/admin/approvals/{id}/approve"),
    ("vote_use_case", "(b) the same vote, the broker app's own time"),
    ("redeem", "(c) redemption -> token (spends the approval)"),
)


def print_store(name: str, result: dict[str, Any]) -> None:
    """Print one store's table: medians over rounds, overhead vs the reference."""
    medians = result["median_of_rounds"]
    reference = medians["reference"]["p50_ms"]
    table = Table(
        title=f"Approval path on {name}: median of {ROUNDS} rounds x {ITERATIONS}"
    )
    table.add_column("step")
    table.add_column("p50 ms", justify="right")
    table.add_column("p99 ms", justify="right")
    table.add_column("p50 vs reference", justify="right")
    for step, label in ROWS:
        p50 = medians[step]["p50_ms"]
        extra = "" if step == "reference" else f"{p50 / reference:.2f}x"
        table.add_row(label, f"{p50:.2f}", f"{medians[step]['p99_ms']:.2f}", extra)
    agent_side = medians["ask"]["p50_ms"] + medians["redeem"]["p50_ms"]
    table.add_row(
        "agent's requests (a)+(c), excluding the wait",
        f"{agent_side:.2f}",
        "",
        f"+{agent_side - reference:.2f} ms",
    )
    console.print(table)


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages."""
    return [round(value, 2) for value in os.getloadavg()]


def versions() -> dict[str, str]:
    """The versions of what the measurement depends on."""
    found = {}
    for package in (
        "gatepass",
        "uvicorn",
        "starlette",
        "sqlalchemy",
        "psycopg",
        "cryptography",
        "cedarpy",
        "httpx",
    ):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[package] = importlib.metadata.version(package)
    with psycopg.connect(POSTGRES_URL) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    found["postgresql"] = str(row[0]) if row else "?"
    return found


def main() -> int:
    """Measure both stores, print the tables, write the JSON."""
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    before = load_average()
    stores: dict[str, Callable[[], contextlib.AbstractContextManager[str | None]]] = {
        "sqlite": lambda: contextlib.nullcontext(None),
        "postgresql": postgres_database,
    }
    results: dict[str, Any] = {}
    for name, database in stores.items():
        console.print(f"Measuring {name} ...")
        with database() as store:
            results[name] = measure_store(name, store)
    after = load_average()
    for name, result in results.items():
        print_store(name, result)
    console.print(f"load average before {before}, after {after} (2 cores, shared)")
    report = {
        "date": started,
        "machine": {
            "nproc": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_average_before": before,
            "load_average_after": after,
        },
        "versions": versions(),
        "method": {
            "broker": "bench/approvals_broker.py: gatepass serve's app and uvicorn "
            "options, its own process, background jobs on; votes through "
            "POST /v1/admin/approvals/{id}/approve with an approver operator's "
            "token, whose answer carries Server-Timing (the app's own time)",
            "client": "httpx, one connection, one request at a time; a fresh DPoP "
            "proof per request, signed before the timer starts",
            "cycle": "reference token (no approval) ; (a) ask -> pending ; poll -> "
            "pending ; (b) vote -> approved ; (c) redeem -> 60 s token",
            "rounds": ROUNDS,
            "iterations_per_round": ITERATIONS,
            "warmup_cycles": WARMUP,
            "percentiles": "nearest rank; the summary is the median over rounds",
            "stores": {
                "sqlite": "embedded default: a fresh file in a temp dir (WAL)",
                "postgresql": "PostgreSQL on 127.0.0.1, a database of its own, "
                "dropped at the end",
            },
            "aim": "none given by issue 9: figures and overhead vs the reference",
        },
        "results": results,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    shown = RESULTS.relative_to(REPO) if RESULTS.is_relative_to(REPO) else RESULTS
    console.print(f"Wrote {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
