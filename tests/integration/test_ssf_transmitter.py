"""
Issue 14, signals out: the SSF transmitter over real HTTP.

One quickstart broker with its background jobs (the push loop among them) on
127.0.0.1, its ``/introspect`` route counted; resource servers and push receivers
are real servers beside it.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from gatepass.api import create_app
from gatepass.broker import Runtime, build_runtime
from gatepass.sdk import AgentIdentity, GatepassClient, Task
from gatepass.ssf.transmit import CAEP_SESSION_REVOKED, SSF_VERIFICATION
from gatepass.store import audit_log, leases, ssf
from gatepass.verify import GatepassMiddleware, ResourceVerifier

from .conftest import RunningServer, free_port, quickstart_settings, start_server
from .deadline import poll

pytestmark = pytest.mark.slow

PUSH = "urn:ietf:rfc:8935"
POLL = "urn:ietf:rfc:8936"


class _CountIntrospection:
    """Counts requests to the broker's introspection route, then serves them."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.count = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/introspect":
            self.count += 1
        await self.app(scope, receive, send)


@dataclass
class Transmitter:
    """The broker under test."""

    url: str
    runtime: Runtime
    state_dir: Path
    resource_uri: str
    counter: _CountIntrospection

    def admin(self) -> dict[str, str]:
        """Authorization with the bootstrap admin token."""
        token = (self.state_dir / "admin.token").read_text().strip()
        return {"Authorization": f"Bearer {token}"}

    @property
    def introspect_token(self) -> str:
        """The bootstrap introspection token."""
        return (self.state_dir / "introspect.token").read_text().strip()

    def receiver(self, audiences: list[str]) -> str:
        """Register an SSF receiver limited to ``audiences``; return its token."""
        response = httpx.post(
            f"{self.url}/v1/admin/ssf/receivers",
            headers=self.admin(),
            json={"description": "test receiver", "audiences": audiences},
        )
        assert response.status_code == 201, response.text
        token: str = response.json()["token"]
        return token

    def kinds(self, kind: str) -> list[Any]:
        """Return the audit records of one kind."""
        with self.runtime.database.reading() as conn:
            records = audit_log.last_audit(conn, 10_000)
        return [record for record in records if record.kind == kind]


@pytest.fixture(scope="module")
def transmitter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Transmitter]:
    """A quickstart broker with background jobs, push allowed to 127.0.0.1."""
    state_dir = tmp_path_factory.mktemp("ssf") / "state"
    port, resource_port = free_port(), free_port()
    settings = quickstart_settings(
        state_dir,
        port=port,
        resource_port=resource_port,
        ssf={
            "push_http_hosts": ["127.0.0.1"],
            "push_hosts": ["receiver.example"],
            "poll_wait_seconds": 5,
        },
    )
    runtime = build_runtime(settings)
    counter = _CountIntrospection(create_app(runtime, background_jobs=True))
    running = start_server(counter, port)
    try:
        yield Transmitter(
            url=running.url,
            runtime=runtime,
            state_dir=state_dir,
            resource_uri=f"http://127.0.0.1:{resource_port}/",
            counter=counter,
        )
    finally:
        running.stop()
        runtime.database.dispose()


@pytest.fixture
def task(transmitter: Transmitter) -> Iterator[Task]:
    """An open task of the demo agent on the tickets target."""
    identity = AgentIdentity.load(transmitter.state_dir / "demo-agent.json")
    with GatepassClient(identity) as client:
        opened = client.open_task(
            intent="triage",
            purpose="support-triage",
            environment="dev",
            targets=[transmitter.resource_uri],
        )
        try:
            yield opened
        finally:
            opened.close()


def _close(transmitter: Transmitter, task: Task) -> None:
    response = httpx.post(
        f"{transmitter.url}/v1/tasks/{task.id}/close",
        headers=transmitter.admin(),
        json={},
    )
    assert response.status_code == 200, response.text


def _jti_of(transmitter: Transmitter, lease_id: str) -> str:
    with transmitter.runtime.database.reading() as conn:
        lease = leases.get_lease(conn, lease_id)
    assert lease is not None
    return lease.handle


def _create(
    transmitter: Transmitter, token: str, body: dict[str, Any]
) -> httpx.Response:
    return httpx.post(
        f"{transmitter.url}/v1/ssf/streams",
        headers={"Authorization": f"Bearer {token}"},
        json=body,
    )


def _claims(transmitter: Transmitter, token: str) -> dict[str, Any]:
    """Verify a SET with PyJWT and the broker's published JWKS only."""
    header = jwt.get_unverified_header(token)
    assert header["typ"] == "secevent+jwt"
    keys = httpx.get(f"{transmitter.url}/jwks.json").json()["keys"]
    (jwk,) = [key for key in keys if key["kid"] == header["kid"]]
    verified: dict[str, Any] = jwt.decode(
        token,
        jwt.PyJWK(jwk).key,
        algorithms=[jwt.PyJWK(jwk).algorithm_name],
        audience=transmitter.resource_uri,
        issuer=transmitter.url,
        options={"require": ["iss", "aud", "iat", "jti"]},
    )
    return verified


class TestDiscovery:
    """The transmitter configuration metadata."""

    def test_well_known(self, transmitter: Transmitter) -> None:
        """SSF 1.0 §7.1 metadata names the endpoints, methods and auth scheme."""
        document = httpx.get(f"{transmitter.url}/.well-known/ssf-configuration").json()
        assert document["issuer"] == transmitter.url
        assert document["jwks_uri"] == f"{transmitter.url}/jwks.json"
        assert set(document["delivery_methods_supported"]) == {PUSH, POLL}
        for name in ("configuration", "status", "verification"):
            assert document[f"{name}_endpoint"].startswith(transmitter.url)
        assert document["authorization_schemes"] == [{"spec_urn": "urn:ietf:rfc:6750"}]


class TestSubscribedResourceServer:
    """gatepass.verify subscribed by poll refuses revoked tokens on its own."""

    def test_revoked_token_refused_without_introspection(
        self, transmitter: Transmitter, task: Task
    ) -> None:
        """After close, the resource answers 401 and /introspect was never called."""
        ssf_token = transmitter.receiver(["tickets"])
        verifier = ResourceVerifier.for_broker(
            transmitter.url,
            transmitter.resource_uri,
            api_token=transmitter.introspect_token,
            revocations="ssf",
            ssf_token=ssf_token,
        )

        async def hello(_request: Request) -> Response:
            return JSONResponse({"ok": True})

        app = GatepassMiddleware(Starlette(routes=[Route("/t", hello)]), verifier)
        port = urlsplit(transmitter.resource_uri).port
        assert port is not None
        running: RunningServer = start_server(app, port)
        try:
            feed = verifier.revocations
            assert feed is not None
            assert poll(lambda: feed.healthy, within=10)
            before = transmitter.counter.count
            token = task.access_token(transmitter.resource_uri, "read")
            url = f"{transmitter.resource_uri}t"
            assert httpx.get(url, auth=token.auth()).status_code == 200
            _close(transmitter, task)
            assert poll(
                lambda: httpx.get(url, auth=token.auth()).status_code == 401, within=5
            )
            assert feed.is_revoked(_jti_of(transmitter, token.lease_id))
            assert transmitter.counter.count == before
            assert feed.subscription is not None
            assert feed.subscription.sets_seen >= 1
        finally:
            running.stop()
        # Stopping the resource deleted its stream.
        listed = httpx.get(
            f"{transmitter.url}/v1/ssf/streams",
            headers={"Authorization": f"Bearer {ssf_token}"},
        )
        assert listed.json() == []


@dataclass
class _Receiver:
    """A push receiver (RFC 8935) that records what it is sent."""

    fail_first: int = 0
    bodies: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    calls: int = 0

    def app(self) -> Starlette:
        """The receiver's ASGI app."""

        async def events(request: Request) -> Response:
            body = (await request.body()).decode()
            with self.lock:
                self.calls += 1
                if self.calls <= self.fail_first:
                    return Response(status_code=503)
                self.bodies.append((request.headers.get("authorization", ""), body))
            assert request.headers["content-type"] == "application/secevent+jwt"
            return Response(status_code=202)

        return Starlette(routes=[Route("/events", events, methods=["POST"])])


class TestPush:
    """RFC 8935 push delivery of signed SETs."""

    def _stream(self, transmitter: Transmitter, port: int) -> str:
        created = _create(
            transmitter,
            transmitter.receiver(["tickets"]),
            {
                "delivery": {
                    "method": PUSH,
                    "endpoint_url": f"http://127.0.0.1:{port}/events",
                    "authorization_header": "Bearer receiver-secret",
                },
                "events_requested": [CAEP_SESSION_REVOKED],
            },
        )
        assert created.status_code == 201, created.text
        body = created.json()
        assert "authorization_header" not in body["delivery"]
        assert body["events_delivered"] == [CAEP_SESSION_REVOKED]
        stream_id: str = body["stream_id"]
        return stream_id

    def _revoked_jti(self, transmitter: Transmitter, task: Task) -> str:
        token = task.access_token(transmitter.resource_uri, "read")
        _close(transmitter, task)
        return _jti_of(transmitter, token.lease_id)

    def test_pushed_set_verifies_with_the_jwks(
        self, transmitter: Transmitter, task: Task
    ) -> None:
        """A revoked token is pushed as a session-revoked SET signed by the JWKS."""
        receiver = _Receiver()
        port = free_port()
        running = start_server(receiver.app(), port)
        try:
            self._stream(transmitter, port)
            jti = self._revoked_jti(transmitter, task)

            def received() -> list[dict[str, Any]]:
                with receiver.lock:
                    bodies = list(receiver.bodies)
                claims = [_claims(transmitter, body) for _, body in bodies]
                return [c for c in claims if c["sub_id"]["id"] == jti]

            assert poll(received, within=5)
            (claims,) = received()
            assert claims["txn"] == task.id
            assert claims["sub_id"] == {"format": "opaque", "id": jti}
            event = claims["events"][CAEP_SESSION_REVOKED]
            assert event["initiating_entity"] == "admin"
            assert event["reason_admin"] == {"en": "closed by admin"}
            assert {auth for auth, _ in receiver.bodies} == {"Bearer receiver-secret"}
        finally:
            running.stop()

    def test_failed_push_is_retried_and_audited(
        self, transmitter: Transmitter, task: Task
    ) -> None:
        """A 503 is audited as ssf.delivery_failed and the SET arrives on retry."""
        receiver = _Receiver(fail_first=1)
        port = free_port()
        running = start_server(receiver.app(), port)
        try:
            stream_id = self._stream(transmitter, port)
            self._revoked_jti(transmitter, task)
            assert poll(lambda: receiver.bodies, within=10)
            failures = [
                record
                for record in transmitter.kinds("ssf.delivery_failed")
                if record.subject == stream_id
            ]
            assert failures
            assert failures[0].data["reason"] == "status 503"
            assert failures[0].data["retry"] is True
            assert "receiver-secret" not in str(failures[0].data)
        finally:
            running.stop()


class TestPoll:
    """RFC 8936 poll delivery with acknowledgements."""

    def test_poll_then_ack(self, transmitter: Transmitter, task: Task) -> None:
        """A polled SET stays until acknowledged, then is gone."""
        token = transmitter.receiver(["tickets"])
        headers = {"Authorization": f"Bearer {token}"}
        created = _create(transmitter, token, {"delivery": {"method": POLL}})
        assert created.status_code == 201, created.text
        endpoint = created.json()["delivery"]["endpoint_url"]
        access = task.access_token(transmitter.resource_uri, "read")
        _close(transmitter, task)
        jti = _jti_of(transmitter, access.lease_id)

        def mine(sets: dict[str, str]) -> list[str]:
            return [
                set_id
                for set_id, signed in sets.items()
                if _claims(transmitter, signed)["sub_id"]["id"] == jti
            ]

        first = httpx.post(endpoint, headers=headers, json={}, timeout=10).json()
        assert len(mine(first["sets"])) == 1
        again = httpx.post(
            endpoint, headers=headers, json={"returnImmediately": True}
        ).json()
        assert mine(again["sets"]) == mine(first["sets"])
        acked = httpx.post(
            endpoint,
            headers=headers,
            json={"ack": list(first["sets"]), "returnImmediately": True},
        ).json()
        assert not set(acked["sets"]) & set(first["sets"])
        assert acked["moreAvailable"] is False

    def test_verification_event(self, transmitter: Transmitter) -> None:
        """POST /v1/ssf/verify queues a verification SET echoing the state."""
        token = transmitter.receiver(["tickets"])
        headers = {"Authorization": f"Bearer {token}"}
        created = _create(
            transmitter,
            token,
            {"delivery": {"method": POLL}, "events_requested": []},
        ).json()
        answer = httpx.post(
            f"{transmitter.url}/v1/ssf/verify",
            headers=headers,
            json={"stream_id": created["stream_id"], "state": "s-42"},
        )
        assert answer.status_code == 204
        polled = httpx.post(
            created["delivery"]["endpoint_url"],
            headers=headers,
            json={"returnImmediately": True},
        ).json()
        (signed,) = polled["sets"].values()
        claims = _claims(transmitter, signed)
        assert claims["events"] == {SSF_VERIFICATION: {"state": "s-42"}}
        assert claims["sub_id"] == {"format": "opaque", "id": created["stream_id"]}


class TestStreamAuthorization:
    """Who may manage which streams."""

    def test_no_token_or_wrong_role(self, transmitter: Transmitter) -> None:
        """No token: 401; an introspection token: 403 access_denied."""
        body = {"delivery": {"method": POLL}}
        assert (
            httpx.post(f"{transmitter.url}/v1/ssf/streams", json=body).status_code
            == 401
        )
        refused = _create(transmitter, transmitter.introspect_token, body)
        assert refused.status_code == 403
        assert refused.json()["error"] == "access_denied"

    def test_audience_not_allowed(self, transmitter: Transmitter) -> None:
        """A receiver of tickets may not subscribe to another target (audited)."""
        token = transmitter.receiver(["tickets"])
        refused = _create(
            transmitter,
            token,
            {
                "delivery": {"method": POLL},
                "aud": "https://globex.example.internal/",
            },
        )
        assert refused.status_code == 403
        assert refused.json()["error"] == "access_denied"
        denied = transmitter.kinds("ssf.stream.create")
        assert any(record.outcome == "deny" for record in denied)

    def test_other_receivers_stream_is_not_found(
        self, transmitter: Transmitter
    ) -> None:
        """One receiver cannot read, poll or delete another's stream."""
        owner = transmitter.receiver(["tickets"])
        other = transmitter.receiver(["tickets"])
        created = _create(transmitter, owner, {"delivery": {"method": POLL}}).json()
        headers = {"Authorization": f"Bearer {other}"}
        read = httpx.get(
            f"{transmitter.url}/v1/ssf/streams",
            params={"stream_id": created["stream_id"]},
            headers=headers,
        )
        assert read.status_code == 404
        polled = httpx.post(
            created["delivery"]["endpoint_url"], headers=headers, json={}
        )
        assert polled.status_code == 404
        deleted = httpx.delete(
            f"{transmitter.url}/v1/ssf/streams",
            params={"stream_id": created["stream_id"]},
            headers=headers,
        )
        assert deleted.status_code == 404

    def test_plain_http_push_elsewhere_is_refused(
        self, transmitter: Transmitter
    ) -> None:
        """Push over http to a host not in ssf.push_http_hosts is invalid_request."""
        refused = _create(
            transmitter,
            transmitter.receiver(["tickets"]),
            {"delivery": {"method": PUSH, "endpoint_url": "http://10.0.0.1/e"}},
        )
        assert refused.status_code == 400
        assert "https" in refused.json()["error_description"]

    def test_push_to_an_unlisted_https_host_is_refused(
        self, transmitter: Transmitter
    ) -> None:
        """A receiver cannot point pushes at a host the operator did not list."""
        refused = _create(
            transmitter,
            transmitter.receiver(["tickets"]),
            {
                "delivery": {
                    "method": PUSH,
                    "endpoint_url": "https://internal.example/admin",
                }
            },
        )
        assert refused.status_code == 403
        assert "ssf.push_hosts" in refused.json()["error_description"]

    def test_status_pause_and_update(self, transmitter: Transmitter) -> None:
        """Status can be read and changed; PATCH changes only what it names."""
        token = transmitter.receiver(["tickets"])
        headers = {"Authorization": f"Bearer {token}"}
        created = _create(transmitter, token, {"delivery": {"method": POLL}}).json()
        stream_id = created["stream_id"]
        paused = httpx.post(
            f"{transmitter.url}/v1/ssf/status",
            headers=headers,
            json={"stream_id": stream_id, "status": "paused", "reason": "upgrade"},
        )
        assert paused.json() == {
            "stream_id": stream_id,
            "status": "paused",
            "reason": "upgrade",
        }
        status = httpx.get(
            f"{transmitter.url}/v1/ssf/status",
            params={"stream_id": stream_id},
            headers=headers,
        ).json()
        assert status["status"] == "paused"
        patched = httpx.patch(
            f"{transmitter.url}/v1/ssf/streams",
            headers=headers,
            json={"stream_id": stream_id, "description": "renamed"},
        ).json()
        assert patched["description"] == "renamed"
        assert patched["delivery"] == created["delivery"]
        assert transmitter.kinds("ssf.stream.status")


class TestStreamLifecycle:
    """Receivers' errors and abandoned streams."""

    def _poll_stream(self, transmitter: Transmitter) -> tuple[dict[str, str], Any]:
        token = transmitter.receiver(["tickets"])
        headers = {"Authorization": f"Bearer {token}"}
        created = _create(
            transmitter, token, {"delivery": {"method": POLL}, "events_requested": []}
        ).json()
        return headers, created

    def test_set_errors_are_audited_and_not_sent_again(
        self, transmitter: Transmitter
    ) -> None:
        """A SET the receiver reports in setErrs is given up and audited."""
        headers, created = self._poll_stream(transmitter)
        httpx.post(
            f"{transmitter.url}/v1/ssf/verify",
            headers=headers,
            json={"stream_id": created["stream_id"]},
        )
        endpoint = created["delivery"]["endpoint_url"]
        first = httpx.post(endpoint, headers=headers, json={"returnImmediately": True})
        (jti,) = first.json()["sets"]
        errs = {jti: {"err": "invalid_key", "description": "unknown kid"}}
        again = httpx.post(
            endpoint,
            headers=headers,
            json={"setErrs": errs, "returnImmediately": True},
        ).json()
        assert again["sets"] == {}
        (record,) = [
            r for r in transmitter.kinds("ssf.set_error") if r.data["jti"] == jti
        ]
        assert record.data["err"] == "invalid_key"
        assert record.outcome == "error"

    def test_inactive_stream_is_disabled(self, transmitter: Transmitter) -> None:
        """A stream nobody touched for its inactivity_timeout is disabled (audited)."""
        headers, created = self._poll_stream(transmitter)
        stream_id = created["stream_id"]
        long_ago = transmitter.runtime.context.clock.now() - dt.timedelta(days=2)
        with transmitter.runtime.database.transaction() as conn:
            assert ssf.update_stream(conn, stream_id, active_at=long_ago)

        def status() -> str:
            answer = httpx.get(
                f"{transmitter.url}/v1/ssf/status",
                params={"stream_id": stream_id},
                headers=headers,
            ).json()
            return str(answer["status"])

        assert poll(lambda: status() == "disabled", within=5)
        (record,) = [
            r for r in transmitter.kinds("ssf.stream.status") if r.subject == stream_id
        ]
        assert record.actor == "system"
        assert record.data["reason"] == "inactive"


class TestRefusedPushAndRequests:
    """A receiver's 400, and requests the transmitter refuses."""

    def test_receiver_400_gives_the_set_up_at_once(
        self, transmitter: Transmitter
    ) -> None:
        """RFC 8935 §2.3: a SET the receiver refuses is not retried (audited)."""
        seen: list[str] = []

        async def refuse(request: Request) -> Response:
            seen.append((await request.body()).decode())
            return JSONResponse({"err": "invalid_key", "description": "?"}, 400)

        port = free_port()
        running = start_server(
            Starlette(routes=[Route("/events", refuse, methods=["POST"])]), port
        )
        try:
            token = transmitter.receiver(["tickets"])
            created = _create(
                transmitter,
                token,
                {
                    "delivery": {
                        "method": PUSH,
                        "endpoint_url": f"http://127.0.0.1:{port}/events",
                    },
                    "events_requested": [],
                },
            ).json()
            stream_id = created["stream_id"]
            verify = httpx.post(
                f"{transmitter.url}/v1/ssf/verify",
                headers={"Authorization": f"Bearer {token}"},
                json={"stream_id": stream_id},
            )
            assert verify.status_code == 204

            def given_up() -> list[Any]:
                return [
                    r
                    for r in transmitter.kinds("ssf.delivery_failed")
                    if r.subject == stream_id
                ]

            assert poll(given_up, within=5)
            (record,) = given_up()
            assert record.data["reason"] == "receiver refused: invalid_key"
            assert record.data["retry"] is False
            assert len(seen) == 1
        finally:
            running.stop()

    def test_malformed_requests(self, transmitter: Transmitter) -> None:
        """Each malformed stream, status, verify or poll request is a 400."""
        token = transmitter.receiver(["tickets"])
        headers = {"Authorization": f"Bearer {token}"}
        streams = f"{transmitter.url}/v1/ssf/streams"
        created = _create(transmitter, token, {"delivery": {"method": POLL}}).json()
        stream_id = created["stream_id"]
        answers = [
            httpx.patch(streams, headers=headers, json={"description": "x"}),
            httpx.delete(streams, headers=headers),
            httpx.get(streams, headers=headers, params={"stream_id": ""}),
            httpx.get(f"{streams}?stream_id=a&stream_id=b", headers=headers),
            httpx.get(f"{transmitter.url}/v1/ssf/status", headers=headers),
            httpx.post(f"{transmitter.url}/v1/ssf/status", headers=headers, json={}),
            httpx.post(f"{transmitter.url}/v1/ssf/verify", headers=headers, json={}),
            httpx.post(
                f"{transmitter.url}/v1/ssf/verify",
                headers=headers,
                json={"stream_id": stream_id, "state": 7},
            ),
            httpx.post(
                created["delivery"]["endpoint_url"],
                headers=headers,
                json={"maxEvents": -1},
            ),
            httpx.post(
                f"{transmitter.url}/v1/admin/ssf/receivers",
                headers=transmitter.admin(),
                json={"description": "x", "audiences": ["bastion"]},
            ),
            httpx.post(
                f"{transmitter.url}/v1/admin/ssf/receivers",
                headers=transmitter.admin(),
                json={"description": "x", "audiences": "tickets"},
            ),
        ]
        assert [answer.status_code for answer in answers] == [400] * len(answers)
        assert all(answer.json()["error"] == "invalid_request" for answer in answers)

    def test_replace_and_list(self, transmitter: Transmitter) -> None:
        """PUT replaces a stream (poll to push); GET without id lists the caller's."""
        token = transmitter.receiver(["tickets"])
        headers = {"Authorization": f"Bearer {token}"}
        created = _create(transmitter, token, {"delivery": {"method": POLL}}).json()
        replaced = httpx.put(
            f"{transmitter.url}/v1/ssf/streams",
            headers=headers,
            json={
                **created,
                "delivery": {
                    "method": PUSH,
                    "endpoint_url": "https://receiver.example/events",
                },
            },
        )
        assert replaced.status_code == 200, replaced.text
        assert replaced.json()["delivery"] == {
            "method": PUSH,
            "endpoint_url": "https://receiver.example/events",
        }
        listed = httpx.get(f"{transmitter.url}/v1/ssf/streams", headers=headers).json()
        assert [item["stream_id"] for item in listed] == [created["stream_id"]]
        overview = httpx.get(
            f"{transmitter.url}/v1/admin/ssf/streams", headers=transmitter.admin()
        ).json()["items"]
        (mine,) = [i for i in overview if i["stream_id"] == created["stream_id"]]
        assert mine["method"] == "push"
        assert mine["endpoint_host"] == "receiver.example"

    def test_too_many_streams(self, transmitter: Transmitter) -> None:
        """Beyond ssf.max_streams_per_receiver a create is 409 conflict."""
        token = transmitter.receiver(["tickets"])
        limit = transmitter.runtime.settings.ssf.max_streams_per_receiver
        for _ in range(limit):
            made = _create(transmitter, token, {"delivery": {"method": POLL}})
            assert made.status_code == 201
        refused = _create(transmitter, token, {"delivery": {"method": POLL}})
        assert refused.status_code == 409
        assert refused.json()["error"] == "conflict"
