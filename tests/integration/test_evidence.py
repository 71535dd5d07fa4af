"""
Evidence bundles and the framework report over a real broker.

A broker over HTTP with an HTTP target and a real PostgreSQL target: the demo agent
opens a task, takes an access token and a PostgreSQL role, and closes it; the
bundle is exported with the CLI over the admin API and verified offline with only
the audit public key. Another task of the same agent runs beside it, and nothing
of it may be disclosed.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import json
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from tests.conftest import POSTGRES_URL, require_service
from typer.testing import CliRunner, Result

from gatepass.api import create_app
from gatepass.audit import AuditEntry
from gatepass.broker import Runtime, build_runtime
from gatepass.cli import app
from gatepass.config import Settings
from gatepass.errors import AuditIntegrityError
from gatepass.evidence import inspect_bundle
from gatepass.ids import new_task_id, new_token_id
from gatepass.sdk import AgentIdentity, GatepassClient
from gatepass.store import audit_log as audit_rows
from gatepass.store import tasks as task_rows

from .conftest import QUICKSTART_POLICIES, free_port, start_server
from .deadline import poll

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

RUN = uuid.uuid4().hex[:8]
PG_TARGET = f"ledger-{RUN}"
POLICY = """
@id("work-in-own-tenant")
@ttl("600")
permit (
  principal,
  action in [Gatepass::Action::"read", Gatepass::Action::"write"],
  resource
)
when { resource.tenant == principal.tenant };
"""
SECRET_INTENT = f"quarterly payroll export {RUN}"


def _admin() -> psycopg.Connection[Any]:
    return psycopg.connect(POSTGRES_URL, autocommit=True)


def _url(database: str) -> str:
    return POSTGRES_URL.rsplit("/", 1)[0] + f"/{database}"


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    """A throwaway PostgreSQL database with one table."""
    require_service("PostgreSQL", POSTGRES_URL, 5432)
    name = f"gp_ev_{RUN}"
    with _admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
        conn.execute(f'REVOKE CONNECT ON DATABASE "{name}" FROM PUBLIC')
    with psycopg.connect(_url(name), autocommit=True) as conn:
        conn.execute("CREATE SCHEMA app")
        conn.execute("CREATE TABLE app.entries (id serial PRIMARY KEY, note text)")
    try:
        yield name
    finally:
        with _admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            rows = conn.execute(
                "SELECT rolname FROM pg_roles WHERE shobj_description(oid, 'pg_authid')"
                " LIKE %s",
                (f"%{PG_TARGET}%",),
            ).fetchall()
            for (role,) in rows:
                conn.execute(f'DROP ROLE IF EXISTS "{role}"')


def _settings(state: Path, port: int, database: str, **tokens: int) -> Settings:
    policies = state.parent / "policies"
    if not policies.exists():
        policies.mkdir(parents=True)
        for name in ("schema.cedarschema", "tenancy.cedar"):
            shutil.copy(QUICKSTART_POLICIES / name, policies / name)
        (policies / "work.cedar").write_text(POLICY)
    raw: dict[str, Any] = {
        "server": {
            "issuer": f"http://127.0.0.1:{port}",
            "port": port,
            "state_dir": str(state),
        },
        "policy": {"directory": str(policies), "reload_interval_seconds": 0},
        "tokens": tokens,
        "targets": [
            {
                "name": "tickets",
                "uri": "https://tickets.example.internal/",
                "environment": "dev",
                "tenant": "acme",
                "actions": ["read", "write"],
                "max_ttl_seconds": 600,
            },
            {
                "name": PG_TARGET,
                "uri": f"postgresql://127.0.0.1:5432/{database}",
                "kind": "postgres",
                "environment": "dev",
                "tenant": "acme",
                "actions": ["read"],
                "max_ttl_seconds": 600,
                "engine": {
                    "admin_url": _url(database),
                    "grants": {
                        "read": [
                            {"schema": "app", "privileges": ["SELECT"], "tables": ["*"]}
                        ]
                    },
                },
            },
        ],
        "demo": {"enabled": True, "tenant": "acme", "labels": {"team": "support"}},
    }
    return Settings.model_validate(raw)


@dataclass
class Served:
    """A broker on 127.0.0.1 and what the tests need of it."""

    url: str
    runtime: Runtime
    state: Path

    @property
    def admin_token(self) -> str:
        """The bootstrap admin token."""
        return (self.state / "admin.token").read_text().strip()

    def cli(self, *args: str) -> Result:
        """Run the CLI against this broker."""
        return CliRunner().invoke(
            app,
            list(args),
            env={"GATEPASS_ADDR": self.url, "GATEPASS_TOKEN": self.admin_token},
        )


@dataclass
class Story:
    """The two tasks the module's tests look at."""

    task_id: str
    other_task_id: str
    other_lease_ids: list[str]
    lease_ids: list[str]


@pytest.fixture(scope="module")
def served(database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The broker, with its background jobs (revocations) running."""
    state = tmp_path_factory.mktemp("evidence") / "state"
    port = free_port()
    runtime = build_runtime(_settings(state, port, database))
    running = start_server(create_app(runtime), port)
    try:
        yield Served(url=running.url, runtime=runtime, state=state)
    finally:
        running.stop()
        runtime.database.dispose()


def _leases(served: Served, task_id: str) -> list[dict[str, Any]]:
    answer = httpx.get(
        f"{served.url}/v1/tasks/{task_id}",
        headers={"authorization": f"Bearer {served.admin_token}"},
    )
    answer.raise_for_status()
    leases: list[dict[str, Any]] = answer.json()["leases"]
    return leases


@pytest.fixture(scope="module")
def story(served: Served) -> Story:
    """Run two tasks of the demo agent, close both, wait for the engine to confirm."""
    identity = AgentIdentity.load(served.state / "demo-agent.json")
    with GatepassClient(identity) as client:
        # The other task opens before and closes after, so its records sit between
        # this task's and the checkpoint: the bundle must chain through them.
        other = client.open_task(
            intent=SECRET_INTENT,
            purpose="payroll",
            environment="dev",
            targets=["tickets"],
        )
        other.access_token("tickets", ["read"])
        other_id = str(other.id)
        with client.open_task(
            intent="reconcile ledger entries",
            purpose="reporting",
            environment="dev",
            targets=["tickets", PG_TARGET],
        ) as task:
            task.access_token("tickets", ["read"])
            credential = task.postgres(PG_TARGET, "read")
            with psycopg.connect(**credential.connection_kwargs()) as conn:
                conn.execute("SELECT count(*) FROM app.entries")
            other.access_token("tickets", ["write"])
            task_id = str(task.id)
        other.close()

    def confirmed() -> bool:
        return all(lease["state"] == "revoked" for lease in _leases(served, task_id))

    assert poll(confirmed, within=20), "leases were not revoked"
    return Story(
        task_id=task_id,
        other_task_id=other_id,
        other_lease_ids=[lease["id"] for lease in _leases(served, other_id)],
        lease_ids=[lease["id"] for lease in _leases(served, task_id)],
    )


@pytest.fixture(scope="module")
def bundle_file(
    served: Served, story: Story, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The closed task's bundle, exported with the CLI."""
    out = tmp_path_factory.mktemp("bundle") / "evidence.json"
    result = served.cli("evidence", "export", story.task_id, "--out", str(out))
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def public_key(served: Served, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The broker's published audit key, as an auditor saves it."""
    answer = httpx.get(
        f"{served.url}/v1/audit/checkpoints",
        headers={"authorization": f"Bearer {served.admin_token}"},
    )
    path = tmp_path_factory.mktemp("key") / "audit.jwk"
    path.write_text(json.dumps(answer.json()["public_key"]))
    return path


class TestExportAndVerify:
    """A real task's bundle verifies offline, with receipts for every target."""

    def test_verifies_offline_with_the_pinned_key(
        self, served: Served, bundle_file: Path, public_key: Path
    ) -> None:
        """`evidence verify --public-key` exits 0 and names each receipt."""
        result = served.cli(
            "evidence", "verify", str(bundle_file), "--public-key", str(public_key)
        )
        assert result.exit_code == 0, result.output
        assert f"revocation receipt {PG_TARGET}: confirmed" in result.output
        assert "revocation receipt tickets: confirmed" in result.output

    def test_holds_the_whole_story(self, story: Story, bundle_file: Path) -> None:
        """Decisions, issuances, the close and the engine's confirmation are there."""
        body = json.loads(bundle_file.read_bytes())["evidence"]
        records = [
            entry["record"]
            for segment in body["segments"]
            for entry in segment["entries"]
            if "record" in entry
        ]
        kinds = [record["kind"] for record in records]
        assert kinds[0] == "task.open"
        assert "task.close" in kinds
        assert "lease.revoked" in kinds
        issued = [
            r for r in records if r["kind"] in {"token.issue", "credential.issue"}
        ]
        assert issued
        assert all(r["data"].get("policy_digest") for r in issued)
        receipts = {receipt["target"]: receipt for receipt in body["receipts"]}
        engine = receipts[PG_TARGET]
        assert engine["status"] == "confirmed"
        (lease,) = engine["leases"]
        assert lease["lease_id"] in story.lease_ids
        assert lease["confirmed_by"] in body["disclosed"]
        ended = next(r for r in records if r["seq"] == lease["ended_by"])
        assert ended["kind"] == "task.close"
        links = [e for s in body["segments"] for e in s["entries"] if "link" in e]
        assert links

    def test_other_tasks_are_not_disclosed(
        self, story: Story, bundle_file: Path
    ) -> None:
        """The other task's records appear as hash-only links, never with their data."""
        raw = bundle_file.read_bytes()
        body = json.loads(raw)["evidence"]
        records = [
            entry["record"]
            for segment in body["segments"]
            for entry in segment["entries"]
            if "record" in entry
        ]
        other = {story.other_task_id, *story.other_lease_ids}
        assert not [r for r in records if r["subject"] in other]
        assert not [r for r in records if r["data"].get("task_id") in other]
        assert SECRET_INTENT.encode() not in raw
        tails = b"".join(
            base64.urlsafe_b64decode(entry["link"]["tail"] + "==")
            for segment in body["segments"]
            for entry in segment["entries"]
            if "link" in entry
        )
        assert SECRET_INTENT.encode() not in tails

    def test_every_single_change_of_the_real_bundle_is_named(
        self, bundle_file: Path, public_key: Path
    ) -> None:
        """Each record field edited, each entry deleted, each neighbour pair swapped."""
        key = json.loads(public_key.read_text())
        original = json.loads(bundle_file.read_bytes())
        spots = [
            (s, e)
            for s, segment in enumerate(original["evidence"]["segments"])
            for e in range(len(segment["entries"]))
        ]

        def named(document: dict[str, Any]) -> list[str]:
            try:
                report = inspect_bundle(json.dumps(document).encode(), public_jwk=key)
            except AuditIntegrityError as error:
                return [error.detail]
            return [p for p in report.problems if "bundle signature" not in p]

        checked = 0
        for s, e in spots:
            entry = original["evidence"]["segments"][s]["entries"][e]
            seq = (entry.get("record") or entry["link"])["seq"]
            deleted = copy.deepcopy(original)
            del deleted["evidence"]["segments"][s]["entries"][e]
            assert named(deleted), f"deleting seq {seq}"
            if e:
                swapped = copy.deepcopy(original)
                entries = swapped["evidence"]["segments"][s]["entries"]
                entries[e - 1], entries[e] = entries[e], entries[e - 1]
                assert named(swapped), f"swapping seq {seq}"
            for field in ("at", "kind", "outcome", "actor", "subject", "data"):
                if "record" not in entry:
                    break
                edited = copy.deepcopy(original)
                record = edited["evidence"]["segments"][s]["entries"][e]["record"]
                record[field] = (
                    {**record["data"], "x": 1}
                    if field == "data"
                    else "2031-01-01T00:00:00.000000Z"
                    if field == "at"
                    else record[field] + "x"
                )
                assert any(f"seq {seq}" in p for p in named(edited)), (seq, field)
                checked += 1
        assert checked >= 6 * 6

    def test_a_forged_signature_is_detected(
        self, served: Served, bundle_file: Path, public_key: Path, tmp_path: Path
    ) -> None:
        """Re-signing with another key fails against the pinned key, naming it."""
        document = json.loads(bundle_file.read_bytes())
        value = document["signature"]["value"]
        document["signature"]["value"] = ("A" if value[0] != "A" else "B") + value[1:]
        forged = tmp_path / "forged.json"
        forged.write_text(json.dumps(document))
        result = served.cli(
            "evidence", "verify", str(forged), "--public-key", str(public_key)
        )
        assert result.exit_code == 65
        assert "bundle signature does not verify" in result.output

    def test_a_dropped_record_is_named(
        self, served: Served, bundle_file: Path, tmp_path: Path
    ) -> None:
        """Deleting the engine's confirmation names its seq and the broken receipt."""
        document = json.loads(bundle_file.read_bytes())
        body = document["evidence"]
        for segment in body["segments"]:
            kept = [
                e
                for e in segment["entries"]
                if e.get("record", {}).get("kind") != "lease.revoked"
            ]
            segment["entries"] = kept
        edited = tmp_path / "dropped.json"
        edited.write_text(json.dumps(document))
        result = served.cli("evidence", "verify", str(edited))
        assert result.exit_code == 65
        assert "record removed" in result.output


def _admin_http(served: Served, token: str | None = None) -> httpx.Client:
    return httpx.Client(
        base_url=served.url,
        headers={"authorization": f"Bearer {token or served.admin_token}"},
    )


class TestDescendants:
    """A bundle covers the task and every task delegated from it."""

    def test_a_child_task_and_its_close_are_in_the_bundle(
        self, served: Served, tmp_path: Path
    ) -> None:
        """Closing the root closes the child; both tasks' records are disclosed."""
        identity = AgentIdentity.load(served.state / "demo-agent.json")
        with GatepassClient(identity) as client:
            root = client.open_task(
                intent="split work",
                purpose="reporting",
                environment="dev",
                targets=["tickets"],
            )
        database = served.runtime.context.database
        with database.reading() as conn:
            parent = task_rows.get_task(conn, str(root.id))
        assert parent is not None
        # A delegated child as the delegation exchange stores it (its own tests
        # cover the exchange); its task.open record is appended with the row.
        child = dataclasses.replace(
            parent,
            id=new_task_id(),
            token_jti=new_token_id(),
            parent_id=parent.id,
            lineage_id=parent.id,
            depth=1,
        )
        entry = AuditEntry(
            at=served.runtime.context.clock.now(),
            kind="task.open",
            outcome="ok",
            actor=parent.agent_id,
            subject=child.id,
            data={"parent_id": parent.id},
        )
        with database.transaction() as conn:
            task_rows.insert_task(conn, child)
            audit_rows.append_audit(conn, entry)
        with _admin_http(served) as admin:
            closed = admin.post(f"/v1/tasks/{parent.id}/close", json={})
            assert closed.status_code == 200, closed.text
            answer = admin.get(f"/v1/admin/tasks/{parent.id}/evidence")
        assert answer.status_code == 200
        body = answer.json()["evidence"]
        assert [task["id"] for task in body["tasks"]] == [parent.id, child.id]
        records = [
            e["record"] for s in body["segments"] for e in s["entries"] if "record" in e
        ]
        about_child = [
            (r["kind"], r["data"].get("ancestor"))
            for r in records
            if r["subject"] == child.id
        ]
        assert about_child == [("task.open", None), ("task.close", parent.id)]
        path = tmp_path / "tree.json"
        path.write_text(json.dumps(answer.json()))
        assert served.cli("evidence", "verify", str(path)).exit_code == 0


class TestAccess:
    """The export needs the audit permission and a known task."""

    def test_unknown_task_is_404(self, served: Served) -> None:
        """An unknown task id is not_found, not a 5xx."""
        answer = httpx.get(
            f"{served.url}/v1/admin/tasks/tsk_nope/evidence",
            headers={"authorization": f"Bearer {served.admin_token}"},
        )
        assert answer.status_code == 404
        assert answer.json()["error"] == "not_found"

    def test_another_tenants_operator_sees_404(
        self, served: Served, story: Story
    ) -> None:
        """An auditor of another tenant cannot tell the task exists."""
        with _admin_http(served) as admin:
            added = admin.post(
                "/v1/admin/operators",
                json={
                    "name": f"aud-{RUN}",
                    "roles": ["auditor"],
                    "tenants": ["globex"],
                },
            )
            assert added.status_code == 201, added.text
        token = added.json()["token"]
        with _admin_http(served, token) as auditor:
            answer = auditor.get(f"/v1/admin/tasks/{story.task_id}/evidence")
            assert answer.status_code == 404
            assert answer.json()["error"] == "not_found"
            assert auditor.get("/v1/admin/report/frameworks").status_code == 200

    def test_without_a_token_is_401(self, served: Served, story: Story) -> None:
        """No API token, no bundle."""
        answer = httpx.get(f"{served.url}/v1/admin/tasks/{story.task_id}/evidence")
        assert answer.status_code == 401


class TestFrameworkReport:
    """The report reflects this deployment's configuration."""

    def test_cli_renders_markdown_with_cited_items(self, served: Served) -> None:
        """Every framework is cited by id and title, with a status."""
        result = served.cli("report", "frameworks")
        assert result.exit_code == 0, result.output
        assert "| ASI03 | Identity and Privilege Abuse |" in result.output
        assert "| NHI7 | Long-Lived Secrets | met |" in result.output
        assert "OWASP MCP Top 10" in result.output
        assert "NIST AI Risk Management Framework" in result.output

    def test_formats(self, served: Served) -> None:
        """Markdown is text/markdown; an unknown format is invalid_request, audited."""
        with _admin_http(served) as admin:
            markdown = admin.get("/v1/admin/report/frameworks", params={"format": "md"})
            wrong = admin.get("/v1/admin/report/frameworks", params={"format": "pdf"})
        assert markdown.headers["content-type"].startswith("text/markdown")
        assert markdown.text.startswith("# gatepass framework report")
        assert wrong.status_code == 400
        assert wrong.json()["error"] == "invalid_request"
        with _admin_http(served) as admin:
            events = admin.get(
                "/v1/audit/events", params={"kind": "report", "last": 1}
            ).json()["items"]
        assert events[-1]["outcome"] == "deny"
        assert "format must be" in str(events[-1]["data"])

    def test_html_is_static(self, served: Served) -> None:
        """The html answer carries a CSP that forbids everything and no script."""
        answer = httpx.get(
            f"{served.url}/v1/admin/report/frameworks",
            params={"format": "html"},
            headers={"authorization": f"Bearer {served.admin_token}"},
        )
        assert answer.status_code == 200
        assert "default-src 'none'" in answer.headers["content-security-policy"]
        assert "<script" not in answer.text.lower()

    def test_raising_the_max_ttl_flips_a_control(
        self, database: str, tmp_path: Path
    ) -> None:
        """A broker whose access tokens live two hours no longer meets NHI7."""
        port = free_port()
        state = tmp_path / "state"
        runtime = build_runtime(
            _settings(state, port, database, access_max_ttl_seconds=7200)
        )
        running = start_server(create_app(runtime, background_jobs=False), port)
        try:
            token = (state / "admin.token").read_text().strip()
            answer = httpx.get(
                f"{running.url}/v1/admin/report/frameworks",
                headers={"authorization": f"Bearer {token}"},
            )
        finally:
            running.stop()
            runtime.database.dispose()
        report = answer.json()
        items = {
            item["id"]: item
            for framework in report["frameworks"]
            for item in framework["items"]
        }
        assert items["NHI7"]["status"] == "not met"
        checks = {check["check"]: check for check in report["checks"]}
        assert checks["access_ttl"]["evidence"]["tokens.access_max_ttl_seconds"] == 7200
