"""``gatepass audit``."""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import update
from typer.testing import Result

from gatepass.audit import AnchorJournal, AuditEntry, AuditSigner, chain_after
from gatepass.sealing import Sealer
from gatepass.store import audit_log
from gatepass.store.tables import audit_events, audit_head


def _lines(result: Result) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stdout.splitlines()]


@pytest.fixture
def exported(cli, tmp_path):
    """An export of the broker's log, with a lease's events and a checkpoint."""
    cli.broker.open_lease()
    cli.broker.checkpoint()
    path = tmp_path / "audit.jsonl"
    result = cli("audit", "export", "--output", str(path))
    assert result.exit_code == 0, result.output
    return path


def _write_key(path: Path, jwk: Mapping[str, Any]) -> Path:
    path.write_text(json.dumps(jwk))
    return path


class TestAuditTail:
    """``gatepass audit tail``."""

    def test_prints_json_lines(self, cli):
        """With -o json each event is one JSON object per line, in seq order."""
        result = cli("audit", "tail", "-o", "json")
        assert result.exit_code == 0, result.output
        events = _lines(result)
        assert [event["seq"] for event in events] == list(range(1, len(events) + 1))
        assert {"seq", "kind", "hash", "prev_hash"} <= set(events[0])

    def test_default_is_the_newest_events(self, cli):
        """Without --after, tail shows the newest events, ending at the head."""
        everything = _lines(cli("audit", "tail", "--limit", "1000", "-o", "json"))
        newest = _lines(cli("audit", "tail", "--limit", "2", "-o", "json"))
        assert [e["seq"] for e in newest] == [e["seq"] for e in everything[-2:]]

    def test_after_and_limit(self, cli):
        """--after and --limit select a window of the log."""
        result = cli("audit", "tail", "--after", "1", "--limit", "2", "-o", "json")
        assert [event["seq"] for event in _lines(result)] == [2, 3]

    def test_follow_prints_new_events_until_ctrl_c(self, cli):
        """--follow polls again after each wait and ends cleanly on Ctrl-C."""
        head = len(_lines(cli("audit", "tail", "-o", "json")))
        waits = []

        def wait(seconds):
            waits.append(seconds)
            if len(waits) == 1:
                cli.broker.open_lease()
                return
            raise KeyboardInterrupt

        result = cli(
            "audit", "tail", "--follow", "--after", str(head), "-o", "json", wait=wait
        )
        assert result.exit_code == 0, result.output
        assert waits == [1.0, 1.0]
        kinds = [event["kind"] for event in _lines(result)]
        assert kinds
        assert min(event["seq"] for event in _lines(result)) == head + 1

    def test_bad_token_exits_77(self, cli):
        """Tailing needs the admin token."""
        assert cli("audit", "tail", token="gp_admin_nope").exit_code == 77


class TestAuditExport:
    """``gatepass audit export``."""

    def test_export_file_layout(self, cli, exported):
        """The file starts with the key, then checkpoints, then every event."""
        objects = [json.loads(line) for line in exported.read_text().splitlines()]
        keys = [next(iter(obj)) for obj in objects]
        assert keys[0] == "audit_public_key"
        assert keys[1] == "checkpoint"
        assert set(keys[2:]) == {"event"}
        tail = _lines(cli("audit", "tail", "--limit", "1000", "-o", "json"))
        assert [obj["event"] for obj in objects[2:]] == tail

    def test_export_reports_on_stderr(self, cli, tmp_path):
        """The summary goes to stderr, leaving stdout for the data."""
        result = cli("audit", "export", "--output", str(tmp_path / "a.jsonl"))
        assert result.exit_code == 0, result.output
        assert result.stdout == ""
        assert "exported" in result.stderr
        assert not (tmp_path / "a.jsonl.partial").exists()

    def test_export_to_stdout(self, cli):
        """Without --output the export is written to stdout."""
        result = cli("audit", "export")
        assert result.exit_code == 0, result.output
        assert "audit_public_key" in _lines(result)[0]

    def test_bad_token_exits_77(self, cli, tmp_path):
        """Exporting needs the admin token and writes no file without it."""
        path = tmp_path / "a.jsonl"
        result = cli("audit", "export", "-o", str(path), token="gp_admin_nope")
        assert result.exit_code == 77
        assert not path.exists()


class TestAuditVerify:
    """``gatepass audit verify``, live and from an export."""

    def test_verify_live_log(self, cli):
        """Without --file the broker's log is fetched and verified here."""
        cli.broker.open_lease()
        cli.broker.checkpoint()
        cli.broker.open_lease()
        result = cli("audit", "verify")
        assert result.exit_code == 0, result.output
        assert "audit log verified" in result.stdout
        assert "unanchored tail" in result.stdout

    def test_verify_export(self, cli, exported):
        """An untouched export verifies, with a note that its key is unpinned."""
        result = cli("audit", "verify", "--file", str(exported))
        assert result.exit_code == 0, result.output
        assert "last seq" in result.stdout
        assert "--public-key" in result.stderr

    def test_verify_export_with_pinned_key(self, cli, exported, tmp_path):
        """The broker's published key verifies its own export."""
        published = cli.broker.http.get(
            "/v1/audit/checkpoints",
            headers={"Authorization": f"Bearer {cli.broker.admin_token}"},
        ).json()["public_key"]
        key = _write_key(tmp_path / "audit.jwk", published)
        journal = cli.broker.state_dir / "audit-checkpoints.jsonl"
        result = cli(
            "audit",
            "verify",
            "--file",
            str(exported),
            "--public-key",
            str(key),
            "--anchors",
            str(journal),
        )
        assert result.exit_code == 0, result.output
        assert result.stderr == ""

    def test_tampered_export_exits_65(self, cli, exported):
        """An edited event fails verification with exit code 65."""
        lines = exported.read_text().splitlines()
        index = next(i for i, line in enumerate(lines) if '"event"' in line)
        obj = json.loads(lines[index])
        obj["event"]["outcome"] = (
            "allow" if obj["event"]["outcome"] != "allow" else "deny"
        )
        lines[index] = json.dumps(obj)
        exported.write_text("\n".join(lines) + "\n")
        result = cli("audit", "verify", "--file", str(exported))
        assert result.exit_code == 65
        assert "record edited" in result.stderr

    def test_deleted_event_exits_65(self, cli, exported):
        """A deleted event is named by the seqs that went missing."""
        lines = exported.read_text().splitlines()
        events = [i for i, line in enumerate(lines) if '"event"' in line]
        del lines[events[1]]
        exported.write_text("\n".join(lines) + "\n")
        result = cli("audit", "verify", "--file", str(exported))
        assert result.exit_code == 65
        assert "records deleted" in result.stderr

    def test_other_key_exits_65(self, cli, exported, tmp_path):
        """An export checked against a key other than its own fails."""
        other, _ = AuditSigner.generate(Sealer([Fernet.generate_key()]))
        key = _write_key(tmp_path / "other.jwk", other.public_jwk)
        result = cli(
            "audit", "verify", "--file", str(exported), "--public-key", str(key)
        )
        assert result.exit_code == 65
        assert "not the expected audit key" in result.stderr

    def test_live_log_with_other_key_exits_65(self, cli, tmp_path):
        """The live log's checkpoints fail against a pinned foreign key."""
        cli.broker.checkpoint()
        other, _ = AuditSigner.generate(Sealer([Fernet.generate_key()]))
        key = _write_key(tmp_path / "other.jwk", other.public_jwk)
        result = cli("audit", "verify", "--public-key", str(key))
        assert result.exit_code == 65

    def test_malformed_key_exits_64(self, cli, exported, tmp_path):
        """A --public-key file that is no audit key is a usage problem."""
        key = _write_key(tmp_path / "bad.jwk", {"kty": "RSA"})
        result = cli(
            "audit", "verify", "--file", str(exported), "--public-key", str(key)
        )
        assert result.exit_code == 64
        assert "not an audit public key" in result.stderr

    def test_key_file_not_an_object_exits_64(self, cli, exported, tmp_path):
        """A --public-key file must hold a JWK object or a JWK set."""
        key = tmp_path / "list.jwk"
        key.write_text("[]")
        result = cli(
            "audit", "verify", "--file", str(exported), "--public-key", str(key)
        )
        assert result.exit_code == 64
        assert "must be a JSON object" in result.stderr

    def test_key_file_not_json_exits_64(self, cli, exported, tmp_path):
        """A --public-key file that is not JSON is refused before verifying."""
        key = tmp_path / "key.pem"
        key.write_text("-----BEGIN PUBLIC KEY-----")
        result = cli(
            "audit", "verify", "--file", str(exported), "--public-key", str(key)
        )
        assert result.exit_code == 64
        assert "cannot read a JWK" in result.stderr

    def test_bad_token_exits_77(self, cli):
        """Verifying the live log needs the admin token."""
        assert cli("audit", "verify", token="gp_admin_nope").exit_code == 77


HOSTILE = (
    "plain é \u2028 \u2029 \u202e \u2066 \u200b \ufeff "
    "\x1b[31mred\x1b[0m \x07 \x9b2J \x85 \U000e0001 end"
)
ESCAPES = (
    "\\u2028",
    "\\u2029",
    "\\u202e",
    "\\u2066",
    "\\u200b",
    "\\ufeff",
    "\\u001b[31mred",
    "\\u0007",
    "\\u009b2J",
    "\\u0085",
    "\\udb40\\udc01",
)


class TestIssue13TailEscaping:
    """``audit tail`` never lets agent-chosen text drive the terminal."""

    def _append_hostile(self, cli: Any) -> None:
        entry = AuditEntry(
            at=cli.broker.clock.now(),
            kind="task.open",
            outcome="allow",
            actor="agt_hostile",
            subject="tsk_hostile",
            data={"intent": HOSTILE},
        )
        anyio.run(cli.broker.runtime.context.trail.append, entry)

    def test_issue13_controls_and_bidi_are_escaped(self, cli):
        """Separators, bidi controls, ANSI, C0/C1 and zero-width chars print escaped."""
        self._append_hostile(cli)
        result = cli("audit", "tail", "--limit", "1", "-o", "json")
        assert result.exit_code == 0, result.output
        line = result.stdout.rstrip("\n")
        assert "\n" not in line
        for escaped in ESCAPES:
            assert escaped in line
        dangerous = set("\u2028\u2029\u202e\u2066\u200b\ufeff\x1b\x07\x9b\x85")
        dangerous.add("\U000e0001")
        assert not dangerous & set(line)
        assert json.loads(line)["data"]["intent"] == HOSTILE

    def test_issue13_plain_text_is_unchanged(self, cli):
        """Ordinary and non-ASCII text prints exactly as it is."""
        entry = AuditEntry(
            at=cli.broker.clock.now(),
            kind="task.open",
            outcome="allow",
            actor="agt_plain",
            data={"intent": "réparer les tickets, 東京"},
        )
        anyio.run(cli.broker.runtime.context.trail.append, entry)
        for form in ("json", "table"):
            result = cli("audit", "tail", "--limit", "1", "-o", form)
            assert "réparer les tickets, 東京" in result.stdout

    def test_issue13_table_escapes_too(self, cli):
        """The default table shows the same escapes and no raw control character."""
        self._append_hostile(cli)
        result = cli("audit", "tail", "--limit", "1")
        assert result.exit_code == 0, result.output
        assert "\\u202e" in result.stdout
        dangerous = set("\u2028\u2029\u202e\u2066\u200b\ufeff\x1b\x07\x9b\x85")
        assert not dangerous & set(result.stdout)


class TestIssue13HostileExportFile:
    """A broken export exits 65 with one line, never a traceback."""

    @pytest.mark.parametrize(
        ("mutate", "message"),
        [
            (lambda raw: raw.replace(b'"event"', b'"ev\xffent"', 1), "not valid utf-8"),
            (lambda raw: raw.replace(b'"event"', b'\x00"event"', 1), "is not json"),
            (lambda raw: raw[:-30], "is truncated"),
            (lambda raw: raw.replace(b'"seq":1,', b'"seq":"1",', 1), "seq is not an"),
        ],
    )
    def test_issue13_broken_export_exits_65(self, cli, exported, mutate, message):
        """Invalid UTF-8, NUL bytes, a cut last line, a wrong type: exit 65."""
        exported.write_bytes(mutate(exported.read_bytes()))
        result = cli("audit", "verify", "--file", str(exported))
        assert result.exit_code == 65, result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)
        error = [line for line in result.stderr.splitlines() if "gatepass:" in line]
        assert len(error) == 1
        assert message in error[0]
        assert "Traceback" not in result.output


class TestIssue11Anchoring:
    """``verify`` compares with the anchor journal; ``reconcile`` reports."""

    def test_issue11_forged_record_after_the_checkpoint_exits_65(self, cli):
        """The broker refuses the checkpoint verify asks for, naming the seq."""
        cli.broker.checkpoint()
        runtime = cli.broker.runtime
        with runtime.database.transaction() as conn:
            seq, head = audit_log.read_audit_head(conn)
            entry = AuditEntry(
                at=cli.broker.clock.now(), kind="agent.add", outcome="ok", actor="x"
            )
            forged = chain_after(seq, head, entry)
            values = forged.to_json()
            values.update(at=forged.at, mac=None)
            conn.execute(audit_events.insert().values(**values))
            conn.execute(update(audit_head).values(seq=forged.seq, hash=forged.hash))
        result = cli("audit", "verify")
        assert result.exit_code == 65
        assert f"record seq {forged.seq} has no mac: record forged" in result.stderr
        ready = cli.broker.http.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["error"] == "audit_integrity"

    def test_issue11_export_ends_with_a_fresh_checkpoint(self, cli, tmp_path):
        """An export has no unanchored tail: its last event is checkpointed."""
        cli.broker.open_lease()
        path = tmp_path / "a.jsonl"
        assert cli("audit", "export", "-o", str(path)).exit_code == 0
        objects = [json.loads(line) for line in path.read_text().splitlines()]
        checkpoints = [o["checkpoint"] for o in objects if "checkpoint" in o]
        events = [o["event"] for o in objects if "event" in o]
        assert checkpoints[-1]["seq"] == events[-1]["seq"]
        assert all("mac" in event for event in events)

    def test_issue11_live_verify_uses_the_journal(self, cli):
        """With the broker's journal the live log is compared with it too."""
        cli.broker.open_lease()
        journal = cli.broker.state_dir / "audit-checkpoints.jsonl"
        result = cli("audit", "verify", "--anchors", str(journal))
        assert result.exit_code == 0, result.output
        assert "anchor journal" in result.stdout

    def test_issue11_journal_ahead_of_the_log_exits_65(self, cli, tmp_path):
        """A journal that anchored more than the log holds: rolled back, exit 65."""
        cli.broker.open_lease()
        journal = tmp_path / "audit-checkpoints.jsonl"
        shutil.copy(cli.broker.state_dir / "audit-checkpoints.jsonl", journal)
        runtime = cli.broker.runtime
        anchors = AnchorJournal(
            journal, runtime.anchoring.mac, clock=cli.broker.clock, on_failure=print
        )
        anchors.record_commit(10_000, "e" * 64, {"tasks": ["tsk_lost"]})
        result = cli("audit", "verify", "--anchors", str(journal))
        assert result.exit_code == 65
        assert "behind the anchor journal (seq 10000)" in result.stderr

    def test_reconcile_with_nothing_to_do(self, cli):
        """A broker in step with its journal has nothing to reconcile."""
        result = cli("audit", "reconcile")
        assert result.exit_code == 0, result.output
        assert "nothing to reconcile" in result.stdout
        assert cli.json("audit", "reconcile")["reconciled"] is False

    def test_checkpoint_now_route(self, cli):
        """POST /v1/audit/checkpoints signs the head and returns it with the key."""
        answer = cli.broker.http.post(
            "/v1/audit/checkpoints",
            headers={"Authorization": f"Bearer {cli.broker.admin_token}"},
        )
        assert answer.status_code == 200
        body = answer.json()
        with cli.broker.runtime.database.reading() as conn:
            assert body["checkpoint"]["seq"] == audit_log.read_audit_head(conn)[0]
        assert body["public_key"]["kty"] == "OKP"

    def test_audit_routes_need_the_admin_role(self, cli):
        """The introspection token may not checkpoint or reconcile."""
        token = (cli.broker.state_dir / "introspect.token").read_text().strip()
        for path in ("/v1/audit/checkpoints", "/v1/audit/reconcile"):
            answer = cli.broker.http.post(
                path, headers={"Authorization": f"Bearer {token}"}
            )
            assert answer.status_code == 403
