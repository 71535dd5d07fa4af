import json
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from gatepass.audit import (
    AuditSigner,
    export_lines,
    read_export,
    verify_export,
)
from gatepass.errors import AuditIntegrityError

from .conftest import MakeLog, SignedLog


def export(log: SignedLog, **kwargs: Any) -> list[str]:
    """Return the export lines of a signed log."""
    return list(
        export_lines(log.records, log.checkpoints, public_jwk=log.jwk, **kwargs)
    )


class TestExportLines:
    """export_lines() writes the self-contained JSON-lines layout."""

    def test_layout(self, make_log: MakeLog) -> None:
        """The key comes first, then checkpoints, then events, one per line."""
        log = make_log(3, checkpoints=(2,))
        lines = export(log)
        assert all(line.endswith("\n") and line.count("\n") == 1 for line in lines)
        keys = [next(iter(json.loads(line))) for line in lines]
        assert keys == ["audit_public_key", "checkpoint", "event", "event", "event"]
        assert json.loads(lines[0])["audit_public_key"] == log.jwk

    def test_slice_header(self, make_log: MakeLog) -> None:
        """A slice export records the (seq, hash) it continues from."""
        log = make_log(3, checkpoints=())
        lines = export(log, start_after=(7, "a" * 64))
        assert json.loads(lines[1]) == {"start_after": {"seq": 7, "hash": "a" * 64}}


class TestReadExport:
    """read_export() parses the header eagerly and events lazily."""

    def test_round_trip(self, make_log: MakeLog) -> None:
        """Reading an export gives back the key, checkpoints and records."""
        log = make_log(5, checkpoints=(2, 4))
        read = read_export(export(log))
        assert read.public_jwk == log.jwk
        assert list(read.checkpoints) == log.checkpoints
        assert list(read.records) == log.records
        assert read.start_after is None

    def test_events_are_read_lazily(self, make_log: MakeLog) -> None:
        """Only the header is read up front; events are parsed as iterated."""
        log = make_log(5, checkpoints=(2,))
        lines = iter(export(log))
        read = read_export(lines)
        assert len(list(lines)) == 4
        assert [record.seq for record in read.records] == [1]

    def test_blank_lines_are_ignored(self, make_log: MakeLog) -> None:
        """Blank lines anywhere are skipped."""
        log = make_log(3, checkpoints=(3,))
        lines = ["\n"]
        for line in export(log):
            lines.extend([line, "  \n"])
        assert verify_export(lines).events == 3

    @pytest.mark.parametrize(
        ("lines", "message"),
        [
            ([], "^export is empty$"),
            (['{"event": {}}\n'], "does not start with its audit_public_key line"),
            (["not json\n"], "^export line 1 is not json$"),
            (['{"a": {}, "b": {}}\n'], "^export line 1 is not a one-key object$"),
            (['{"audit_public_key": 3}\n'], "^export line 1 audit_public_key is not"),
        ],
    )
    def test_refuses_malformed_headers(self, lines: list[str], message: str) -> None:
        """A file that is not an export is refused with the line number."""
        with pytest.raises(AuditIntegrityError, match=message):
            read_export(lines)

    def test_refuses_unknown_line_kind(self, make_log: MakeLog) -> None:
        """A line of an unknown kind in the header is refused."""
        lines = export(make_log(2, checkpoints=()))
        lines.insert(1, '{"comment": {}}\n')
        with pytest.raises(
            AuditIntegrityError, match=r"^export line 2 is an unexpected"
        ):
            read_export(lines)

    def test_refuses_checkpoint_after_events(self, make_log: MakeLog) -> None:
        """Checkpoints must precede events, so verification can stream."""
        log = make_log(3, checkpoints=(2,))
        lines = export(log)
        lines.append(lines.pop(1))
        with pytest.raises(
            AuditIntegrityError, match=r"^export line 5 is a 'checkpoint'"
        ):
            list(read_export(lines).records)

    def test_refuses_malformed_start_after(self, make_log: MakeLog) -> None:
        """A slice header without an integer seq is refused."""
        lines = export(make_log(2, checkpoints=()))
        lines.insert(1, '{"start_after": {"seq": "4", "hash": "x"}}\n')
        with pytest.raises(AuditIntegrityError, match="start_after is malformed"):
            read_export(lines)


class TestVerifyExport:
    """verify_export() verifies a file alone or against a pinned key."""

    def test_verifies_with_only_the_file(self, make_log: MakeLog) -> None:
        """An export verifies with nothing but its own lines."""
        log = make_log(10, checkpoints=(5, 10))
        report = verify_export(export(log))
        assert (report.events, report.checkpoints, report.unanchored_tail) == (10, 2, 0)

    def test_empty_log_export_verifies(self, signer: AuditSigner) -> None:
        """The export of an empty log is just its key line, and verifies."""
        lines = list(export_lines([], [], public_jwk=signer.public_jwk))
        assert len(lines) == 1
        assert verify_export(lines).events == 0

    def test_verifies_against_the_published_key(self, make_log: MakeLog) -> None:
        """Pinning the broker's key accepts a file that key signed."""
        log = make_log(10, checkpoints=(5, 10))
        assert verify_export(export(log), public_jwk=log.jwk).events == 10

    def test_refuses_a_file_with_a_substituted_key(self, make_log: MakeLog) -> None:
        """A rewritten log re-signed with the forger's key fails the pinned key."""
        log = make_log(4, checkpoints=(4,))
        forger = AuditSigner(Ed25519PrivateKey.generate())
        forged = list(
            export_lines(
                log.records,
                [forger.sign(4, log.records[3].hash, log.records[3].at)],
                public_jwk=forger.public_jwk,
            )
        )
        assert verify_export(forged).events == 4
        with pytest.raises(AuditIntegrityError, match="not the expected audit key"):
            verify_export(forged, public_jwk=log.jwk)

    def test_detects_an_edited_event_line(self, make_log: MakeLog) -> None:
        """Editing one event line in the file is detected."""
        log = make_log(5, checkpoints=(5,))
        lines = export(log)
        event = json.loads(lines[3])
        event["event"]["actor"] = "agt_innocent"
        lines[3] = json.dumps(event) + "\n"
        with pytest.raises(AuditIntegrityError, match=r"^record seq 2 hash does not"):
            verify_export(lines)

    def test_detects_a_deleted_event_line(self, make_log: MakeLog) -> None:
        """Deleting an event line is detected."""
        lines = export(make_log(5, checkpoints=(5,)))
        del lines[4]
        with pytest.raises(AuditIntegrityError, match=r"^seq 3 missing before seq 4"):
            verify_export(lines)

    def test_verifies_a_slice_export(self, make_log: MakeLog) -> None:
        """A slice export verifies from its recorded start."""
        log = make_log(10, checkpoints=(8, 10))
        start = log.records[4]
        lines = list(
            export_lines(
                log.records[5:],
                log.checkpoints,
                public_jwk=log.jwk,
                start_after=(start.seq, start.hash),
            )
        )
        report = verify_export(lines, public_jwk=log.jwk)
        assert (report.events, report.last_seq) == (5, 10)


def _failure(run: Callable[[], object]) -> str | None:
    """Run ``run``; return the detail of the AuditIntegrityError it raised, if any."""
    try:
        run()
    except AuditIntegrityError as error:
        return error.detail
    return None


def _encoded(log: SignedLog) -> list[bytes]:
    return [line.encode("utf-8") for line in export(log)]


class TestIssue13HostileExports:
    """Any file ends in one AuditIntegrityError with a one-line reason."""

    def test_issue13_invalid_utf8_names_the_line(self, make_log: MakeLog) -> None:
        """Bytes that are not UTF-8 are reported with their line number."""
        lines = _encoded(make_log(3, checkpoints=(3,)))
        lines[3] = lines[3][:20] + b"\xff\xfe" + lines[3][20:]
        with pytest.raises(
            AuditIntegrityError, match=r"^export line 4 is not valid utf-8$"
        ):
            verify_export(lines)

    def test_issue13_nul_and_binary_bytes(self, make_log: MakeLog) -> None:
        """NUL and other binary bytes in a line make it not json."""
        lines = _encoded(make_log(3, checkpoints=(3,)))
        lines[2] = b"\x00\x01\x02" + lines[2]
        with pytest.raises(AuditIntegrityError, match=r"^export line 3 is not json$"):
            verify_export(lines)

    def test_issue13_truncated_last_line(self, make_log: MakeLog) -> None:
        """A file cut in the middle of its last line says so."""
        lines = _encoded(make_log(3, checkpoints=(3,)))
        lines[-1] = lines[-1][:40]
        with pytest.raises(
            AuditIntegrityError,
            match=r"^export line 5 is truncated: not json and no newline at its end$",
        ):
            verify_export(lines)

    @pytest.mark.parametrize(
        ("replace", "message"),
        [
            ({"seq": "1"}, r"^malformed audit record: seq is not an integer$"),
            ({"seq": True}, r"^malformed audit record: seq is not an integer$"),
            ({"data": []}, r"^malformed audit record seq 1: data is not an object$"),
            ({"actor": 7}, r"^malformed audit record seq 1: actor is not a string$"),
            ({"hash": None}, r"^malformed audit record seq 1: hash is not a sha-256"),
            ({"mac": 5}, r"^malformed audit record seq 1: mac is not a sha-256"),
            ({"at": "noon"}, r"^malformed audit record seq 1: at is not rfc 3339"),
        ],
    )
    def test_issue13_wrong_json_types(
        self, make_log: MakeLog, replace: dict[str, Any], message: str
    ) -> None:
        """A field of the wrong type is named."""
        lines = export(make_log(2, checkpoints=(2,)))
        event = json.loads(lines[2])
        event["event"].update(replace)
        lines[2] = json.dumps(event) + "\n"
        with pytest.raises(AuditIntegrityError, match=message):
            verify_export(lines)

    @pytest.mark.parametrize(
        "line",
        [
            '{"audit_public_key": {"keys": "x"}}',
            '{"audit_public_key": {"kty": "OKP", "crv": "Ed25519", "x": "é"}}',
            '{"audit_public_key": {"kty": "OKP", "crv": "Ed25519", "x": 3}}',
            "[1, 2, 3]",
            '"text"',
            "1" * 5000,
            "[" * 100_000,
        ],
    )
    def test_issue13_hostile_headers(self, line: str) -> None:
        """Odd keys, huge numbers and deep nesting fail cleanly."""
        with pytest.raises(AuditIntegrityError):
            verify_export([line + "\n"])

    @settings(max_examples=200, deadline=None)
    @given(st.lists(st.binary(max_size=200), max_size=6))
    def test_issue13_any_bytes_never_crash(self, lines: list[bytes]) -> None:
        """Whatever bytes the file holds, only an AuditIntegrityError comes out."""
        detail = _failure(lambda: verify_export(lines))
        assert detail is None or "\n" not in detail

    @settings(max_examples=100, deadline=None)
    @given(st.data())
    def test_issue13_any_mutated_export_never_crashes(
        self, data: st.DataObject
    ) -> None:
        """A real export with bytes overwritten fails cleanly or verifies."""
        lines = [line.encode() for line in _FUZZ_EXPORT]
        index = data.draw(st.integers(0, len(lines) - 1))
        line = lines[index]
        position = data.draw(st.integers(0, len(line)))
        junk = data.draw(st.binary(min_size=1, max_size=8))
        lines[index] = line[:position] + junk + line[position + len(junk) :]
        detail = _failure(lambda: verify_export(lines))
        assert detail is None or "\n" not in detail


def _fuzz_export() -> list[str]:
    from cryptography.fernet import Fernet  # noqa: PLC0415 - module-level fixture data

    from gatepass.audit import AuditEntry, chain  # noqa: PLC0415
    from gatepass.sealing import Sealer  # noqa: PLC0415

    from .conftest import START  # noqa: PLC0415

    signer, _ = AuditSigner.generate(Sealer([Fernet.generate_key()]))
    previous = None
    records = []
    for index in range(3):
        entry = AuditEntry(
            at=START, kind="task.open", outcome="ok", actor="agt_x", data={"n": index}
        )
        previous = chain(previous, entry)
        records.append(previous)
    checkpoint = signer.sign(3, records[-1].hash, START)
    return list(export_lines(records, [checkpoint], public_jwk=signer.public_jwk))


_FUZZ_EXPORT = _fuzz_export()
