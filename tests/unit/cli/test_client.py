"""The shared admin client: where the token comes from, and how failures exit."""

from __future__ import annotations

import httpx
import pytest

from gatepass.cli.client import AdminClient, BrokerUnreachableError, Connector
from gatepass.errors import AuthenticationError, GatepassError, NotFoundError


def _refuse(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


class TestConnection:
    """Where the address and token come from, and how a failed connection exits."""

    def test_token_file_is_the_fallback(self, cli):
        """Without GATEPASS_TOKEN the token is read from the state directory."""
        result = cli(
            "targets",
            "list",
            token=None,
            env={"GATEPASS_STATE_DIR": str(cli.broker.state_dir)},
        )
        assert result.exit_code == 0, result.output
        assert "tickets-prod" in result.stdout

    def test_missing_token_exits_77(self, cli):
        """No GATEPASS_TOKEN and no token file is an authentication error."""
        result = cli("targets", "list", token=None)
        assert result.exit_code == 77
        assert result.stderr.startswith("gatepass: no admin token")

    def test_empty_token_file_exits_77(self, cli, tmp_path):
        """An empty token file is reported as such, not sent."""
        (tmp_path / "admin.token").write_text("\n")
        result = cli(
            "targets", "list", token=None, env={"GATEPASS_STATE_DIR": str(tmp_path)}
        )
        assert result.exit_code == 77
        assert "admin.token is empty" in result.stderr

    def test_bad_token_exits_77(self, cli):
        """An unknown admin token is refused with exit code 77."""
        result = cli("agents", "list", token="gp_admin_wrong")
        assert result.exit_code == 77
        assert result.stderr == "gatepass: unknown api token\n"

    def test_unreachable_broker_exits_69(self, cli):
        """A connection failure names the address and exits 69."""
        refusing = httpx.Client(
            base_url="http://broker.invalid", transport=httpx.MockTransport(_refuse)
        )
        result = cli(
            "agents", "list", http=refusing, env={"GATEPASS_ADDR": "http://x:1"}
        )
        assert result.exit_code == 69
        assert "cannot reach the broker at http://x:1" in result.stderr
        assert "make run" in result.stderr

    def test_token_is_never_printed(self, cli):
        """Neither output nor errors ever contain the admin token."""
        token = cli.broker.admin_token
        for args in (["agents", "list", "--json"], ["leases", "show", "lse_nope"]):
            result = cli(*args)
            assert token not in result.output

    def test_help_names_the_token_sources(self, cli):
        """The top-level help explains GATEPASS_TOKEN and its file fallback."""
        result = cli("--help")
        assert result.exit_code == 0
        for word in ("GATEPASS_ADDR", "GATEPASS_TOKEN", "admin.token"):
            assert word in result.stdout


class TestAdminClient:
    """The client turns API error answers back into gatepass errors."""

    def test_error_answer_raises_the_gatepass_class(self, broker):
        """A 404 answer raises NotFoundError with the broker's description."""
        client = AdminClient(broker.http, token=broker.admin_token, address="x")
        with pytest.raises(NotFoundError, match="no such lease"):
            client.get("/v1/leases/lse_missing")

    def test_bad_token_raises_authentication_error(self, broker):
        """A 401 answer raises AuthenticationError."""
        client = AdminClient(broker.http, token="nope", address="x")
        with pytest.raises(AuthenticationError):
            client.get("/v1/agents")

    def test_non_json_error_is_a_generic_error(self):
        """An error answer that is not gatepass JSON still raises, with the status."""
        http = httpx.Client(
            base_url="http://broker",
            transport=httpx.MockTransport(lambda _: httpx.Response(502, text="bad")),
        )
        client = AdminClient(http, token="t", address="http://broker")
        with pytest.raises(GatepassError, match="http 502"):
            client.get("/v1/agents")

    def test_success_that_is_not_json_is_an_error(self):
        """A 2xx answer that is not JSON raises rather than printing garbage."""
        http = httpx.Client(
            base_url="http://broker",
            transport=httpx.MockTransport(lambda _: httpx.Response(200, text="<h1>")),
        )
        client = AdminClient(http, token="t", address="http://broker")
        with pytest.raises(GatepassError, match="not json"):
            client.get("/v1/agents")

    def test_code_needing_more_than_a_detail_keeps_the_message(self):
        """An error class that cannot be built from a detail falls back to the base."""
        body = {"error": "use_dpop_nonce", "error_description": "nonce please"}
        http = httpx.Client(
            base_url="http://broker",
            transport=httpx.MockTransport(lambda _: httpx.Response(400, json=body)),
        )
        client = AdminClient(http, token="t", address="http://broker")
        with pytest.raises(GatepassError, match="nonce please"):
            client.get("/v1/agents")

    def test_transport_error_is_unreachable(self):
        """A transport failure raises BrokerUnreachableError with exit code 69."""
        http = httpx.Client(
            base_url="http://broker", transport=httpx.MockTransport(_refuse)
        )
        client = AdminClient(http, token="t", address="http://broker")
        with pytest.raises(BrokerUnreachableError) as caught:
            client.post("/v1/keys/rotate")
        assert caught.value.exit_code == 69

    def test_repr_hides_the_token(self):
        """The client's repr names the address only."""
        client = AdminClient(httpx.Client(), token="secret-token", address="http://b")
        assert "secret-token" not in repr(client)


class TestConnector:
    """The default connector, which real runs use."""

    def test_default_client_is_based_at_the_address(self):
        """The default connector builds an httpx client based at the address."""
        with Connector().open_http("http://127.0.0.1:8400") as http:
            assert str(http.base_url) == "http://127.0.0.1:8400"

    def test_default_wait_ends_at_its_timeout(self):
        """The default wait returns once its (here zero) timeout passes."""
        Connector().wait(0)
