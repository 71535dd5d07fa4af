"""`gatepass evidence verify` offline: no broker, precise exits, safe output."""

from __future__ import annotations

import json
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tests.unit.evidence.bundles import build, sign
from typer.testing import CliRunner

from gatepass.audit import AuditSigner
from gatepass.cli import app

BUILT = build()


def _verify(*args: str) -> tuple[int, str]:
    # No GATEPASS_ADDR: verification must not need a broker.
    result = CliRunner().invoke(app, ["evidence", "verify", *args], env={})
    return result.exit_code, result.output


class TestVerifyCommand:
    """Exit codes and messages of the offline verifier."""

    def test_intact_bundle_with_pinned_key(self, tmp_path: Path) -> None:
        """0, a summary line and the receipts, no trust note."""
        bundle, key = tmp_path / "b.json", tmp_path / "k.jwk"
        bundle.write_bytes(BUILT.raw)
        key.write_text(json.dumps(BUILT.jwk))
        code, output = _verify(str(bundle), "--public-key", str(key))
        assert code == 0, output
        assert "bundle of task tsk_root verifies" in output
        assert "revocation receipt ledger: confirmed" in output
        assert "trusting the key inside" not in output

    def test_unpinned_bundle_says_what_it_proves(self, tmp_path: Path) -> None:
        """Without --public-key the note says only self-consistency is proved."""
        bundle = tmp_path / "b.json"
        bundle.write_bytes(BUILT.raw)
        code, output = _verify(str(bundle))
        assert code == 0
        assert "self-consistent" in output

    def test_missing_file_is_66(self, tmp_path: Path) -> None:
        """A file that cannot be read is not_found."""
        code, output = _verify(str(tmp_path / "absent.json"))
        assert code == 66
        assert "cannot read the bundle" in output

    def test_garbage_is_65(self, tmp_path: Path) -> None:
        """Not a bundle: one line, exit 65, no traceback."""
        bundle = tmp_path / "b.json"
        bundle.write_bytes(b"\xff\xfe not json")
        code, output = _verify(str(bundle))
        assert code == 65
        assert "gatepass: bundle is not valid utf-8" in output
        assert "Traceback" not in output

    def test_wrong_key_file_is_64(self, tmp_path: Path) -> None:
        """A --public-key that is not an audit key is a usage error."""
        bundle, key = tmp_path / "b.json", tmp_path / "k.jwk"
        bundle.write_bytes(BUILT.raw)
        key.write_text(json.dumps({"kty": "EC"}))
        code, _ = _verify(str(bundle), "--public-key", str(key))
        assert code == 64

    def test_problems_are_listed_and_escaped(self, tmp_path: Path) -> None:
        """Each problem is one line; a hostile subject cannot drive the terminal."""
        document = BUILT.document
        lease = document["evidence"]["receipts"][0]
        lease["target"] = "\x1b[31mledger\u202e"
        forger = AuditSigner(Ed25519PrivateKey.generate())
        bundle, key = tmp_path / "b.json", tmp_path / "k.jwk"
        bundle.write_bytes(sign(document, forger))
        key.write_text(json.dumps(BUILT.jwk))
        code, output = _verify(str(bundle), "--public-key", str(key))
        assert code == 65
        assert "\x1b" not in output
        assert "\u202e" not in output
        assert "problem: bundle is signed by unknown kid" in output
        assert "gatepass: bundle failed verification:" in output
