"""``gatepass audit export`` and ``verify`` across many pages of events."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet

from gatepass.audit import AuditEntry, AuditRecord, AuditSigner, chain
from gatepass.sealing import Sealer

from .conftest import TUESDAY_MORNING

EVENTS = 2_345


class PagedAuditAPI:
    """
    An admin API that serves only the audit routes, for logs of many pages.

    A real broker would need thousands of requests to fill three pages; this one
    serves a log chained and signed with the audit package itself.
    """

    def __init__(self, count: int, *, fail_after: int | None = None) -> None:
        """Chain ``count`` records and sign a checkpoint in the middle."""
        self.signer, _ = AuditSigner.generate(Sealer([Fernet.generate_key()]))
        self.records: list[AuditRecord] = []
        previous = None
        for index in range(count):
            entry = AuditEntry(
                at=TUESDAY_MORNING + dt.timedelta(seconds=index),
                kind="credential.issue",
                outcome="allow",
                actor="agt_paging",
                subject=f"lse_{index}",
                data={"n": index},
            )
            previous = chain(previous, entry)
            self.records.append(previous)
        middle = self.records[count // 2]
        self.checkpoints = [self.signer.sign(middle.seq, middle.hash, middle.at)]
        self.fail_after = fail_after
        self.requests: list[httpx.Request] = []

    def client(self) -> httpx.Client:
        """Return an HTTP client whose transport is this fake."""
        return httpx.Client(
            base_url="http://broker", transport=httpx.MockTransport(self.handle)
        )

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Answer one admin request."""
        self.requests.append(request)
        if request.url.path == "/v1/audit/checkpoints" and request.method == "POST":
            # "Checkpoint now": the broker signs its head.
            last = self.records[-1]
            if self.checkpoints[-1].seq != last.seq:
                self.checkpoints.append(self.signer.sign(last.seq, last.hash, last.at))
            return httpx.Response(
                200,
                json={
                    "checkpoint": self.checkpoints[-1].to_json(),
                    "public_key": self.signer.public_jwk,
                },
            )
        if request.url.path == "/v1/audit/checkpoints":
            return httpx.Response(
                200,
                json={
                    "items": [c.to_json() for c in self.checkpoints],
                    "public_key": self.signer.public_jwk,
                },
            )
        after = int(request.url.params["after"])
        limit = int(request.url.params["limit"])
        if self.fail_after is not None and after >= self.fail_after:
            return httpx.Response(
                503,
                json={"error": "store_unavailable", "error_description": "db gone"},
            )
        items: list[dict[str, Any]] = [
            r.to_json() for r in self.records[after : after + limit]
        ]
        return httpx.Response(
            200, json={"items": items, "next": items[-1]["seq"] if items else after}
        )


@pytest.fixture
def paged() -> PagedAuditAPI:
    """A log of three pages (1000 + 1000 + 345 events)."""
    return PagedAuditAPI(EVENTS)


class TestAuditPaging:
    """Export and verify read the log page by page, 1000 events at a time."""

    def test_export_reads_every_page(self, local_cli, paged, tmp_path):
        """The export holds every event, fetched in pages of 1000."""
        path = tmp_path / "big.jsonl"
        result = local_cli("audit", "export", "-o", str(path), http=paged.client())
        assert result.exit_code == 0, result.output
        lines = path.read_text().splitlines()
        assert len(lines) == 1 + 2 + EVENTS
        assert json.loads(lines[-1])["event"]["seq"] == EVENTS
        assert json.loads(lines[2])["checkpoint"]["seq"] == EVENTS
        pages = [r.url.params["after"] for r in paged.requests if r.url.params]
        assert pages == ["0", "1000", "2000"]
        assert f"exported {EVENTS} events and 2 checkpoints" in result.stderr

    def test_export_verifies(self, local_cli, paged, tmp_path):
        """A multi-page export verifies against the fake's key."""
        path = tmp_path / "big.jsonl"
        local_cli("audit", "export", "-o", str(path), http=paged.client())
        key = tmp_path / "audit.jwk"
        key.write_text(json.dumps(paged.signer.public_jwk))
        result = local_cli(
            "audit", "verify", "--file", str(path), "--public-key", str(key)
        )
        assert result.exit_code == 0, result.output
        assert str(EVENTS) in result.stdout

    def test_verify_live_reads_every_page(self, local_cli, paged):
        """Live verification asks for a checkpoint first and covers every page."""
        result = local_cli("audit", "verify", http=paged.client())
        assert result.exit_code == 0, result.output
        assert [r.method for r in paged.requests[:2]] == ["POST", "GET"]
        pages = [r.url.params["after"] for r in paged.requests if r.url.params]
        assert pages == ["0", "1000", "2000"]
        assert f"{EVENTS}" in result.stdout
        assert "no anchor journal" in result.stderr

    def test_failed_export_leaves_no_file(self, local_cli, tmp_path):
        """A broker failure mid-export exits with its code and leaves no file."""
        failing = PagedAuditAPI(EVENTS, fail_after=1000)
        path = tmp_path / "big.jsonl"
        result = local_cli("audit", "export", "-o", str(path), http=failing.client())
        assert result.exit_code == 69
        assert result.stderr == "gatepass: db gone\n"
        assert not path.exists()
        assert not (tmp_path / "big.jsonl.partial").exists()
