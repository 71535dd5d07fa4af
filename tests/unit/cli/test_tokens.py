"""``gatepass tokens``: one revocable API token per holder (issue 17)."""

from __future__ import annotations

import json

from gatepass.secret import token_hash
from gatepass.store import api_tokens


class TestIssue17Tokens:
    """Create shows the token once; the broker keeps a hash; revoke ends it."""

    def test_issue17_create_prints_the_token_alone_on_stdout(self, cli):
        """The token is the only line on stdout; the note is on stderr."""
        result = cli("tokens", "create", "--role", "introspect", "--name", "orders-api")
        assert result.exit_code == 0, result.output
        token = result.stdout.strip()
        assert token.startswith("gp_introspect_")
        assert result.stdout == token + "\n"
        assert "shown once" in result.stderr
        assert token not in result.stderr

    def test_issue17_only_the_hash_is_stored(self, cli):
        """The database holds the token's SHA-256, never the token."""
        token = cli(
            "tokens", "create", "-r", "proxy", "-n", "edge-proxy"
        ).stdout.strip()
        database = cli.broker.runtime.database
        with database.reading() as conn:
            assert api_tokens.find_api_token(conn, token_hash(token)) is not None
        for name in ("gatepass.db", "gatepass.db-wal"):
            path = cli.broker.state_dir / name
            if path.exists():
                assert token.encode() not in path.read_bytes()

    def test_issue17_new_token_works_for_its_role_only(self, cli):
        """An introspect token may introspect but not use the admin API."""
        token = cli("tokens", "create", "-r", "introspect", "-n", "rs").stdout.strip()
        http = cli.broker.http
        auth = {"Authorization": f"Bearer {token}"}
        assert (
            http.post("/introspect", data={"token": "x"}, headers=auth).status_code
            == 200
        )
        assert http.get("/v1/agents", headers=auth).status_code == 403

    def test_issue17_list_shows_names_and_roles_never_tokens(self, cli):
        """The list has id, name, role and creation; no token, no hash."""
        token = cli(
            "tokens", "create", "-r", "admin", "-n", "ops-laptop"
        ).stdout.strip()
        listed = cli.json("tokens", "list")
        names = {item["name"]: item["role"] for item in listed["items"]}
        assert names["ops-laptop"] == "admin"
        assert names["bootstrap introspect token"] == "introspect"
        assert token not in json.dumps(listed)
        assert all(
            set(item) == {"id", "name", "role", "created_at"}
            for item in listed["items"]
        )
        table = cli("tokens", "list").stdout
        assert "ops-laptop" in table
        assert token not in table

    def test_issue17_revoke_refuses_the_next_request(self, cli):
        """After revoke, the token is an unknown api token (exit 77)."""
        created = cli.json("tokens", "create", "-r", "admin", "-n", "temp")
        assert cli("agents", "list", token=created["token"]).exit_code == 0
        revoked = cli.json("tokens", "revoke", created["id"])
        assert revoked["revoked"] is True
        after = cli("agents", "list", token=created["token"])
        assert after.exit_code == 77
        assert after.stderr == "gatepass: unknown api token\n"
        ids = [item["id"] for item in cli.json("tokens", "list")["items"]]
        assert created["id"] not in ids

    def test_issue17_create_and_revoke_are_audited_without_the_token(self, cli):
        """api_token.create and api_token.revoke name the id, role and name only."""
        created = cli.json("tokens", "create", "-r", "proxy", "-n", "p1")
        cli.json("tokens", "revoke", created["id"])
        result = cli("audit", "tail", "--kind", "api_token", "-o", "json")
        records = [json.loads(line) for line in result.stdout.splitlines()]
        mine = [r for r in records if r["subject"] == created["id"]]
        assert [r["kind"] for r in mine] == ["api_token.create", "api_token.revoke"]
        assert all(r["data"]["name"] == "p1" for r in mine)
        assert created["token"] not in result.stdout

    def test_issue17_last_admin_token_cannot_be_revoked(self, cli):
        """Revoking the only admin token is a conflict (exit 65); it keeps working."""
        listed = cli.json("tokens", "list")["items"]
        admin = next(item for item in listed if item["role"] == "admin")
        result = cli("tokens", "revoke", admin["id"])
        assert result.exit_code == 65
        assert "last admin token" in result.stderr
        assert cli("agents", "list").exit_code == 0

    def test_issue17_unknown_token_id_exits_66(self, cli):
        """Revoking an id no token has is not_found, naming the id."""
        result = cli("tokens", "revoke", "tok_0123456789abcdef")
        assert result.exit_code == 66
        assert "tok_0123456789abcdef" in result.stderr

    def test_issue17_token_pasted_as_its_id_is_never_recorded(self, cli):
        """A token given where its id belongs is refused without repeating it."""
        token = cli("tokens", "create", "-r", "proxy", "-n", "p2").stdout.strip()
        result = cli("tokens", "revoke", token)
        assert result.exit_code == 66
        assert token not in result.output
        audit = cli("audit", "tail", "-k", "api_token.revoke", "-o", "json").stdout
        assert '"outcome":"deny"' in audit
        assert token not in audit
        assert token[:20] not in audit

    def test_issue17_bad_role_and_name_are_usage_errors(self, cli):
        """An unknown role is refused by the CLI (2), a bad name by the broker (64)."""
        assert cli("tokens", "create", "-r", "root", "-n", "x").exit_code == 2
        bad = cli("tokens", "create", "-r", "proxy", "-n", "Has Spaces")
        assert bad.exit_code == 64
        assert "name must match" in bad.stderr
