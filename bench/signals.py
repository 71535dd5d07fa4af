"""
Signal -> revoked: how long a context signal takes to kill a live credential (issue 14).

    .venv/bin/python bench/signals.py

For each store (SQLite, the embedded default; PostgreSQL 15 on 127.0.0.1 in a
database of its own, dropped at the end) it starts ``gatepass serve`` as its own
process with the quickstart policies, a local SSF transmitter (a P-256 key made
for the run, its JWKS in a file, a push token) and one rule (``session-revoked`` ->
revoke the tasks of the agent it names). Then, ``TRIALS`` times for each path:

* **SET push** - the demo agent opens a task and gets an access token (not
  timed); a ``session-revoked`` SET naming it is signed (not timed); the timer
  runs from sending ``POST /ssf/push`` until RFC 7662 introspection of the access
  token answers ``active: false`` (polled back to back, as a resource server
  would).
* **/v1/signals** - the same setup; the timer runs from ``POST /v1/signals``
  (``risk high`` for the agent, which the quickstart's ``high-risk-agent-nothing``
  guardrail forbids everything for) until introspection answers ``active: false``;
  the risk is cleared (not timed) before the next trial.

The table shows p50/p99 (nearest rank) and the polls needed, against the issue's
aim of at most 1 s from signal to revoked (p99). Results go to
``bench/results/signals.json``. Only 127.0.0.1 is contacted; the broker is stopped
by its pid; temporary files are deleted at the end.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import math
import os
import platform
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
from cryptography.hazmat.primitives.asymmetric import ec
from rich.console import Console
from rich.table import Table

from gatepass.clock import SystemClock
from gatepass.tokens import (
    DPoPKey,
    b64url,
    create_assertion,
    load_private_key,
    public_jwk_from_key,
)
from gatepass.tokens.jws import sign
from harness import Processes, free_port

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS = BENCH / "results" / "signals.json"
QUICKSTART_POLICIES = REPO / "examples" / "quickstart" / "policies"
POSTGRES_URL = os.environ.get(
    "GATEPASS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
TRIALS = 200
WARMUP = 10
POLL_LIMIT = 5.0
AIM_SECONDS = 1.0
ISSUER = "https://idp.bench.test"
AUDIENCE = "https://gatepass.bench.test/ssf"
CAEP = "https://schemas.openid.net/secevent/caep/event-type/"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"  # noqa: S105
JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt"
TXN_TYPE = "urn:ietf:params:oauth:token-type:txn_token"

console = Console(highlight=False)
if not console.is_terminal:
    console = Console(highlight=False, width=150)


class Transmitter:
    """A local SSF transmitter: its key, JWKS file and push token."""

    def __init__(self, workdir: Path) -> None:
        """Make the key and write the files the broker's configuration names."""
        self.key = ec.generate_private_key(ec.SECP256R1())
        jwk = {**public_jwk_from_key(self.key.public_key()), "kid": "bench-1"}
        self.jwks_file = workdir / "transmitter-jwks.json"
        self.jwks_file.write_text(json.dumps({"keys": [{**jwk, "alg": "ES256"}]}))
        self.push_token = uuid.uuid4().hex
        self.token_file = workdir / "transmitter-push.token"
        self.token_file.write_text(self.push_token)

    def make_set(self, agent_name: str) -> str:
        """Return a signed session-revoked SET naming the agent."""
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "sub_id": {"format": "opaque", "id": agent_name},
            "events": {CAEP + "session-revoked": {"event_timestamp": now}},
        }
        header = {"alg": "ES256", "typ": "secevent+jwt", "kid": "bench-1"}
        signing_input = (
            b64url(json.dumps(header).encode())
            + "."
            + b64url(json.dumps(claims).encode())
        )
        signature = sign(signing_input.encode(), self.key, "ES256")
        return f"{signing_input}.{b64url(signature)}"


def render_config(
    workdir: Path, port: int, store: str | None, transmitter: Transmitter
) -> str:
    """Return the bench broker's TOML: the quickstart's plus the transmitter."""
    store_section = "" if store is None else f'[store]\nurl = "{store}"\n'
    return f"""\
[server]
issuer = "http://127.0.0.1:{port}"
host = "127.0.0.1"
port = {port}
state_dir = "{workdir / "state"}"
log_level = "warning"
{store_section}
[dpop]
max_age_seconds = 600

[policy]
directory = "{QUICKSTART_POLICIES}"
reload_interval_seconds = 0

[[targets]]
name = "tickets"
uri = "http://127.0.0.1:{free_port()}/"
environment = "dev"
tenant = "acme"
risk = "low"
actions = ["read", "write"]
max_ttl_seconds = 600

[demo]
enabled = true
agent_name = "demo-agent"
tenant = "acme"
labels = {{ team = "support" }}

[[signals.transmitters]]
issuer = "{ISSUER}"
jwks_file = "{transmitter.jwks_file}"
audience = "{AUDIENCE}"
algorithms = ["ES256"]
push_token_file = "{transmitter.token_file}"

[[signals.rules]]
events = ["session-revoked"]
match = "agent"
effect = "revoke_tasks"
"""


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A PostgreSQL database of this run alone, dropped afterwards."""
    name = f"gatepass_bench_signals_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def running_broker(
    workdir: Path, store: str | None
) -> Iterator[tuple[str, Transmitter]]:
    """Start ``gatepass serve`` as its own process; stop it by its pid at the end."""
    transmitter = Transmitter(workdir)
    port = free_port()
    config = workdir / "gatepass.toml"
    config.write_text(render_config(workdir, port, store, transmitter))
    gatepass = Path(sys.executable).parent / "gatepass"
    processes = Processes()
    try:
        broker = processes.start(
            "broker", [str(gatepass), "serve", "--config", str(config)], port, workdir
        )
        yield broker.url, transmitter
    finally:
        processes.stop_all()


class Trial:
    """The demo agent's side: a task and an access token to be killed."""

    def __init__(self, url: str, http: httpx.Client, identity: dict[str, Any]) -> None:
        """Keep the agent's key."""
        self.url = url
        self.http = http
        self.identity = identity
        self.private_key, _, self.algorithm = load_private_key(identity["private_jwk"])

    def live_token(self) -> str:
        """Open a task, get an access token for tickets, return the token."""
        key = DPoPKey.generate()
        endpoint = f"{self.url}/token"
        assertion = create_assertion(
            self.private_key,
            algorithm=self.algorithm,
            agent_id=self.identity["agent_id"],
            audience=self.url,
            now=SystemClock().now(),
        )
        details = {
            "type": "agent_task",
            "intent": "benchmark signals",
            "purpose": "support-triage",
            "environment": "dev",
            "targets": ["tickets"],
        }
        opened = self.http.post(
            endpoint,
            data={
                "grant_type": TOKEN_EXCHANGE,
                "subject_token": assertion,
                "subject_token_type": JWT_TYPE,
                "requested_token_type": TXN_TYPE,
                "authorization_details": json.dumps([details]),
            },
            headers={"DPoP": key.proof("POST", endpoint)},
        )
        opened.raise_for_status()
        granted = self.http.post(
            endpoint,
            data={
                "grant_type": TOKEN_EXCHANGE,
                "subject_token": opened.json()["access_token"],
                "subject_token_type": TXN_TYPE,
                "resource": "tickets",
                "scope": "read",
            },
            headers={"DPoP": key.proof("POST", endpoint)},
        )
        granted.raise_for_status()
        return str(granted.json()["access_token"])


def until_inactive(http: httpx.Client, url: str, token: str, introspect: str) -> int:
    """Introspect back to back until the token is inactive; return the polls."""
    polls = 0
    deadline = time.monotonic() + POLL_LIMIT
    while time.monotonic() < deadline:
        polls += 1
        answer = http.post(
            f"{url}/introspect",
            data={"token": token},
            headers={"Authorization": f"Bearer {introspect}"},
        )
        if answer.json().get("active") is False:
            return polls
    msg = "token still active after the poll limit"
    raise RuntimeError(msg)


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def measure_store(name: str, store: str | None) -> dict[str, Any]:
    """Run both paths against one store."""
    with tempfile.TemporaryDirectory(prefix=f"gatepass-bench-signals-{name}-") as tmp:
        workdir = Path(tmp)
        with running_broker(workdir, store) as (url, transmitter):
            state = workdir / "state"
            admin = (state / "admin.token").read_text().strip()
            introspect = (state / "introspect.token").read_text().strip()
            identity = json.loads((state / "demo-agent.json").read_text())
            results: dict[str, Any] = {}
            with httpx.Client(timeout=10) as http:
                trial = Trial(url, http, identity)

                def push() -> float:
                    token = trial.live_token()
                    signal = transmitter.make_set("demo-agent")
                    started = time.perf_counter()
                    answer = http.post(
                        f"{url}/ssf/push",
                        content=signal,
                        headers={
                            "Content-Type": "application/secevent+jwt",
                            "Authorization": f"Bearer {transmitter.push_token}",
                        },
                    )
                    if answer.status_code != 202:
                        raise RuntimeError(answer.text)
                    polls.append(until_inactive(http, url, token, introspect))
                    return time.perf_counter() - started

                def own() -> float:
                    token = trial.live_token()
                    headers = {"Authorization": f"Bearer {admin}"}
                    started = time.perf_counter()
                    answer = http.post(
                        f"{url}/v1/signals",
                        json={"kind": "risk", "agent": "demo-agent", "level": "high"},
                        headers=headers,
                    )
                    answer.raise_for_status()
                    polls.append(until_inactive(http, url, token, introspect))
                    elapsed = time.perf_counter() - started
                    http.post(
                        f"{url}/v1/signals",
                        json={"kind": "risk", "agent": "demo-agent", "level": "low"},
                        headers=headers,
                    ).raise_for_status()
                    return elapsed

                paths: dict[str, Callable[[], float]] = {
                    "set_push": push,
                    "v1_signals": own,
                }
                for path, run in paths.items():
                    polls: list[int] = []
                    for _ in range(WARMUP):
                        run()
                    polls.clear()
                    times = [run() for _ in range(TRIALS)]
                    results[path] = {
                        "trials": TRIALS,
                        "p50_ms": round(percentile(times, 0.50) * 1000, 2),
                        "p99_ms": round(percentile(times, 0.99) * 1000, 2),
                        "max_ms": round(max(times) * 1000, 2),
                        "polls_max": max(polls),
                        "aim_ms": AIM_SECONDS * 1000,
                        "pass": percentile(times, 0.99) <= AIM_SECONDS,
                    }
    return results


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages."""
    return [round(value, 2) for value in os.getloadavg()]


def versions() -> dict[str, str]:
    """The versions of what the measurement depends on."""
    found = {}
    for package in ("gatepass", "uvicorn", "starlette", "sqlalchemy", "cedarpy"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[package] = importlib.metadata.version(package)
    return found


def print_table(results: dict[str, Any]) -> None:
    """Print one row per store and path, with the aim and PASS/MISS."""
    table = Table(title="signal -> revoked (introspection refuses the access token)")
    for column in ("store", "path", "trials", "p50 ms", "p99 ms", "max ms", "aim"):
        table.add_column(column, justify="right" if "ms" in column else "left")
    table.add_column("result")
    for store, paths in results.items():
        for path, row in paths.items():
            table.add_row(
                store,
                path.replace("_", " "),
                str(row["trials"]),
                f"{row['p50_ms']:.1f}",
                f"{row['p99_ms']:.1f}",
                f"{row['max_ms']:.1f}",
                "p99 <= 1000 ms",
                "PASS" if row["pass"] else "MISS",
            )
    console.print(table)


def main() -> int:
    """Measure both stores, print the table, write the JSON."""
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    before = load_average()
    stores: dict[str, Callable[[], contextlib.AbstractContextManager[str | None]]] = {
        "sqlite": lambda: contextlib.nullcontext(None),
    }
    try:
        psycopg.connect(POSTGRES_URL, connect_timeout=2).close()
    except psycopg.OperationalError:
        console.print("PostgreSQL is not reachable: measuring SQLite only")
    else:
        stores["postgresql"] = postgres_database
    results: dict[str, Any] = {}
    for name, database in stores.items():
        console.print(f"Measuring {name} ...")
        with database() as store:
            results[name] = measure_store(name, store)
    after = load_average()
    print_table(results)
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
            "broker": "gatepass serve, its own process, background jobs on",
            "set_push": "POST /ssf/push of a signed session-revoked SET (rule: "
            "revoke_tasks of the agent) until introspection says inactive",
            "v1_signals": "POST /v1/signals risk high (guardrail "
            "high-risk-agent-nothing) until introspection says inactive",
            "trials": TRIALS,
            "warmup": WARMUP,
            "percentiles": "nearest rank",
            "aim": "issue 14: at most 1 s from signal to revoked (p99)",
        },
        "results": results,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    console.print(f"Wrote {RESULTS.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
