"""``gatepass ssf``: receivers and streams."""

from __future__ import annotations

import httpx


class TestReceivers:
    """``gatepass ssf receivers add|list``."""

    def test_add_prints_the_token_once_and_lists_it(self, cli):
        """Adding prints the ssf_receiver token; the list shows the receiver, not it."""
        result = cli(
            "ssf", "receivers", "add", "--audience", "tickets", "--description", "rs"
        )
        assert result.exit_code == 0, result.output
        token = result.stdout.strip()
        assert token.startswith("gp_ssf_receiver_")
        assert "\n" not in token
        listed = cli("ssf", "receivers", "list")
        assert listed.exit_code == 0, listed.output
        assert "tickets" in listed.stdout
        assert token not in listed.stdout

    def test_add_json(self, cli):
        """--json prints the API's answer with the audiences resolved to names."""
        answer = cli.json(
            "ssf",
            "receivers",
            "add",
            "-a",
            "http://127.0.0.1:8401/",
            "-d",
            "rs",
        )
        assert answer["audiences"] == ["tickets"]

    def test_unknown_target_is_refused(self, cli):
        """An unknown audience exits with the invalid-request code."""
        result = cli("ssf", "receivers", "add", "-a", "nowhere", "-d", "rs")
        assert result.exit_code != 0
        assert "unknown target" in result.output


class TestStreams:
    """``gatepass ssf streams``."""

    def test_lists_a_receivers_stream(self, cli, broker):
        """A stream made by a receiver shows with its method and status."""
        token = cli.json("ssf", "receivers", "add", "-a", "tickets", "-d", "rs")[
            "token"
        ]
        created = broker.http.post(
            "/v1/ssf/streams",
            headers={"Authorization": f"Bearer {token}"},
            json={"delivery": {"method": "urn:ietf:rfc:8936"}},
        )
        assert created.status_code == httpx.codes.CREATED, created.text
        answer = cli.json("ssf", "streams")
        (item,) = answer["items"]
        assert item["stream_id"] == created.json()["stream_id"]
        assert (item["method"], item["status"], item["undelivered"]) == (
            "poll",
            "enabled",
            0,
        )
        table = cli("ssf", "streams")
        assert table.exit_code == 0, table.output
        assert "poll" in table.stdout

    def test_empty(self, cli):
        """No stream: a one-line note."""
        assert "no ssf streams" in cli("ssf", "streams").stdout
