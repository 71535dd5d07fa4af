"""
The response scanner's own cost, without the network: MB/s through one scan.

Streams a body through a route's :class:`~gatepass.proxy.scanner.StreamScan` in
16 KiB chunks (plain text, and gzip decoded first), for a header secret and for
basic auth (twice the spellings). Prints a table and writes
``bench/results/proxy_scanner.json``.
"""

from __future__ import annotations

import gzip
import json
import secrets
import statistics
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from gatepass.proxy.compartments import Compartment, UpstreamAuth
from gatepass.proxy.encodings import BodyDecoder
from gatepass.secret import Secret

RESULTS = Path(__file__).resolve().parent / "results" / "proxy_scanner.json"
BODY = (
    b'{"id": 1, "title": "printer on fire", "body": "' + b"lorem ipsum " * 40 + b'"}\n'
) * 2000
CHUNK = 16_384
ROUNDS = 7
console = Console(width=100)


def compartment(method: str) -> Compartment:
    """A compartment with a random secret."""
    auth = UpstreamAuth.model_validate(
        {
            "method": method,
            "name": "X-Api-Key" if method == "header" else None,
            "username": "svc" if method == "basic" else None,
            "secret_env": "UNUSED",
        }
    )
    return Compartment("bench", auth, Secret(secrets.token_urlsafe(32)))


def scan_rate(target: Compartment, body: bytes, *, coding: str | None) -> float:
    """Return the median MB/s (of decoded bytes) through decode + scan."""
    rates = []
    for _ in range(ROUNDS):
        decoder = BodyDecoder.for_headers(
            [(b"content-encoding", coding.encode())] if coding else []
        )
        scan = target.stream_scan()
        relayed = 0
        started = time.perf_counter()
        for start in range(0, len(body), CHUNK):
            for piece in decoder.feed(body[start : start + CHUNK]):
                relayed += len(scan.feed(piece))
        relayed += len(scan.finish())
        elapsed = time.perf_counter() - started
        rates.append(relayed / elapsed / 1e6)
    return round(statistics.median(rates), 1)


def main() -> int:
    """Measure and report."""
    compressed = gzip.compress(BODY)
    results = {}
    table = Table(title=f"scanner throughput, {len(BODY) // 1024} KiB body, MB/s")
    table.add_column("route auth")
    table.add_column("identity", justify="right")
    table.add_column("gzip", justify="right")
    for method in ("header", "basic"):
        target = compartment(method)
        plain = scan_rate(target, BODY, coding=None)
        zipped = scan_rate(target, compressed, coding="gzip")
        results[method] = {"identity_mb_s": plain, "gzip_mb_s": zipped}
        table.add_row(method, str(plain), str(zipped))
    console.print(table)
    RESULTS.write_text(
        json.dumps({"body_bytes": len(BODY), **results}, indent=2) + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
