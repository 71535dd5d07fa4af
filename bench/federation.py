"""
Opening a task: a federated workload token against a registered-key assertion.

    .venv/bin/python bench/federation.py [--iterations N]

Issue 11 asks ``bench/issuance.py`` for this row; it lives here because
``issuance.py`` measures throughput against the peer under wrk, while this is a
latency comparison of two kinds of subject token through the same endpoint;
``make bench`` runs it next to ``issuance.py``.

One ``gatepass serve`` process (SQLite, the bench configuration of
``broker_config.py``) trusts a GitHub Actions issuer (the ``github-actions``
preset, keys in a JWK Set file written by this run, RS256 as GitHub signs). One
request at a time, interleaved, ``ROUNDS`` x ``ITERATIONS`` times, it opens a task:

* **registered** - the demo agent's RFC 7523 assertion, signed by its registered key;
* **federated** - a GitHub Actions ID token (a fresh ``jti`` each time: the preset
  makes tokens single use), mapped to its agent by the preset's claim rules; the
  first request registers the agent (``on_unknown_subject = "register"``), the
  measured ones find it.

Each request carries a fresh DPoP proof; tokens and proofs are signed before the
timer starts, so the figures are the broker's work and the HTTP round trip. There
is no aim in issue 11: the table shows both and the federated overhead. Results go
to ``bench/results/federation.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from rich.console import Console
from rich.table import Table

from broker_config import (
    POLICIES,
    TOKEN_EXCHANGE,
    TXN_TYPE,
    open_task_form,
    render_config,
)
from gatepass.tokens import ID_TOKEN_TYPE, DPoPKey, public_jwk_from_key
from harness import Processes, free_port, load_average, machine

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results" / "federation.json"
ROUNDS = 3
ITERATIONS = 200
WARMUP = 20
GITHUB = "https://token.actions.githubusercontent.com"
AUDIENCE = "https://gatepass.bench"
KID = "bench-gh-1"

FEDERATED_POLICY = f"""
// The federated deployer may read dev tickets, as the demo agent may.
@id("bench-federated-reads-dev-tickets")
permit (principal, action == Gatepass::Action::"read", resource)
when {{
  principal has issuer && principal.issuer == "{GITHUB}" &&
  resource.environment == "dev"
}};
"""

console = Console(highlight=False)
if not console.is_terminal:
    console = Console(highlight=False, width=150)


def issuer_table(jwks_file: Path) -> str:
    """The ``[[identity.issuers]]`` table of the bench's GitHub Actions issuer."""
    return f"""
[[identity.issuers]]
name = "github"
preset = "github-actions"
audience = "{AUDIENCE}"
jwks_file = "{jwks_file}"
on_unknown_subject = "register"
rules = [{{ match = {{ repository_owner_id = "1234" }}, tenant = "acme" }}]
"""


class GithubIssuer:
    """The bench's stand-in for GitHub's OIDC issuer: a key and its tokens."""

    def __init__(self) -> None:
        """Generate the signing key."""
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def key_set(self) -> dict[str, Any]:
        """The JWK Set the broker reads from its file."""
        jwk = {**public_jwk_from_key(self._key.public_key()), "kid": KID}
        return {"keys": [{**jwk, "alg": "RS256", "use": "sig"}]}

    def token(self) -> str:
        """A deployment job's ID token, valid for five minutes, unique ``jti``."""
        now = int(time.time())
        claims = {
            "iss": GITHUB,
            "sub": "repo:acme/deployer:environment:prod",
            "aud": AUDIENCE,
            "jti": uuid.uuid4().hex,
            "iat": now,
            "nbf": now,
            "exp": now + 300,
            "repository": "acme/deployer",
            "repository_owner": "acme",
            "repository_owner_id": "1234",
            "ref": "refs/heads/main",
            "environment": "prod",
            "job_workflow_ref": "acme/deployer/.github/workflows/d.yml@refs/heads/main",
        }
        return jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": KID})


def federated_form(token: str) -> dict[str, str]:
    """The open-task form with the ID token as the subject token."""
    details = {
        "type": "agent_task",
        "intent": "benchmark opening a federated task",
        "purpose": "deploy",
        "environment": "dev",
        "targets": ["tickets"],
        "max_ttl_seconds": 600,
    }
    return {
        "grant_type": TOKEN_EXCHANGE,
        "subject_token": token,
        "subject_token_type": ID_TOKEN_TYPE,
        "requested_token_type": TXN_TYPE,
        "authorization_details": json.dumps([details]),
    }


def open_once(http: httpx.Client, endpoint: str, form: dict[str, str]) -> float:
    """Send one prepared open-task request; return the seconds it took."""
    request = http.build_request(
        "POST",
        endpoint,
        data=form,
        headers={"DPoP": DPoPKey.generate("ES256").proof("POST", endpoint)},
    )
    started = time.perf_counter()
    answer = http.send(request)
    took = time.perf_counter() - started
    if answer.status_code != 200:
        msg = f"opening a task failed: {answer.status_code} {answer.text}"
        raise RuntimeError(msg)
    return took


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile of ``values``."""
    ordered = sorted(values)
    return ordered[max(1, round(share * len(ordered))) - 1]


def measure(iterations: int) -> dict[str, Any]:
    """Run the rounds against one broker; return each round's p50/p99 and medians."""
    issuer = GithubIssuer()
    processes = Processes()
    with tempfile.TemporaryDirectory(prefix="gp-bench-federation-") as tmp:
        workdir = Path(tmp)
        policies = workdir / "policies"
        shutil.copytree(POLICIES, policies, ignore=shutil.ignore_patterns("tests"))
        (policies / "federated.cedar").write_text(FEDERATED_POLICY)
        jwks_file = workdir / "github-jwks.json"
        jwks_file.write_text(json.dumps(issuer.key_set()))
        state = workdir / "state"
        port = free_port()
        config = render_config(state, port).replace(str(POLICIES), str(policies))
        (workdir / "gatepass.toml").write_text(config + issuer_table(jwks_file))
        gatepass_cli = Path(sys.executable).with_name("gatepass")
        try:
            broker = processes.start(
                "gatepass",
                [str(gatepass_cli), "serve", "-c", str(workdir / "gatepass.toml")],
                port,
                workdir,
            )
            endpoint = f"{broker.url}/token"
            identity = json.loads((state / "demo-agent.json").read_text())
            kinds = {
                "registered": lambda: open_task_form(identity, broker.url),
                "federated": lambda: federated_form(issuer.token()),
            }
            rounds: list[dict[str, dict[str, float]]] = []
            with httpx.Client(timeout=10) as http:
                for _ in range(WARMUP):
                    for build in kinds.values():
                        open_once(http, endpoint, build())
                for number in range(ROUNDS):
                    samples: dict[str, list[float]] = {kind: [] for kind in kinds}
                    for _ in range(iterations):
                        for kind, build in kinds.items():
                            samples[kind].append(open_once(http, endpoint, build()))
                    rounds.append(
                        {
                            kind: {
                                "p50_ms": round(percentile(v, 0.5) * 1000, 3),
                                "p99_ms": round(percentile(v, 0.99) * 1000, 3),
                            }
                            for kind, v in samples.items()
                        }
                    )
                    console.print(f"  round {number + 1}: {rounds[-1]}")
        finally:
            processes.stop_all()
    medians = {
        kind: {
            key: round(statistics.median(r[kind][key] for r in rounds), 3)
            for key in ("p50_ms", "p99_ms")
        }
        for kind in ("registered", "federated")
    }
    return {"rounds": rounds, "median_of_rounds": medians}


def print_table(result: dict[str, Any]) -> None:
    """Print the two rows and the federated overhead."""
    medians = result["median_of_rounds"]
    table = Table(title=f"Opening a task: median of {ROUNDS} rounds (no aim, issue 11)")
    table.add_column("subject token")
    table.add_column("p50 ms", justify="right")
    table.add_column("p99 ms", justify="right")
    table.add_column("p50 vs registered", justify="right")
    base = medians["registered"]["p50_ms"]
    labels = {
        "registered": "registered key: RFC 7523 assertion",
        "federated": "federated: GitHub Actions ID token (JWKS file)",
    }
    for kind, label in labels.items():
        p50 = medians[kind]["p50_ms"]
        extra = "" if kind == "registered" else f"{p50 / base:.2f}x"
        table.add_row(label, f"{p50:.2f}", f"{medians[kind]['p99_ms']:.2f}", extra)
    console.print(table)


def run(iterations: int = ITERATIONS) -> dict[str, Any]:
    """Measure, print the table, write the JSON; return the report."""
    before = load_average()
    console.print("Measuring task opening: registered key vs federated token ...")
    result = measure(iterations)
    print_table(result)
    after = load_average()
    console.print(f"load average before {before}, after {after} (2 cores, shared)")
    report = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {**machine(), "load_average_after": after},
        "method": {
            "broker": "gatepass serve, SQLite, bench/broker_config.py + a "
            "github-actions issuer (jwks_file, RS256 2048, register on first use)",
            "client": "httpx, one connection, one request at a time, registered "
            "and federated interleaved; tokens and DPoP proofs signed before the "
            "timer starts",
            "rounds": ROUNDS,
            "iterations_per_round": iterations,
            "warmup": WARMUP,
            "aim": "none given by issue 11: both figures and the overhead",
        },
        "results": result,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    console.print(f"Wrote {RESULTS.relative_to(BENCH.parent)}")
    return report


def main() -> int:
    """Parse the options and run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=ITERATIONS)
    options = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        run(options.iterations)
        return 0
    return 130


if __name__ == "__main__":
    sys.exit(main())
