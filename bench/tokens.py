"""
Micro-benchmark of the token hot paths: sign, verify, DPoP verify.

Run with ``.venv/bin/python bench/tokens.py``; prints a table and writes
``bench/results/tokens.json``. Not a test.
"""

from __future__ import annotations

import datetime as dt
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

from gatepass.clock import FrozenClock
from gatepass.sealing import Sealer
from gatepass.tokens import (
    DPoPKey,
    DPoPVerifier,
    JWTIssuer,
    JWTVerifier,
    KeyRing,
    MemoryReplayCache,
    rotate,
)

ITERATIONS = 2_000
ISSUER = "https://broker.example"
AUDIENCE = "https://api.example/"
URL = "https://api.example/items"
ACCESS_TOKEN = "access-token"  # noqa: S105 - benchmark data, not a secret
RESULTS = Path(__file__).parent / "results" / "tokens.json"


def ring_for(algorithm: str, sealer: Sealer, clock: FrozenClock) -> KeyRing:
    """Build a ring signing with ``algorithm``."""
    records = rotate(
        [],
        algorithm=algorithm,
        sealer=sealer,
        now=clock.now(),
        retire_after=dt.timedelta(hours=1),
    )
    return KeyRing(records, sealer)


def measure(function: Callable[[int], object]) -> dict[str, float]:
    """Time ``function(i)`` for each iteration; return per-call statistics in µs."""
    for index in range(50):
        function(-index - 1)
    samples = []
    for index in range(ITERATIONS):
        start = time.perf_counter_ns()
        function(index)
        samples.append((time.perf_counter_ns() - start) / 1000)
    samples.sort()
    mean = statistics.fmean(samples)
    return {
        "mean_us": round(mean, 1),
        "p50_us": round(samples[len(samples) // 2], 1),
        "p99_us": round(samples[int(len(samples) * 0.99)], 1),
        "ops_per_s": round(1_000_000 / mean),
    }


def sign_case(issuer: JWTIssuer, claims: dict[str, Any]) -> Callable[[int], object]:
    """Return one signing call."""
    return lambda _: issuer.sign(claims, typ="at+jwt")


def verify_case(verifier: JWTVerifier, token: str) -> Callable[[int], object]:
    """Return one verification call."""
    return lambda _: verifier.verify(token, typ="at+jwt", audience=AUDIENCE)


def dpop_case(
    dpop: DPoPVerifier, proofs: dict[int, str], jkt: str
) -> Callable[[int], object]:
    """Return one DPoP verification call, each with its own proof."""
    return lambda index: dpop.verify(
        proofs[index],
        method="GET",
        url=URL,
        access_token=ACCESS_TOKEN,
        expected_jkt=jkt,
    )


def main() -> None:
    """Run every case and report."""
    clock = FrozenClock()
    sealer = Sealer([Fernet.generate_key()])
    now = int(clock.now().timestamp())
    claims: dict[str, Any] = {
        "sub": "agt_aaaaaaaaaaaaaaaaaaaaaaaaaa",
        "client_id": "agt_aaaaaaaaaaaaaaaaaaaaaaaaaa",
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 300,
        "jti": "jti",
        "scope": "read write",
        "cnf": {"jkt": "x" * 43},
        "txn": "tsk_aaaaaaaaaaaaaaaaaaaaaaaaaa",
    }
    results: dict[str, dict[str, float]] = {}
    for algorithm in ("ES256", "EdDSA"):
        ring = ring_for(algorithm, sealer, clock)
        issuer = JWTIssuer(ring, issuer=ISSUER)
        verifier = JWTVerifier(ring, issuer=ISSUER, clock=clock)
        token = issuer.sign(claims, typ="at+jwt")
        results[f"JWTIssuer.sign {algorithm}"] = measure(sign_case(issuer, claims))
        results[f"JWTVerifier.verify {algorithm}"] = measure(
            verify_case(verifier, token)
        )
    for algorithm in ("ES256", "EdDSA"):
        key = DPoPKey.generate(algorithm)
        dpop = DPoPVerifier(clock=clock, replay=MemoryReplayCache(clock))
        # Proofs are signed up front (unique jti each) so only verification is timed.
        proofs = {
            index: key.proof("GET", URL, access_token=ACCESS_TOKEN, now=clock.now())
            for index in range(-50, ITERATIONS)
        }
        results[f"DPoPVerifier.verify {algorithm}"] = measure(
            dpop_case(dpop, proofs, key.jkt)
        )
    width = max(len(name) for name in results)
    print(
        f"{'case':<{width}}  {'mean µs':>9}  {'p50 µs':>9}  {'p99 µs':>9}  {'ops/s':>8}"
    )
    for name, row in results.items():
        print(
            f"{name:<{width}}  {row['mean_us']:>9}  {row['p50_us']:>9}"
            f"  {row['p99_us']:>9}  {row['ops_per_s']:>8}"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "iterations": ITERATIONS,
                "python": platform.python_version(),
                "machine": platform.machine(),
                "results": results,
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
