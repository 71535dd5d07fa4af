"""
Delegation over real HTTP: planner -> researcher -> reader, down to PostgreSQL.

Every hop proves its own identity and gets a narrower task; the chain is in the
tokens (``act``) and in the audit; closing the planner's task ends the whole tree
and cuts the reader's live PostgreSQL session; every rule is refused with its
OAuth error and an audit record.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import httpx
import psycopg
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from gatepass.errors import InvalidGrantError, TokenError
from gatepass.sdk import GatepassClient

from .deadline import poll
from .delegation_kit import (
    CACHE_PREFIX,
    CACHE_TARGET,
    DATABASE_TARGET,
    MAX_DEPTH,
    RUN,
    DelegationBroker,
    claims,
    delegation_broker,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

__all__ = ["delegation_broker"]  # the fixture, imported for this module


def session_is_dead(connection: psycopg.Connection[Any]) -> bool:
    """Tell whether a PostgreSQL session was terminated."""
    try:
        connection.execute("SELECT 1")
    except psycopg.Error:
        return True
    return False


def refused_and_audited(
    broker: DelegationBroker, response: httpx.Response, kind: str, code: str
) -> str:
    """Assert a 4xx answer with ``code`` and a deny record saying why; return why."""
    assert 400 <= response.status_code < 500, response.text
    body = response.json()
    assert body["error"] == code, body
    detail = body["error_description"]
    records = [
        record
        for record in broker.audit(kind)
        if record["outcome"] == "deny" and record["data"].get("detail") == detail
    ]
    assert records, f"no {kind} deny record says {detail!r}"
    assert records[-1]["data"]["error"] == code
    return str(detail)


class Chain:
    """A planner's root task and a researcher's child task, fresh for each test."""

    def __init__(self, broker: DelegationBroker) -> None:
        """Open the root on tickets and the database; delegate reads of both."""
        self.broker = broker
        self.planner = broker.hop("planner")
        self.researcher = broker.hop("researcher")
        self.root = self.planner.open_root(["tickets", DATABASE_TARGET])
        granted = self.planner.grant(
            self.root["access_token"],
            broker.agent_id("researcher"),
            targets=["tickets", DATABASE_TARGET],
            actions=["read"],
            max_ttl_seconds=600,
        )
        assert granted.status_code == 200, granted.text
        accepted = self.researcher.accept(granted.json()["access_token"])
        assert accepted.status_code == 200, accepted.text
        self.child = accepted.json()

    def to_reader(self, **details: Any) -> httpx.Response:
        """The researcher asks for a grant for the reader (database reads)."""
        fields: dict[str, Any] = {"targets": [DATABASE_TARGET], "actions": ["read"]}
        fields.update(details)
        return self.researcher.grant(
            self.child["access_token"], self.broker.agent_id("reader"), **fields
        )


@pytest.fixture
def chain(delegation_broker: DelegationBroker) -> Chain:
    """A fresh root and child task."""
    return Chain(delegation_broker)


class TestPipeline:
    """Three hops, each narrower, ending in a real PostgreSQL read role."""

    def test_three_hops_to_postgres_and_closing_the_planner_cuts_everything(
        self, delegation_broker: DelegationBroker
    ) -> None:
        """The reader reads PostgreSQL; closing the root cuts its session in 2 s."""
        broker = delegation_broker
        with (
            broker.client("planner") as planner,
            broker.client("researcher") as researcher,
            broker.client("reader") as reader,
        ):
            self._pipeline(broker, planner, researcher, reader)

    def _pipeline(
        self,
        broker: DelegationBroker,
        planner: GatepassClient,
        researcher: GatepassClient,
        reader: GatepassClient,
    ) -> None:
        root = planner.open_task(
            intent="find why orders stall",
            purpose="research",
            environment="dev",
            targets=["tickets", DATABASE_TARGET],
        )
        grant = root.delegate(
            to=broker.agent_id("researcher"),
            targets=["tickets", DATABASE_TARGET],
            actions=["read"],
            purpose="research",
            ttl=dt.timedelta(minutes=10),
        )
        assert grant.child == broker.agent_id("researcher")
        assert grant.max_ttl <= dt.timedelta(seconds=600)
        assert "access_token" not in repr(grant)
        child = researcher.accept_delegation(grant.reveal())
        assert child.parent_id == root.id
        assert child.expires_at <= root.expires_at
        reader_grant = child.delegate(
            to=broker.agent_id("reader"),
            targets=[DATABASE_TARGET],
            actions=["read"],
            purpose="query",
            ttl=dt.timedelta(minutes=5),
        )
        assert reader_grant.targets == (DATABASE_TARGET,)
        leaf = reader.accept_delegation(reader_grant)
        assert leaf.parent_id == child.id
        assert leaf.expires_at <= child.expires_at
        # The researcher's access token names the chain, current actor outermost.
        ticket_token = child.access_token("tickets", "read")
        assert claims(ticket_token.value.reveal())["act"] == {
            "sub": broker.agent_id("researcher"),
            "act": {"sub": broker.agent_id("planner")},
        }
        credential = leaf.postgres(DATABASE_TARGET, "read")
        live = psycopg.connect(**credential.connection_kwargs(), autocommit=True)
        try:
            assert live.execute("SELECT item FROM app.orders").fetchall() == [("seed",)]
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                live.execute("INSERT INTO app.orders (item) VALUES ('no')")
            root.close()
            # Within 2 s of the root's close, the leaf's session is gone.
            assert poll(lambda: session_is_dead(live), within=2.0)
        finally:
            live.close()
        # The credentials endpoint takes the task token as a DPoP access token.
        with pytest.raises(TokenError, match="task is closed"):
            leaf.postgres(DATABASE_TARGET, "read")
        with pytest.raises(InvalidGrantError):
            child.access_token("notes", "read")
        introspected = httpx.post(
            f"{broker.url}/introspect",
            data={"token": ticket_token.value.reveal()},
            headers={
                "Authorization": "Bearer "
                + (broker.state / "introspect.token").read_text().strip()
            },
        )
        assert introspected.json() == {"active": False}
        with broker.admin as admin:
            tree = admin.get(f"/v1/admin/tasks/{root.id}/tree").json()
            states = [tree["state"]]
            states += [node["state"] for node in _walk(tree["children"])]
            assert len(states) == 3
            assert set(states) == {"closed"}
            # The leaf's PostgreSQL lease is reported revoked once its engine
            # confirmed (the role is gone).
            lease_path = f"/v1/leases/{credential.lease_id}"
            assert poll(
                lambda: admin.get(lease_path).json()["state"] == "revoked",
                within=5.0,
            )

    def test_closing_the_root_deletes_the_leafs_redis_user(
        self, delegation_broker: DelegationBroker
    ) -> None:
        """A grandchild's Redis user is deleted and its connection killed in 2 s."""
        broker = delegation_broker
        with (
            broker.client("planner") as planner,
            broker.client("researcher") as researcher,
            broker.client("reader") as reader,
        ):
            root = planner.open_task(
                intent="warm up",
                purpose="research",
                environment="dev",
                targets=[CACHE_TARGET],
            )
            child = researcher.accept_delegation(
                root.delegate(
                    to=broker.agent_id("researcher"),
                    targets=[CACHE_TARGET],
                    actions=["read"],
                    purpose="research",
                )
            )
            leaf = reader.accept_delegation(
                child.delegate(
                    to=broker.agent_id("reader"),
                    targets=[CACHE_TARGET],
                    actions=["read"],
                    purpose="lookup",
                )
            )
            # No client-side retries: each ping says at once whether the user lives.
            live = redis.Redis(
                **leaf.redis(CACHE_TARGET, "read").connection_kwargs(),
                retry=Retry(NoBackoff(), 0),
            )
            try:
                assert live.get(f"{CACHE_PREFIX}missing") is None
                root.close()

                def killed() -> bool:
                    try:
                        live.ping()
                    except (
                        redis.exceptions.ConnectionError,
                        redis.exceptions.AuthenticationError,
                        redis.exceptions.ResponseError,
                    ):
                        return True
                    return False

                assert poll(killed, within=2.0)
            finally:
                live.close()

    def test_chain_is_in_the_tokens_and_the_audit(self, chain: Chain) -> None:
        """The act claim nests reader, researcher, planner; parent and lineage too."""
        broker = chain.broker
        granted = chain.to_reader()
        assert granted.status_code == 200, granted.text
        grant_claims = claims(granted.json()["access_token"])
        assert grant_claims["may_act"] == {"sub": broker.agent_id("reader")}
        assert grant_claims["exp"] - grant_claims["iat"] <= 120
        reader = broker.hop("reader")
        accepted = reader.accept(granted.json()["access_token"])
        assert accepted.status_code == 200, accepted.text
        token = claims(accepted.json()["access_token"])
        assert token["act"] == {
            "sub": broker.agent_id("reader"),
            "act": {
                "sub": broker.agent_id("researcher"),
                "act": {"sub": broker.agent_id("planner")},
            },
        }
        assert token["parent"] == chain.child["task_id"]
        assert token["lineage"] == chain.root["task_id"]
        assert claims(chain.child["access_token"])["lineage"] == chain.root["task_id"]
        # Each hop narrower: the reader's task holds the database, reads only.
        [details] = accepted.json()["authorization_details"]
        assert details["targets"] == [DATABASE_TARGET]
        assert details["actions"] == ["read"]
        introspected = httpx.post(
            f"{broker.url}/introspect",
            data={"token": accepted.json()["access_token"]},
            headers={
                "Authorization": "Bearer "
                + (broker.state / "introspect.token").read_text().strip()
            },
        ).json()
        assert introspected["active"] is True
        assert introspected["act"] == token["act"]
        assert introspected["parent"] == chain.child["task_id"]
        # The audit links parent and child.
        task_id = accepted.json()["task_id"]
        [record] = [r for r in broker.audit("task.delegate") if r["subject"] == task_id]
        assert record["outcome"] == "allow"
        assert record["data"]["parent_task"] == chain.child["task_id"]
        assert record["data"]["lineage_id"] == chain.root["task_id"]
        assert record["data"]["actors"] == [
            broker.agent_id("reader"),
            broker.agent_id("researcher"),
            broker.agent_id("planner"),
        ]
        grants = [
            r
            for r in broker.audit("delegation.grant")
            if r["data"].get("grant_id") == grant_claims["jti"]
        ]
        assert grants[-1]["subject"] == chain.child["task_id"]
        assert grants[-1]["data"]["child"] == broker.agent_id("reader")

    def test_client_supplied_act_is_never_read(self, chain: Chain) -> None:
        """An act or may_act sent along is ignored: the chain is the broker's."""
        broker = chain.broker
        reader = broker.hop("reader")
        grant = chain.to_reader().json()["access_token"]
        forged = json.dumps({"sub": "agt_" + "z" * 26})
        response = reader.post(
            {
                "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
                "subject_token": grant,
                "subject_token_type": "urn:gatepass:params:oauth:token-type:delegation",
                "actor_token": reader.assertion(),
                "actor_token_type": "urn:ietf:params:oauth:token-type:jwt",
                "act": forged,
                "may_act": forged,
            }
        )
        # Unknown parameters are ignored (RFC 6749 §3.2), and so is this one.
        assert response.status_code == 200, response.text
        assert claims(response.json()["access_token"])["act"] == {
            "sub": broker.agent_id("reader"),
            "act": {
                "sub": broker.agent_id("researcher"),
                "act": {"sub": broker.agent_id("planner")},
            },
        }

    def test_closing_a_child_leaves_the_parent_alone(self, chain: Chain) -> None:
        """The researcher's task closes; the planner's still issues tokens."""
        closed = httpx.post(
            f"{chain.broker.url}/v1/tasks/{chain.child['task_id']}/close",
            headers={
                "Authorization": f"DPoP {chain.child['access_token']}",
                "DPoP": chain.researcher.task_key.proof(
                    "POST",
                    f"{chain.broker.url}/v1/tasks/{chain.child['task_id']}/close",
                    access_token=chain.child["access_token"],
                    now=chain.broker.clock.now(),
                ),
            },
        )
        assert closed.status_code == 200, closed.text
        assert chain.planner.access(
            chain.root["access_token"], "tickets", "read"
        ).is_success
        refused = chain.researcher.access(
            chain.child["access_token"], "tickets", "read"
        )
        assert refused.json()["error"] == "invalid_grant"


class TestRules:
    """Every rule is refused with its OAuth error code and an audit record."""

    def test_widened_target(self, chain: Chain) -> None:
        """A target outside the parent's task is invalid_target."""
        response = chain.to_reader(targets=[DATABASE_TARGET, "notes"])
        detail = refused_and_audited(
            chain.broker, response, "delegation.grant", "invalid_target"
        )
        assert "notes" in detail

    def test_widened_action(self, chain: Chain) -> None:
        """An action outside the parent's (reads only) is invalid_scope."""
        response = chain.to_reader(actions=["read", "write"])
        refused_and_audited(chain.broker, response, "delegation.grant", "invalid_scope")

    def test_over_long_ttl(self, chain: Chain) -> None:
        """A sub-task asking to outlive its parent is invalid_request."""
        response = chain.to_reader(max_ttl_seconds=3600)
        detail = refused_and_audited(
            chain.broker, response, "delegation.grant", "invalid_request"
        )
        assert "outlive" in detail

    def test_depth_exceeded(self, chain: Chain) -> None:
        """Below max_depth nothing more can be delegated: invalid_request."""
        granted = chain.to_reader()
        reader = chain.broker.hop("reader")
        leaf = reader.accept(granted.json()["access_token"]).json()
        response = reader.grant(
            leaf["access_token"],
            chain.broker.agent_id("auditor"),
            targets=[DATABASE_TARGET],
            actions=["read"],
        )
        detail = refused_and_audited(
            chain.broker, response, "delegation.grant", "invalid_request"
        )
        assert f"deeper than {MAX_DEPTH}" in detail

    def test_agent_twice_in_a_chain(self, chain: Chain) -> None:
        """Delegating back to the planner (a loop) is invalid_target."""
        response = chain.researcher.grant(
            chain.child["access_token"],
            chain.broker.agent_id("planner"),
            targets=["tickets"],
            actions=["read"],
        )
        refused_and_audited(
            chain.broker, response, "delegation.grant", "invalid_target"
        )

    def test_delegating_to_oneself_is_a_loop(self, chain: Chain) -> None:
        """A child cannot re-delegate to itself to reset its life: invalid_target."""
        response = chain.researcher.grant(
            chain.child["access_token"],
            chain.broker.agent_id("researcher"),
            targets=["tickets"],
            actions=["read"],
        )
        refused_and_audited(
            chain.broker, response, "delegation.grant", "invalid_target"
        )

    def test_laundering_a_task_token(self, chain: Chain) -> None:
        """A child task token exchanged for a fresh task token is refused."""
        response = chain.researcher.post(
            {
                "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
                "subject_token": chain.child["access_token"],
                "subject_token_type": "urn:ietf:params:oauth:token-type:txn_token",
                "requested_token_type": "urn:ietf:params:oauth:token-type:txn_token",
            }
        )
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_request"

    def test_wrong_actor(self, chain: Chain) -> None:
        """A grant for the reader, accepted by another reader: invalid_grant."""
        granted = chain.to_reader()
        response = chain.broker.hop("reader-two").accept(granted.json()["access_token"])
        detail = refused_and_audited(
            chain.broker, response, "task.delegate", "invalid_grant"
        )
        assert "another agent" in detail
        # The grant was not spent by the refusal: the named reader still can.
        assert (
            chain.broker.hop("reader").accept(granted.json()["access_token"]).is_success
        )

    def test_grant_is_single_use(self, chain: Chain) -> None:
        """A grant accepted once is invalid_grant the second time."""
        granted = chain.to_reader().json()["access_token"]
        reader = chain.broker.hop("reader")
        assert reader.accept(granted).is_success
        again = chain.broker.hop("reader").accept(granted)
        detail = refused_and_audited(
            chain.broker, again, "task.delegate", "invalid_grant"
        )
        assert "already used" in detail

    def test_expired_grant(self, chain: Chain) -> None:
        """A grant accepted after its two minutes (and the skew) is invalid_grant."""
        granted = chain.to_reader().json()["access_token"]
        # Past its 120 s and the verifier's 30 s of tolerated skew.
        chain.broker.clock.advance(dt.timedelta(seconds=151))
        response = chain.broker.hop("reader").accept(granted)
        detail = refused_and_audited(
            chain.broker, response, "task.delegate", "invalid_grant"
        )
        assert "expired" in detail

    @pytest.mark.parametrize(
        ("change", "word"),
        [({"environment": "prod"}, "environment"), ({"tenant": "globex"}, "tenant")],
    )
    def test_environment_or_tenant_change(
        self, chain: Chain, change: dict[str, str], word: str
    ) -> None:
        """A sub-task in another environment or tenant is invalid_request."""
        response = chain.to_reader(**change)
        detail = refused_and_audited(
            chain.broker, response, "delegation.grant", "invalid_request"
        )
        assert word in detail

    def test_missing_dpop_when_granting(self, chain: Chain) -> None:
        """A grant request without the parent's DPoP proof is invalid_dpop_proof."""
        response = chain.to_reader(proof=False)
        refused_and_audited(
            chain.broker, response, "delegation.grant", "invalid_dpop_proof"
        )

    def test_grant_proof_by_another_key(self, chain: Chain) -> None:
        """A stolen task token without its key cannot ask for a grant."""
        thief = chain.broker.hop("researcher")
        response = thief.grant(
            chain.child["access_token"],
            chain.broker.agent_id("reader"),
            targets=[DATABASE_TARGET],
            actions=["read"],
        )
        refused_and_audited(
            chain.broker, response, "delegation.grant", "invalid_dpop_proof"
        )

    def test_missing_dpop_when_accepting(self, chain: Chain) -> None:
        """Accepting without a proof of the child's new key is invalid_dpop_proof."""
        granted = chain.to_reader().json()["access_token"]
        response = chain.broker.hop("reader").accept(granted, proof=False)
        refused_and_audited(
            chain.broker, response, "task.delegate", "invalid_dpop_proof"
        )

    def test_policy_denies_the_pair(self, chain: Chain) -> None:
        """The researcher may not hand work to another researcher: access_denied."""
        response = chain.researcher.grant(
            chain.child["access_token"],
            chain.broker.agent_id("auditor"),
            targets=["tickets"],
            actions=["read"],
        )
        refused_and_audited(chain.broker, response, "delegation.grant", "access_denied")

    def test_parent_closed_before_accept(self, chain: Chain) -> None:
        """A grant whose parent has ended is invalid_grant."""
        granted = chain.to_reader().json()["access_token"]
        with chain.broker.admin as admin:
            closed = admin.post(f"/v1/tasks/{chain.root['task_id']}/close")
        assert closed.status_code == 200, closed.text
        response = chain.broker.hop("reader").accept(granted)
        refused_and_audited(chain.broker, response, "task.delegate", "invalid_grant")


def _walk(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for node in nodes:
        found.append(node)
        found.extend(_walk(node["children"]))
    return found


class TestTreeRoute:
    """``GET /v1/admin/tasks/{id}/tree``: the whole tree, tenant-scoped."""

    def test_tree_from_any_member_and_tenant_scoping(self, chain: Chain) -> None:
        """Asked from the child, the tree starts at the root; globex sees nothing."""
        broker = chain.broker
        with broker.admin as admin:
            tree = admin.get(f"/v1/admin/tasks/{chain.child['task_id']}/tree").json()
            assert tree["id"] == chain.root["task_id"]
            assert tree["requested"] == chain.child["task_id"]
            assert tree["depth"] == 0
            [child] = tree["children"]
            assert child["id"] == chain.child["task_id"]
            assert child["agent_name"] == f"researcher-{RUN}"
            assert child["parent_id"] == chain.root["task_id"]
            assert child["actions"] == ["read"]
            assert child["actors"] == [
                broker.agent_id("researcher"),
                broker.agent_id("planner"),
            ]
            tokens = {}
            for tenant in ("acme", "globex"):
                issued = admin.post(
                    "/v1/admin/operators",
                    json={
                        "name": f"auditor-{tenant}-{uuid.uuid4().hex[:6]}",
                        "roles": ["auditor"],
                        "tenants": [tenant],
                    },
                )
                assert issued.status_code == 201, issued.text
                tokens[tenant] = issued.json()["token"]
            assert admin.get("/v1/admin/tasks/tsk_missing/tree").status_code == 404
        path = f"{broker.url}/v1/admin/tasks/{chain.root['task_id']}/tree"
        own = httpx.get(path, headers={"Authorization": f"Bearer {tokens['acme']}"})
        assert own.status_code == 200
        other = httpx.get(path, headers={"Authorization": f"Bearer {tokens['globex']}"})
        assert other.status_code == 404
        assert other.json()["error"] == "not_found"
        assert httpx.get(path).status_code == 401
